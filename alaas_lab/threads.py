"""How many threads each pipeline stage gets: a starting plan, then re-plans from measured rates.

The push pipeline has three consumers of the machine: fetch (requests in flight; it
waits on I/O and costs little CPU), decode (a pool of threads running the image
decoder and the backbone's batched preprocessing) and embed (``embed_workers``
threads, each embedding its own batch on its share of ``torch_threads`` intra-op
threads). No stage is given a fixed share of the cores.

Embedding gets its cores as independent batches on separate threads before it gets
them as intra-op threads of one batch: a forward pass split over *t* threads waits at
every operator for the slowest of them, so it scales worse than *t* batches side by
side and collapses when one of its threads loses its core to decoding or to another
process. On 2 cores, ResNet-18 at 32 px embeds about 2,200 img/s as 2 threads × 1
torch thread against 1,750 as 1 × 2 (``benchmarks/one_round.py`` prints both).
:func:`thread_plan` starts with ``min(cores, 4)`` embed threads sharing every core and
one decode thread (four bound the memory that batches in flight hold); while a push
runs, the pipeline measures each stage over short windows and :func:`replan` moves
threads to the slowest stage:

- fetch is the bottleneck → twice the requests in flight (up to ``max_fetch_in_flight``);
- decode is the bottleneck → one more decode thread (up to the core count). Decode is
  rated by the CPU time its threads use, not their wall time, so a decode thread that
  merely waits for a core the embed threads hold is not mistaken for a slow one;
- torch may use the cores that decoding does not keep busy: ``cores - spare``, where
  ``spare`` follows the decode threads' busy cores with a hysteresis of 0.75 core (so a
  decode pool that needs a fifth of a core costs torch nothing, and one that keeps a
  whole core busy takes that core from torch); every embed thread keeps at least one;
- within that cap, torch gets the thread count that embedded fastest so far in this
  push (``embed_seen``): the cap is tried first, then, once and only while embed is the
  bottleneck, one thread fewer. On a machine whose cores other processes also use,
  intra-op threads can collapse (every barrier waits for a descheduled thread); the
  probe catches that at the cost of one short window.

:func:`replan` is a pure function of the current plan and the measured rates, so it is
tested on hand-made numbers (``tests/test_threads.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["StageRate", "ThreadPlan", "available_cores", "replan", "thread_plan"]

HYSTERESIS = 0.75  # busy cores past the reserved ones before torch gives or takes a thread
MARGIN = 0.9  # a stage is the bottleneck when below MARGIN × the next-slowest capacity
MAX_EMBED_WORKERS = 4  # embed threads at most: each holds a batch in memory


@dataclass(frozen=True)
class ThreadPlan:
    """Threads for each CPU consumer of a push.

    Attributes
    ----------
    cores : int
        Cores this process may use.
    decode_workers : int
        Decode + preprocess threads (1 to ``cores``).
    torch_threads : int
        Torch intra-op threads of the embed stage, over all its threads (at least
        ``embed_workers``); :meth:`torch_threads_of` says how many each one uses.
    fetch_in_flight : int
        Requests in flight in the fetch stage.
    decode_reserve : int
        Cores torch leaves to the decode threads (torch uses at most ``cores -
        decode_reserve``).
    embed_workers : int
        Embed threads, each with its own batch.
    """

    cores: int
    decode_workers: int
    torch_threads: int
    fetch_in_flight: int = 32
    decode_reserve: int = 0
    embed_workers: int = 1

    def torch_threads_of(self, worker: int) -> int:
        """Intra-op threads of embed thread ``worker`` (the first ones take the remainder)."""
        share, extra = divmod(max(self.torch_threads, self.embed_workers), self.embed_workers)
        return share + (1 if worker % self.embed_workers < extra else 0)

    @property
    def notes(self) -> str:
        """The plan in words (logs, benchmark reports)."""
        shares = sorted({self.torch_threads_of(w) for w in range(self.embed_workers)},
                        reverse=True)
        each = " or ".join(str(n) for n in shares)
        return (f"{self.cores} cores: {self.embed_workers} embed thread(s) x {each} torch "
                f"thread(s), {self.decode_workers} decode thread(s), {self.fetch_in_flight} "
                "fetches in flight")


@dataclass(frozen=True)
class StageRate:
    """One stage over the last measurement window.

    Attributes
    ----------
    capacity : float
        Items per second the stage would pass if it never waited for input: its items
        per busy thread-second times its active threads. A stage that computes in its
        own threads (decode) counts their CPU time as busy, so waiting for a core is
        not counted as work; one that waits on I/O (fetch) or computes on other threads
        too (embed's intra-op threads) counts wall time.
    busy_cores : float
        Busy thread-seconds per wall second (how many cores its threads kept busy, for
        a CPU stage).
    """

    capacity: float
    busy_cores: float = 0.0


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_plan(cores: int | None = None, *, fetch_in_flight: int = 32) -> ThreadPlan:
    """The plan a push starts with: every core to torch, one decode thread.

    Embedding is the slowest stage of an image push on a CPU by a wide margin (a
    decode thread keeps up with several cores of ResNet-18), so torch starts with all
    cores, as ``min(cores, 4)`` embed threads that share them; :func:`replan` takes
    cores back for decoding only when decoding measurably needs them.

    Parameters
    ----------
    cores : int, optional
        Defaults to :func:`available_cores`.
    fetch_in_flight : int, default 32
        Requests in flight at the start.
    """
    c = max(1, int(cores or available_cores()))
    return ThreadPlan(c, 1, c, max(1, int(fetch_in_flight)),
                      embed_workers=min(c, MAX_EMBED_WORKERS))


def replan(plan: ThreadPlan, rates: Mapping[str, StageRate], *,
           max_fetch_in_flight: int = 256,
           embed_seen: Mapping[int, float] | None = None) -> ThreadPlan:
    """Move threads toward the slowest stage, from rates measured under ``plan``.

    Parameters
    ----------
    plan : ThreadPlan
        The plan the rates were measured under.
    rates : mapping of str to StageRate
        Keys among ``"fetch"``, ``"decode"``, ``"embed"``; a stage that is missing (a
        push of arrays has no fetch) or measured nothing (capacity 0) is left out.
    max_fetch_in_flight : int, default 256
        The most requests in flight fetch may grow to.
    embed_seen : mapping of int to float, optional
        Embed capacity measured so far at each torch thread count (the caller adds
        ``rates["embed"].capacity`` under ``plan.torch_threads`` before calling).

    Returns
    -------
    ThreadPlan
        ``plan`` itself when nothing changes.
    """
    known = {k: r for k, r in rates.items()
             if k in ("fetch", "decode", "embed") and r.capacity > 0}
    if not known:
        return plan
    c = plan.cores
    decode, fetch = plan.decode_workers, plan.fetch_in_flight
    slowest = min(known, key=lambda k: known[k].capacity)
    others = [r.capacity for k, r in known.items() if k != slowest]
    clear = not others or known[slowest].capacity < MARGIN * min(others)
    if clear and slowest == "fetch":
        fetch = min(max_fetch_in_flight, 2 * fetch)
    elif clear and slowest == "decode":
        decode = min(c, decode + 1)
    spare = plan.decode_reserve
    if "decode" in known:
        busy = known["decode"].busy_cores
        if busy > spare + HYSTERESIS:
            spare += 1
        elif busy < spare - HYSTERESIS:
            spare -= 1
    spare = min(c - 1, max(0, spare))
    least = plan.embed_workers  # every embed thread keeps one
    cap = min(c, max(least, c - spare))
    seen = {t: r for t, r in (embed_seen or {}).items() if least <= t <= cap and r > 0}
    if cap not in seen:
        torch_threads = cap
    elif cap > least and cap - 1 not in seen and slowest == "embed":
        torch_threads = cap - 1  # the probe: does one thread fewer embed faster?
    else:
        torch_threads = max(seen, key=lambda t: seen[t])
    new = replace(plan, decode_workers=decode, torch_threads=torch_threads,
                  fetch_in_flight=fetch, decode_reserve=spare)
    return plan if new == plan else new
