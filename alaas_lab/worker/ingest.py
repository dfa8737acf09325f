"""Pushing data into the pool: identity → cache → fetch → decode → embed → store.

Items whose embedding is already cached (same identity, same model) skip every
stage after the identity lookup: for URIs that is one ``HEAD``/``stat`` per item,
so a warm push reads no image bytes at all. The rest flow through a
:class:`~alaas_lab.pipeline.Pipeline` whose stages overlap::

    fetch (I/O threads, many requests in flight)
      → decode + preprocess (decode_workers threads)
      → embed (one thread, torch_threads intra-op threads, dynamic batches)
      → store (cache append + in-memory matrix)

An item that cannot be fetched or decoded becomes a quarantine record that the
remaining stages pass through untouched; it is journaled and reported, and the
rest of the pool proceeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import item_identity
from ..data import Decoder, Fetcher, Quarantine, quarantine
from ..pipeline import Pipeline, Stage, ThreadPlan
from .state import PoolSession

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


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
        Decode threads and fetch concurrency (torch threads are set by the worker).
    fetcher : Fetcher, optional
        Defaults to one built from the config's ``data.storage_options``.
    """

    def __init__(self, session: PoolSession, plan: ThreadPlan, *,
                 fetcher: Fetcher | None = None) -> None:
        self.session = session
        self.plan = plan
        data = session.config.data
        self.fetcher = fetcher or Fetcher(data.storage_options or None,
                                          max_in_flight=plan.fetch_in_flight)
        self.decoder = Decoder("npy" if data.kind == "array" else data.kind,
                               mode=data.image_mode)
        self.last_report: dict[str, Any] = {}

    # ------------------------------------------------------------ entry points
    def push_uris(self, uris: Sequence[str], *, infos: dict[str, dict[str, Any]] | None = None,
                  on_progress: Progress | None = None) -> dict[str, Any]:
        """Add URIs to the pool and embed those not embedded yet.

        ``infos`` maps URIs to what a listing already said about them (size, ETag,
        mtime); those items need no lookup of their own before the cache is asked.
        """
        t0 = time.perf_counter()
        s = self.session
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
        stages = [
            Stage("fetch", self._fetch, workers=4,
                  batch_size=max(1, self.plan.fetch_in_flight // 4), passthrough=_is_bad),
            *self._compute_stages(),
        ]
        embedded = self._run(stages, misses, on_progress)
        return self._summary(ids, hits, embedded, t0)

    def push_arrays(self, rows: np.ndarray, *, uris: Sequence[str] | None = None,
                    on_progress: Progress | None = None) -> dict[str, Any]:
        """Add array items (e.g. images ``[n, h, w]`` or features ``[n, f]``) to the pool."""
        t0 = time.perf_counter()
        s = self.session
        keys = s.array_keys(rows)
        names = list(uris) if uris is not None else [f"array:{k.split(':', 1)[1]}" for k in keys]
        ids = s.add_items(names, content_keys=keys)
        s.raw.put(ids.tolist(), rows)
        items = [_Item(int(i), names[j], keys[j], rows[j]) for j, i in enumerate(ids.tolist())
                 if not s.emb.filled[i]]
        items = list({it.item_id: it for it in items}.values())
        hits, misses = self._from_cache(items)
        embedded = self._run(self._compute_stages(), misses, on_progress)
        return self._summary(ids, hits, embedded, t0)

    # ------------------------------------------------------------ stages
    def _compute_stages(self) -> list[Stage]:
        model = self.session.config.active_learning.model
        return [
            Stage("decode", self._decode, workers=self.plan.decode_workers, batch_size=8,
                  passthrough=_is_bad),
            Stage("embed", self._embed, batch_size=model.batch_size, max_wait_s=0.02,
                  passthrough=_is_bad),
            Stage("store", self._store, batch_size=256, passthrough=_is_bad),
        ]

    def _fetch(self, batch: list[_Item]) -> list[_Item | _Bad]:
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
        backbone = self.session.backbone
        out: list[_Item | _Bad] = []
        for item in batch:
            try:
                value = item.payload
                if isinstance(value, (bytes, bytearray, memoryview)):
                    value = self.decoder.decode_bytes(bytes(value), uri=item.uri)
                item.payload = backbone.preprocess(value)
                out.append(item)
            except Exception as exc:
                out.append(_Bad(item.item_id, quarantine(item.uri, "decode", exc)))
        return out

    def _embed(self, batch: list[_Item]) -> list[tuple[list[_Item], np.ndarray]]:
        rows = self.session.backbone.embed([it.payload for it in batch])
        for it in batch:
            it.payload = None  # free the decoded tensor
        return [(batch, np.asarray(rows, dtype=np.float32))]

    def _store(self, batches: list[tuple[list[_Item], np.ndarray]]) -> list[int]:
        items = [it for b, _ in batches for it in b]
        rows = np.concatenate([r for _, r in batches])
        self.session.cache.put_many([it.key for it in items], rows)
        ids = np.array([it.item_id for it in items], dtype=np.int64)
        self.session.store_embeddings(ids, rows)
        return ids.tolist()

    # ------------------------------------------------------------ helpers
    def _from_cache(self, items: list[_Item]) -> tuple[int, list[_Item]]:
        if not items:
            return 0, []
        found, rows = self.session.cache.get_many([it.key for it in items])
        hit_ids = np.array([it.item_id for it, f in zip(items, found, strict=True) if f],
                           dtype=np.int64)
        self.session.store_embeddings(hit_ids, rows)
        return int(found.sum()), [it for it, f in zip(items, found, strict=True) if not f]

    def _run(self, stages: list[Stage], items: list[_Item], on_progress: Progress | None) -> int:
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

        pipe = Pipeline(stages, queue_size=64, on_progress=progress, progress_interval=0.5)
        for out in pipe.run(items):
            if isinstance(out, _Bad):
                self.session.mark_quarantined(out.item_id, out.record.uri, out.record.stage,
                                              out.record.reason)
            else:
                done[0] += 1
        self.last_report = pipe.report()
        return done[0]

    def _summary(self, ids: np.ndarray, hits: int, embedded: int, t0: float) -> dict[str, Any]:
        s = self.session
        ids_l = ids.tolist()
        return {
            "item_ids": ids_l,
            "n_items": s.n_items,
            "n_new": embedded + hits,
            "cache_hits": hits,
            "embedded": embedded,
            "quarantined": [i for i in ids_l if s.quarantined[i]],
            "seconds": round(time.perf_counter() - t0, 4),
            "pipeline": self.last_report,
        }
