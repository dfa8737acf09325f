"""The thread planner: hand-made stage rates in, threads for the slowest stage out.

Plus one real push (PNG files → fetch → decode → ResNet-18 → cache) that re-plans
while it runs and still gives the embeddings the backbone gives alone.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from alaas_lab.config import load_config
from alaas_lab.data import Decoder
from alaas_lab.models.backbones import ResNet18Backbone
from alaas_lab.pipeline import Pipeline, Stage
from alaas_lab.threads import StageRate, ThreadPlan, replan, thread_plan
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor


def rates(fetch=None, decode=None, embed=None, decode_busy=0.0):
    out = {}
    if fetch is not None:
        out["fetch"] = StageRate(fetch)
    if decode is not None:
        out["decode"] = StageRate(decode, decode_busy)
    if embed is not None:
        out["embed"] = StageRate(embed, 1.0)
    return out


@pytest.mark.parametrize("cores", [1, 2, 3, 7, 8, 64])
def test_a_push_starts_with_every_core_for_torch_and_one_decode_thread(cores):
    plan = thread_plan(cores)
    assert (plan.cores, plan.torch_threads, plan.decode_workers) == (cores, cores, 1)
    # independent batches first: one embed thread per core, up to four
    assert plan.embed_workers == min(cores, 4)
    shares = [plan.torch_threads_of(w) for w in range(plan.embed_workers)]
    assert sum(shares) == cores and max(shares) - min(shares) <= 1
    assert f"{plan.embed_workers} embed thread(s) x {max(shares)}" in plan.notes


def test_torch_threads_are_shared_out_over_the_embed_threads():
    plan = ThreadPlan(7, 1, 7, embed_workers=4)
    assert [plan.torch_threads_of(w) for w in range(4)] == [2, 2, 2, 1]
    assert "4 embed thread(s) x 2 or 1 torch thread(s)" in plan.notes
    # never fewer than one each, whatever the total says
    assert [ThreadPlan(2, 1, 1, embed_workers=2).torch_threads_of(w) for w in range(2)] == [1, 1]


def test_thread_plan_defaults_to_the_cores_this_process_may_use():
    import os

    assert thread_plan().cores == len(os.sched_getaffinity(0))


def test_embed_as_bottleneck_keeps_the_plan():
    # the 2-core figures: decode 7,500/s a thread, busy 0.35 core; embed 2,647/s
    plan = thread_plan(2)
    assert replan(plan, rates(fetch=40_000, decode=7_500, embed=2_647, decode_busy=0.35)) is plan


def test_a_slow_decode_stage_gets_one_more_thread_per_replan_up_to_the_cores():
    plan = thread_plan(4)
    seen = []
    for _ in range(6):
        plan = replan(plan, rates(fetch=40_000, decode=300 * plan.decode_workers, embed=2_000,
                                  decode_busy=0.0))
        seen.append(plan.decode_workers)
    assert seen == [2, 3, 4, 4, 4, 4]


def test_a_busy_decode_pool_takes_cores_from_torch_and_gives_them_back():
    plan = thread_plan(8)
    plan = replan(plan, rates(decode=5_000, embed=4_000, decode_busy=0.5))
    assert plan.torch_threads == 8  # half a core: under the hysteresis, torch keeps it
    plan = replan(plan, rates(decode=5_000, embed=4_000, decode_busy=1.9))
    assert plan.torch_threads == 7  # one core per re-plan, never a jump
    plan = replan(plan, rates(decode=5_000, embed=4_000, decode_busy=1.9))
    assert plan.torch_threads == 6
    plan = replan(plan, rates(decode=5_000, embed=4_000, decode_busy=1.9))
    assert plan.torch_threads == 6  # 1.9 busy cores within 0.75 of the 2 reserved
    plan = replan(plan, rates(decode=5_000, embed=4_000, decode_busy=0.2))
    assert plan.torch_threads == 7


def test_all_core_torch_is_checked_against_one_thread_fewer_and_the_faster_kept():
    # one embed thread (as on a machine whose plan puts intra-op threads to work)
    def start():
        return ThreadPlan(2, 1, 2, embed_workers=1)

    seen = {}
    plan = start()

    def step(embed_rate):
        nonlocal plan
        seen[plan.torch_threads] = embed_rate[plan.torch_threads]
        plan = replan(plan, rates(decode=7_500, embed=seen[plan.torch_threads],
                                  decode_busy=0.2), embed_seen=seen)
        return plan.torch_threads

    loaded = {2: 38.0, 1: 463.0}  # the collapse measured on a loaded 2-core machine
    assert [step(loaded) for _ in range(4)] == [1, 1, 1, 1]
    seen.clear()
    plan = start()
    idle = {2: 2_647.0, 1: 1_401.0}
    assert [step(idle) for _ in range(4)] == [1, 2, 2, 2]  # one probe window, then back
    # the probe happens only while embed is the bottleneck
    seen = {2: 500.0}
    plan = replan(start(), rates(fetch=100, decode=7_500, embed=500), embed_seen=seen)
    assert plan.torch_threads == 2 and plan.fetch_in_flight == 64
    # with one embed thread per core there is nothing to take away
    plan = replan(thread_plan(2), rates(decode=7_500, embed=500), embed_seen={2: 500.0})
    assert plan.torch_threads == 2 and plan.embed_workers == 2


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_torch_keeps_at_least_one_thread_and_decode_at_most_the_cores(cores):
    plan = thread_plan(cores)
    for _ in range(40):
        plan = replan(plan, rates(decode=10.0 * plan.decode_workers, embed=1_000,
                                  decode_busy=float(cores)))
    assert plan.torch_threads == plan.embed_workers  # one each, never none
    assert plan.decode_workers == cores


def test_a_slow_store_doubles_fetches_in_flight_up_to_the_cap():
    plan = thread_plan(2)
    flights = []
    for _ in range(5):
        plan = replan(plan, rates(fetch=10 * plan.fetch_in_flight, decode=7_500, embed=2_647),
                      max_fetch_in_flight=256)
        flights.append(plan.fetch_in_flight)
    assert flights == [64, 128, 256, 256, 256]
    assert (plan.decode_workers, plan.torch_threads) == (1, 2)


def test_near_ties_change_nothing_and_unmeasured_stages_are_ignored():
    plan = thread_plan(2)
    assert replan(plan, rates(decode=2_500, embed=2_647)) is plan  # within 10 %
    assert replan(plan, {}) is plan
    assert replan(plan, {"decode": StageRate(0.0), "embed": StageRate(100.0)}) is plan
    assert replan(plan, {"store": StageRate(1.0), "embed": StageRate(100.0)}) is plan
    # arrays have no fetch stage: decode against embed alone
    assert replan(plan, rates(decode=100, embed=2_647)).decode_workers == 2


def test_pipeline_activates_the_threads_its_planner_asks_for():
    import threading
    import time

    seen: dict[str, set[str]] = {"work": set()}
    lock = threading.Lock()

    def slow(xs):
        with lock:
            seen["work"].add(threading.current_thread().name)
        time.sleep(0.002)
        return xs

    asks = []

    def planner(r):
        asks.append(r)
        return {"work": 4}

    pipe = Pipeline([Stage("work", slow, workers=1, max_workers=4)], planner=planner,
                    plan_interval=0.0, plan_every=2)
    assert sorted(pipe.run(range(400))) == list(range(400))
    assert asks and set(asks[0]) == {"work"} and asks[0]["work"].capacity > 0
    assert pipe.plans == 1 and pipe.stats[0].workers == 4
    assert len(seen["work"]) > 1  # the threads activated mid-run took work
    # inactive threads exit cleanly: a pipeline whose planner never asks still ends
    pipe = Pipeline([Stage("work", slow, workers=1, max_workers=4)])
    assert sorted(pipe.run(range(50))) == list(range(50))


def test_cpu_time_stages_count_work_not_waiting_and_threads_know_their_index():
    import threading
    import time

    from alaas_lab.pipeline import worker_index

    seen: set[int] = set()
    lock = threading.Lock()

    def wait(xs):  # a thread that waits (for a core, a lock, I/O) does no work
        with lock:
            seen.add(worker_index())
        time.sleep(0.01)
        return xs

    pipe = Pipeline([Stage("cpu", wait, workers=3, cpu_time=True),
                     Stage("wall", wait, workers=1)])
    assert sorted(pipe.run(range(30))) == list(range(30))
    cpu, wall = pipe.stats
    assert wall.busy_s >= 0.25  # 30 calls of 10 ms each, counted in wall time
    assert cpu.busy_s < 0.5 * wall.busy_s  # the same waits cost the CPU stage almost nothing
    assert seen == {0, 1, 2}  # the three cpu threads and the wall thread (index 0)
    assert worker_index() == 0  # outside a pipeline


def test_a_real_push_replans_and_gives_the_backbones_own_embeddings(tmp_path):
    images = (load_digits().images[:96] * 16).astype(np.uint8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    uris = sorted(str(p) for p in folder.glob("*.png"))
    logging.getLogger("alaas_lab.models.backbones").setLevel(logging.ERROR)
    bb = ResNet18Backbone(init="random", size=32)
    dec = Decoder("image", mode="L")
    expected = bb.embed_items([dec.decode_bytes(open(u, "rb").read(), uri=u) for u in uris])
    cfg = load_config({
        "name": "threads", "classes": ["a", "b"], "cache_dir": str(tmp_path / "cache"),
        "data": {"kind": "image", "image_mode": "L"},
        "active_learning": {"strategy": {"type": "random"},
                            "model": {"name": "resnet18", "batch_size": 4}},
    })
    s = PoolSession(cfg, tmp_path / "s", backbone=bb)
    # start from one torch thread on 2 cores: the plan is revisited mid-push
    ing = Ingestor(s, ThreadPlan(2, 1, 1, 8))
    ing.plan_interval = 0.0
    try:
        out = ing.push_uris(uris)
        assert out["embedded"] == 96 and not out["quarantined"]
        plans = out["pipeline"]["threads"]
        assert len(plans) >= 2, f"no re-plan happened: {plans}"
        # where threads go depends on the measured rates (tested above on given rates);
        # here: the plan is revisited mid-push and the embeddings stay the backbone's own
        got = s.emb.matrix[out["item_ids"]]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    finally:
        ing.close()
        s.close()
