"""Pushing data into the pool: identity → cache → fetch → decode → embed → store.

Items whose embedding is already cached (same identity, same model) skip every
stage after the identity lookup: for URIs that is one ``HEAD``/``stat`` per item,
so a warm push reads no image bytes at all. The rest flow through a
:class:`~alaas_lab.pipeline.Pipeline` whose stages overlap::

    fetch (I/O threads, many requests in flight)
      → decode + preprocess (decode_workers threads; each decodes its items, then
        the backbone prepares them as one stack: preprocess_many)
      → embed (embed_workers threads, each with its own dynamic batch and its share
        of torch_threads intra-op threads)
      → store (cache append + in-memory matrix)

A push starts from the worker's :class:`~alaas_lab.threads.ThreadPlan` (all cores to
torch as up to four embed threads, one decode thread, 32 fetches in flight); every
few batches the pipeline measures its stages (decode and store by their threads' CPU
time) and :func:`~alaas_lab.threads.replan` moves threads to the slowest one (more
fetches in flight, another decode thread, torch threads given up to a busy decode
pool). Each embed thread applies its torch thread count before each batch; decode
threads run torch (the backbone's resize) on one thread each.

An item that cannot be fetched or decoded becomes a quarantine record that the
remaining stages pass through untouched; it is journaled and reported, and the
rest of the pool proceeds.

With ``executor: {kind: dask}`` in the config, fetch → decode → embed run on a
Dask cluster instead (:mod:`alaas_lab.executors`): identity, cache lookup, store
and quarantine stay here, batches of misses go out (at most ``max_in_flight`` at
a time) and their results are stored as they complete. See ``docs/dask.md``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._failpoints import failpoint
from ..cache import content_identity, item_identity
from ..data import Decoder, Fetcher, Quarantine, is_local, quarantine
from ..errors import InputError
from ..pipeline import Pipeline, PipelineError, Stage, StageRate, StageStats, worker_index
from ..threads import ThreadPlan, replan
from .state import PoolSession

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

FETCH_BATCH = 8  # URIs per fetch call: requests in flight = active fetch threads × this
MAX_FETCH_IN_FLIGHT = 256
DECODE_BATCH = 32  # items a decode thread prepares as one stack


@dataclass
class _Item:
    item_id: int
    uri: str
    key: str
    payload: Any = None  # bytes, decoded value, then preprocessed tensor


@dataclass
class _Bad:
    item_id: int
    record: Quarantine


def _is_bad(x: Any) -> bool:
    return isinstance(x, _Bad)


class Ingestor:
    """Runs pushes for one :class:`PoolSession`.

    Parameters
    ----------
    session : PoolSession
    plan : ThreadPlan
        The plan each push starts from; the pipeline re-plans as it measures.
    fetcher : Fetcher, optional
        Defaults to one built from the config's ``data.storage_options``.
    executor : DaskExecutor, optional
        Where fetch → decode → embed run. Defaults to a
        :class:`~alaas_lab.executors.DaskExecutor` for the config's ``executor.address``
        when ``executor.kind`` is ``dask`` (connected on the first push that needs it),
        and to this process otherwise.
    """

    def __init__(self, session: PoolSession, plan: ThreadPlan, *,
                 fetcher: Fetcher | None = None, executor: Any = None) -> None:
        self.session = session
        self.plan = plan
        self.live_plan = plan  # the current push's plan, re-planned as it runs
        data = session.config.data
        self.fetcher = fetcher or Fetcher(data.storage_options or None,
                                          max_in_flight=plan.fetch_in_flight,
                                          inline_local=True)  # the fetch stage's threads
        self.decoder = Decoder("npy" if data.kind == "array" else data.kind,
                               mode=data.image_mode)
        self.last_report: dict[str, Any] = {}
        self.executor = executor
        if executor is None and session.config.executor.kind == "dask":
            from ..executors import DaskExecutor

            self.executor = DaskExecutor(session.config.executor.address)
        self.progress_interval = 0.5  # seconds between progress reports
        self.plan_interval = 0.2  # least seconds between two re-plans of a push

    # ------------------------------------------------------------ entry points
    def push_uris(self, uris: Sequence[str], *, infos: dict[str, dict[str, Any]] | None = None,
                  on_progress: Progress | None = None) -> dict[str, Any]:
        """Add URIs to the pool and embed those not embedded yet.

        ``infos`` maps URIs to what a listing already said about them (size, ETag,
        mtime); those items need no lookup of their own before the cache is asked.
        """
        t0 = time.perf_counter()
        s = self.session
        n_before = s.n_items
        ids = s.add_items(list(uris))
        todo = [(int(i), u) for i, u in zip(ids.tolist(), uris, strict=True)
                if not s.emb.filled[i] and not s.quarantined[i]]
        todo = list(dict(todo).items())  # a URI pushed twice is processed once
        infos = infos or {}
        keys = {i: item_identity(u, infos[u]) for i, u in todo if infos.get(u)}
        unknown = [(i, u) for i, u in todo if i not in keys]
        for (item_id, uri), res in zip(unknown, self.fetcher.info_many([u for _, u in unknown]),
                                       strict=True):
            if res.ok:
                keys[item_id] = item_identity(uri, res.info)
            else:
                s.mark_quarantined(item_id, uri, "fetch", res.error or "lookup failed")
        if keys:
            s.journal.add_items([s.uris[i] for i in keys], content_keys=list(keys.values()))
        items = [_Item(i, s.uris[i], k) for i, k in keys.items()]
        hits, misses = self._from_cache(items)
        if self.executor is not None:
            return self._summary(ids, hits, self._run_remote(misses, on_progress), t0, n_before)
        # Local reads take microseconds: one fetch thread, which competes less with decode
        # and embed for the GIL; remote reads wait on the network, so many start in flight
        # (and the planner adds more while fetching is the slowest stage).
        plan = self.plan
        if all(is_local(it.uri) for it in misses):
            plan = replace(plan, fetch_in_flight=FETCH_BATCH)
        stages = [
            Stage("fetch", self._fetch, workers=max(1, plan.fetch_in_flight // FETCH_BATCH),
                  max_workers=MAX_FETCH_IN_FLIGHT // FETCH_BATCH, batch_size=FETCH_BATCH,
                  passthrough=_is_bad),
            *self._compute_stages(),
        ]
        embedded = self._run(stages, misses, on_progress, plan)
        return self._summary(ids, hits, embedded, t0, n_before)

    def push_arrays(self, rows: np.ndarray, *, uris: Sequence[str] | None = None,
                    on_progress: Progress | None = None) -> dict[str, Any]:
        """Add array items (e.g. images ``[n, h, w]`` or features ``[n, f]``) to the pool."""
        t0 = time.perf_counter()
        s = self.session
        if rows.dtype.kind == "f":
            bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
            if bad.any():
                raise InputError(
                    f"pushed array row {int(np.flatnonzero(bad)[0])} has NaN or infinite values "
                    f"({int(bad.sum())} row(s) in all); drop or impute them and push again.")
        keys = s.array_keys(rows)
        if uris is not None and len(uris) != len(rows):
            raise InputError(f"push got {len(rows)} rows but {len(uris)} names; give one name "
                             "per row.")
        names = list(uris) if uris is not None else [f"array:{k.split(':', 1)[1]}" for k in keys]
        n_before = s.n_items
        ids = s.add_items(names, content_keys=keys)
        s.raw.put(ids.tolist(), rows)
        return self._embed_new(ids, names, keys, rows, t0, n_before, on_progress)

    def push_texts(self, texts: Sequence[str], *, on_progress: Progress | None = None
                   ) -> dict[str, Any]:
        """Add raw texts to the pool (a text session); each is named ``text:<hash>``."""
        t0 = time.perf_counter()
        s = self.session
        keys = [content_identity(b"text\0" + t.encode("utf-8")) for t in texts]
        names = [f"text:{k.split(':', 1)[1]}" for k in keys]
        n_before = s.n_items
        ids = s.add_items(names, content_keys=keys)
        s.raw.put_texts(ids.tolist(), list(texts))
        return self._embed_new(ids, names, keys, list(texts), t0, n_before, on_progress)

    def push_raw(self, item_ids: Sequence[int], *, on_progress: Progress | None = None
                 ) -> dict[str, Any]:
        """Embed items pushed from memory whose rows or texts are kept in ``raw/``.

        A worker killed mid-push resumes with this: each item keeps its id, its
        name and its content key (both derive from the content).
        """
        s = self.session
        texts: list[str] = []
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i in item_ids:
            value = s.raw.get(i)
            if isinstance(value, str):
                texts.append(value)
            elif value is not None:
                groups.setdefault((value.shape, value.dtype.str), []).append(i)
        out: dict[str, Any] = {"embedded": 0, "cache_hits": 0}
        for ids in groups.values():
            rows = np.stack([np.asarray(s.raw.get(i)) for i in ids])
            part = self.push_arrays(rows, uris=[s.uris[i] for i in ids], on_progress=on_progress)
            out = {k: out[k] + part[k] for k in out}
        if texts:
            part = self.push_texts(texts, on_progress=on_progress)
            out = {k: out[k] + part[k] for k in out}
        return out

    def _embed_new(self, ids: np.ndarray, names: list[str], keys: list[str], payloads: Any,
                   t0: float, n_before: int, on_progress: Progress | None) -> dict[str, Any]:
        """Embed the pushed in-memory items (rows or texts) that no cache entry covers."""
        s = self.session
        items = [_Item(int(i), names[j], keys[j], payloads[j])
                 for j, i in enumerate(ids.tolist()) if not s.emb.filled[i]]
        items = list({it.item_id: it for it in items}.values())
        hits, misses = self._from_cache(items)
        if self.executor is not None:
            return self._summary(ids, hits, self._run_remote(misses, on_progress), t0, n_before)
        embedded = self._run(self._compute_stages(), misses, on_progress)
        return self._summary(ids, hits, embedded, t0, n_before)

    # ------------------------------------------------------------ stages
    def _compute_stages(self) -> list[Stage]:
        model = self.session.config.active_learning.model
        return [
            Stage("decode", self._decode, workers=self.plan.decode_workers,
                  max_workers=self.plan.cores, batch_size=DECODE_BATCH, passthrough=_is_bad,
                  cpu_time=True),
            Stage("embed", self._embed, workers=self.plan.embed_workers,
                  batch_size=model.batch_size, max_wait_s=0.02, passthrough=_is_bad),
            Stage("store", self._store, batch_size=256, passthrough=_is_bad, cpu_time=True),
        ]

    def _fetch(self, batch: list[_Item]) -> list[_Item | _Bad]:
        failpoint("fetch")
        out: list[_Item | _Bad] = []
        for item, res in zip(batch, self.fetcher.fetch_many([b.uri for b in batch]),
                             strict=True):
            if res.ok:
                item.payload = res.data
                out.append(item)
            else:
                out.append(_Bad(item.item_id, quarantine(item.uri, "fetch", res.error or "")))
        return out

    def _decode(self, batch: list[_Item]) -> list[_Item | _Bad]:
        _use_torch_threads(1)  # the decode threads are the parallelism here
        backbone = self.session.backbone
        out: list[_Item | _Bad] = []
        decoded: list[_Item] = []
        for item in batch:
            try:
                value = item.payload
                if isinstance(value, (bytes, bytearray, memoryview)):
                    item.payload = self.decoder.decode_bytes(bytes(value), uri=item.uri)
                decoded.append(item)
            except Exception as exc:
                out.append(_Bad(item.item_id, quarantine(item.uri, "decode", exc)))
        try:
            ready = backbone.preprocess_many([it.payload for it in decoded])
        except Exception:  # one bad item spoils the stack: prepare one by one to name it
            ready = None
        for j, item in enumerate(decoded):
            try:
                item.payload = ready[j] if ready is not None else backbone.preprocess(item.payload)
                out.append(item)
            except Exception as exc:
                out.append(_Bad(item.item_id, quarantine(item.uri, "decode", exc)))
        return out

    def _embed(self, batch: list[_Item]) -> list[tuple[list[_Item], np.ndarray] | _Bad]:
        """Embed a batch, one group per input shape; an item of an odd shape is set aside.

        A batch may mix shapes (a folder of 32×32 PNGs with one 20×20): items whose
        embedding width differs from the session's (or, in a new session, from the
        largest group's) are quarantined by name instead of failing the batch.
        """
        failpoint("embed")
        _use_torch_threads(self.live_plan.torch_threads_of(worker_index()))
        backbone = self.session.backbone
        width = self.session.emb.width
        groups: dict[Any, list[_Item]] = {}
        for it in batch:
            groups.setdefault(tuple(getattr(it.payload, "shape", ())), []).append(it)
        # the group that fits the session's width first, then the largest
        order = sorted(groups.items(), key=lambda g: (_size(g[0]) != width, -len(g[1])))
        out: list[tuple[list[_Item], np.ndarray] | _Bad] = []
        for shape, items in order:
            try:
                rows = np.asarray(backbone.embed([it.payload for it in items]), dtype=np.float32)
            except InputError as exc:  # the backbone refuses these items, not the batch
                out.extend(_Bad(it.item_id, quarantine(it.uri, "decode", exc)) for it in items)
                continue
            finally:
                for it in items:
                    it.payload = None  # free the decoded tensor
            if width is not None and rows.shape[1] != width:
                reason = (f"its input {shape or ''} embeds to {rows.shape[1]} values but this "
                          f"session's embeddings have {width}: resize it to the pool's shape, "
                          "or use a backbone with a fixed input size (e.g. resnet18)")
                out.extend(_Bad(it.item_id, quarantine(it.uri, "decode", reason))
                           for it in items)
                continue
            width = rows.shape[1]
            out.append((items, rows))
        return out

    def _store(self, batches: list[tuple[list[_Item], np.ndarray]]) -> list[int]:
        items = [it for b, _ in batches for it in b]
        rows = np.concatenate([r for _, r in batches])
        self.session.cache_put([it.key for it in items], rows)
        ids = np.array([it.item_id for it in items], dtype=np.int64)
        self.session.store_embeddings(ids, rows)
        return ids.tolist()

    # ------------------------------------------------------------ helpers
    def _from_cache(self, items: list[_Item]) -> tuple[int, list[_Item]]:
        if not items:
            return 0, []
        found, rows = self.session.cache_get([it.key for it in items])
        hit_ids = np.array([it.item_id for it, f in zip(items, found, strict=True) if f],
                           dtype=np.int64)
        self.session.store_embeddings(hit_ids, rows)
        return int(found.sum()), [it for it, f in zip(items, found, strict=True) if not f]

    def _run(self, stages: list[Stage], items: list[_Item], on_progress: Progress | None,
             plan: ThreadPlan | None = None) -> int:
        if not items:
            self.last_report = {}
            return 0
        total = len(items)
        done = [0]

        def progress(report: dict[str, Any]) -> None:
            if on_progress is not None:
                on_progress({"stage": "pipeline", "done": done[0], "total": total,
                             "unit": "items", "stages": report["stages"],
                             "wall_s": report["wall_s"]})

        self.live_plan = plan = plan or self.plan
        plans = [plan.notes]

        embed_seen: dict[int, float] = {}  # embed capacity by torch threads, this push

        def planner(rates: dict[str, StageRate]) -> dict[str, int]:
            if "embed" in rates and rates["embed"].capacity > 0:
                embed_seen[self.live_plan.torch_threads] = rates["embed"].capacity
            new = replan(self.live_plan, rates, max_fetch_in_flight=MAX_FETCH_IN_FLIGHT,
                         embed_seen=embed_seen)
            if new is not self.live_plan:
                logger.debug("re-plan: %s (rates %s)", new.notes, rates)
                plans.append(new.notes)
                self.live_plan = new
            return {"fetch": new.fetch_in_flight // FETCH_BATCH, "decode": new.decode_workers,
                    "embed": new.embed_workers}

        pipe = Pipeline(stages, queue_size=64, on_progress=progress,
                        progress_interval=self.progress_interval, planner=planner,
                        plan_interval=self.plan_interval)
        for out in pipe.run(items):
            if isinstance(out, _Bad):
                self.session.mark_quarantined(out.item_id, out.record.uri, out.record.stage,
                                              out.record.reason)
            else:
                done[0] += 1
        self.last_report = {**pipe.report(), "threads": plans}
        return done[0]

    def _run_remote(self, items: list[_Item], on_progress: Progress | None) -> int:
        """Fetch, decode and embed ``items`` on the executor's cluster; store as they come.

        Batches of ``batch_size`` items (URIs, or stacked array rows) go out with at
        most ``max_in_flight`` unconsumed; each result is stored (cache + matrix) and
        its bad items quarantined while later batches still compute.
        """
        from ..executors import BatchSpec, ExecutorError, embed_batch

        self.last_report = {}
        if not items:
            return 0
        ex, s = self.executor, self.session
        spec = BatchSpec.for_config(s.config, fingerprint=s.backbone.fingerprint)
        size = ex.batch_size or s.config.active_learning.model.batch_size
        slots = ex.slots()
        arrays = items[0].payload is not None
        names = ("decode", "embed") if arrays else ("fetch", "decode", "embed")
        threads = ex.describe().get("threads") or 0
        stats = {n: StageStats(n, threads) for n in names}
        stats["store"] = StageStats("store", 1)
        t0 = last = time.perf_counter()
        total, done = len(items), 0

        def jobs():
            for start in range(0, total, size):
                chunk = items[start:start + size]
                rows = np.stack([it.payload for it in chunk]) if arrays else None
                yield chunk, (spec, [it.uri for it in chunk], rows)

        def report() -> dict[str, Any]:
            wall = time.perf_counter() - t0
            return {"wall_s": round(wall, 4), "stages": [st.as_dict(wall) for st in
                                                         stats.values()],
                    "executor": {**ex.describe(), "batch_size": size, "max_in_flight": slots}}

        def progress() -> None:
            if on_progress is not None:
                rep = report()
                on_progress({"stage": "pipeline", "done": done, "total": total,
                             "unit": "items", "stages": rep["stages"], "wall_s": rep["wall_s"],
                             "executor": rep["executor"]})

        try:
            ex.prepare(spec.backbone)  # every Dask worker loads the model before batches come
            for chunk, res in ex.map_unordered(embed_batch, jobs(), max_in_flight=slots):
                failpoint("embed")  # crash tests: the worker dies between two remote batches
                n_in = len(chunk)
                for name in names:  # items a stage set aside do not reach the next one
                    n_out = n_in - sum(1 for _, stage, _ in res.bad if stage == name)
                    st = stats[name]
                    st.items_in, st.items_out = st.items_in + n_in, st.items_out + n_out
                    st.calls += 1
                    st.busy_s += res.seconds.get(name, 0.0)
                    n_in = n_out
                for pos, stage, reason in res.bad:
                    item = chunk[pos]
                    s.mark_quarantined(item.item_id, item.uri, stage, reason)
                if len(res.ok):
                    t1 = time.perf_counter()
                    stored = self._store([([chunk[p] for p in res.ok.tolist()], res.rows)])
                    st = stats["store"]
                    st.items_in += len(stored)
                    st.items_out += len(stored)
                    st.calls += 1
                    st.busy_s += time.perf_counter() - t1
                    done += len(stored)
                if time.perf_counter() - last >= self.progress_interval:
                    last = time.perf_counter()
                    progress()
        except (PipelineError, ExecutorError):
            raise
        except Exception as exc:
            where = f"on the Dask cluster at {ex.address}"
            err = PipelineError(f"pipeline stage 'embed' failed {where}: "
                                f"{type(exc).__name__}: {exc}")
            raise err from exc
        finally:
            self.last_report = report()
        progress()
        return done

    def close(self) -> None:
        """Stop the fetch threads and disconnect from the cluster, if any."""
        self.fetcher.close()
        if self.executor is not None:
            self.executor.close()

    def _summary(self, ids: np.ndarray, hits: int, embedded: int, t0: float,
                 n_before: int) -> dict[str, Any]:
        s = self.session
        ids_l = ids.tolist()
        return {
            "item_ids": ids_l,
            "n_items": s.n_items,
            "n_new": len({i for i in ids_l if i >= n_before}),  # items the pool did not hold
            "cache_hits": hits,
            "embedded": embedded,
            "quarantined": [i for i in ids_l if s.quarantined[i]],
            "seconds": round(time.perf_counter() - t0, 4),
            "pipeline": self.last_report,
        }


def _use_torch_threads(n: int) -> None:
    """Give the calling thread ``n`` torch intra-op threads (torch's setting is per thread)."""
    torch = sys.modules.get("torch")  # a backbone without torch needs no threads
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else -1
