import threading
import time

import pytest

from alaas_lab.pipeline import Pipeline, PipelineError, Stage, thread_plan


def test_every_item_reaches_the_end_once():
    stages = [
        Stage("double", lambda xs: [2 * x for x in xs], workers=3),
        Stage("batch", lambda xs: [x + 1 for x in xs], batch_size=8, max_wait_s=0.01),
    ]
    pipe = Pipeline(stages, queue_size=4)
    out = sorted(pipe.run(range(500)))
    assert out == [2 * x + 1 for x in range(500)]
    report = pipe.report()
    assert [s["items_out"] for s in report["stages"]] == [500, 500]
    assert report["stages"][1]["calls"] < 500  # items were batched


def test_stages_overlap_in_time():
    # Three stages of 20 ms per item over 10 items: sequential would take ~0.6 s,
    # overlapped ~0.24 s. The assertion is on the overlap of busy intervals, not speed.
    intervals = {"a": [], "b": [], "c": []}

    def slow(name):
        def fn(xs):
            t0 = time.perf_counter()
            time.sleep(0.02)
            intervals[name].append((t0, time.perf_counter()))
            return xs
        return fn

    pipe = Pipeline([Stage(n, slow(n)) for n in "abc"], queue_size=2)
    assert len(list(pipe.run(range(10)))) == 10
    a_end = max(e for _, e in intervals["a"])
    c_start = min(s for s, _ in intervals["c"])
    assert c_start < a_end  # the last stage started before the first one finished


def test_backpressure_bounds_what_is_in_flight():
    seen = []
    gate = threading.Event()

    def blocked(xs):
        gate.wait(2)
        return xs

    def source():
        for i in range(100):
            seen.append(i)
            yield i

    pipe = Pipeline([Stage("fast", lambda xs: xs), Stage("slow", blocked)], queue_size=3)
    results = pipe.run(source())
    consumer = threading.Thread(target=lambda: list(results))
    consumer.start()
    time.sleep(0.3)
    produced_while_blocked = len(seen)
    gate.set()
    consumer.join(5)
    # 3 queues of 3 plus one item held by each of 2 stages (+ the feeder's own)
    assert produced_while_blocked <= 3 * 3 + 2 + 1
    assert len(seen) == 100


def test_batches_are_full_under_load():
    sizes = []

    def record(xs):
        sizes.append(len(xs))
        return xs

    pipe = Pipeline([Stage("embed", record, batch_size=16, max_wait_s=0.05)], queue_size=64)
    assert len(list(pipe.run(range(160)))) == 160
    assert max(sizes) == 16
    assert sum(sizes) == 160


def test_passthrough_items_skip_the_function():
    calls = []

    def fn(xs):
        calls.extend(xs)
        return xs

    pipe = Pipeline([Stage("s", fn, passthrough=lambda x: isinstance(x, str))])
    out = list(pipe.run([1, "bad", 2]))
    assert sorted(map(str, out)) == ["1", "2", "bad"]
    assert "bad" not in calls


def test_a_failing_stage_stops_the_pipeline_and_names_itself():
    def boom(xs):
        if 7 in xs:
            raise RuntimeError("kaput")
        return xs

    pipe = Pipeline([Stage("decode", boom, workers=2)], queue_size=2)
    with pytest.raises(PipelineError, match="stage 'decode' failed: RuntimeError: kaput"):
        list(pipe.run(range(1000)))


def test_progress_events_carry_stage_stats():
    events = []
    pipe = Pipeline([Stage("a", lambda xs: xs)], on_progress=events.append,
                    progress_interval=0.01)
    list(pipe.run(range(50)))
    assert events, "no progress event"
    last = events[-1]["stages"][0]
    assert last["name"] == "a" and last["items_out"] == 50
    assert {"queue_depth", "items_per_s", "busy_s"} <= set(last)


@pytest.mark.parametrize("cores", [1, 2, 8, 16])
def test_thread_plan_starts_with_the_cores_for_torch(cores):
    plan = thread_plan(cores)  # re-exported; the planner's tests are in test_threads.py
    assert (plan.decode_workers, plan.torch_threads) == (1, cores)
