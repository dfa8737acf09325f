"""Where the embed stage runs: in the worker (the default), or on a Dask cluster.

With ``executor: {kind: dask, address: tcp://scheduler:8786}`` in the config, the
worker keeps identity, cache lookup, cache writes and selection, and sends the
expensive middle of the pipeline, fetch → decode + preprocess → embed, to the
cluster in batches::

    worker                                   Dask cluster (N processes × T threads)
    ------                                   ------------------------------------
    identity → cache lookup ─ misses ─┐
                                      ├─ submit ≤ max_in_flight batches ─▶ embed_batch(spec, batch)
    store ◀─ as_completed ◀───────────┘◀──── rows [b, d] float32, bad items, timings

A batch is a list of URIs (the Dask worker fetches the bytes itself, straight from
storage) or a stack of array rows. :func:`embed_batch` is a plain module-level
function, so Dask pickles it by reference: ``alaas_lab`` must be importable on every
Dask worker. Its one other argument, a :class:`BatchSpec`, is small: the backbone as a
registry name plus keyword arguments (:class:`BackboneSpec`) and the decoder settings.
Each Dask worker process builds the model once and keeps it in a module-level cache
keyed by that spec (:func:`worker_state` shows the cache); it checks the model's
fingerprint against the alaas_lab worker's, so two machines that load different
weights cannot write each other's embeddings into one cache.

Pickle only travels on the cluster's own channel between our processes (use TLS, see
``docs/dask.md``); the alaas_lab client↔worker wire stays pickle-free.

:meth:`DaskExecutor.map_unordered` keeps at most ``max_in_flight`` batches submitted
(backpressure: memory on the scheduler and the workers stays bounded whatever the pool
size) and yields results as they complete (:class:`distributed.as_completed`), topping
the window up before it yields, so the cluster computes while the worker stores.
Tasks of a Dask worker that dies are rescheduled by the scheduler (up to
``distributed.scheduler.allowed-failures`` deaths per task); an item that fails to
fetch or decode comes back as a quarantine record, exactly as on the local path.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._version import __version__
from .errors import ExecutorError, ModelError

__all__ = [
    "BackboneSpec",
    "BatchResult",
    "BatchSpec",
    "DaskExecutor",
    "ExecutorError",
    "embed_batch",
    "load_model",
    "worker_state",
]

logger = logging.getLogger(__name__)

KEY_PREFIX = "alaas-embed"


# ---------------------------------------------------------------------- specs
@dataclass(frozen=True)
class BackboneSpec:
    """A backbone as a registry name plus keyword arguments: small, picklable, hashable.

    Parameters
    ----------
    name : str
        Registry name (``models.backbone(name, **kwargs)``).
    kwargs : tuple of (str, value) pairs
        Sorted keyword arguments, e.g. ``(("weights", "/models/resnet18.pth"),)``. Paths
        are read on the Dask worker, so they must exist there.
    fingerprint : str, optional
        The fingerprint the alaas_lab worker computed; a Dask worker whose model has
        another one refuses to embed.
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    fingerprint: str | None = None

    @classmethod
    def from_model_config(cls, model: Any, *, fingerprint: str | None = None) -> BackboneSpec:
        """The spec of the backbone :class:`~alaas_lab.worker.PoolSession` builds from config.

        ``model`` is the config's ``active_learning.model`` (:class:`ModelConfig`).
        """
        from .models import config_kwargs

        # the worker's own kwargs (weights, hash, input size); each Dask worker embeds on
        # its CPU: the config's device names the worker machine's accelerator
        kwargs = config_kwargs(model, device="cpu")
        return cls(model.name, tuple(sorted(kwargs.items())), fingerprint)

    @property
    def key(self) -> str:
        """Cache key of the built model in a Dask worker process (name and kwargs)."""
        return json.dumps([self.name, [list(kv) for kv in self.kwargs]], default=str)

    def build(self) -> Any:
        from .models import backbone

        return backbone(self.name, **dict(self.kwargs))


@dataclass(frozen=True)
class BatchSpec:
    """Everything :func:`embed_batch` needs besides the items themselves.

    Parameters
    ----------
    backbone : BackboneSpec
    kind : {"image", "text", "npy"}
        How fetched bytes are decoded (the config's ``data.kind``; ``array`` is ``npy``).
    image_mode : {"L", "RGB"}
    storage_options : dict
        fsspec options for fetching URIs on the Dask worker (the config's
        ``data.storage_options``). Secrets here travel to the cluster: prefer credentials
        from the Dask workers' environment (IAM roles, env vars) and TLS.
    embed_batch_size : int
        Items per ``backbone.embed`` call on the Dask worker (the config's
        ``active_learning.model.batch_size``).
    fetch_in_flight : int
        Concurrent requests per Dask worker process while fetching a batch.
    """

    backbone: BackboneSpec
    kind: str = "image"
    image_mode: str = "RGB"
    storage_options: dict[str, Any] = field(default_factory=dict)
    embed_batch_size: int = 32
    fetch_in_flight: int = 32

    @classmethod
    def for_config(cls, config: Any, *, fingerprint: str | None = None) -> BatchSpec:
        model = config.active_learning.model
        data = config.data
        return cls(
            backbone=BackboneSpec.from_model_config(model, fingerprint=fingerprint),
            kind="npy" if data.kind == "array" else data.kind,
            image_mode=data.image_mode,
            storage_options=dict(data.storage_options or {}),
            embed_batch_size=model.batch_size,
        )


@dataclass
class BatchResult:
    """What one batch gives back.

    Attributes
    ----------
    ok : ndarray of shape (k,), int64
        Positions (in the submitted batch) of the items that were embedded, in row order.
    rows : ndarray of shape (k, d), float32
        Their embeddings.
    bad : list of (position, stage, reason)
        Items set aside, ``stage`` in {"fetch", "decode"}, ``reason`` as
        :func:`alaas_lab.data.quarantine` words it.
    seconds : dict
        ``{"fetch", "decode", "embed"}`` busy seconds on the Dask worker.
    worker : str
        Address of the Dask worker (or ``pid:<n>`` outside one).
    model_built : bool
        True when this batch built the model (the first on that process).
    """

    ok: np.ndarray
    rows: np.ndarray
    bad: list[tuple[int, str, str]]
    seconds: dict[str, float]
    worker: str
    model_built: bool = False


# ---------------------------------------------------------------------- on the Dask worker
_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}
_BUILDS: collections.Counter[str] = collections.Counter()
_FETCHERS: dict[str, Any] = {}
_DECODERS: dict[tuple[str, str], Any] = {}


def _where() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid:{os.getpid()}"


def _model(spec: BackboneSpec) -> tuple[Any, bool]:
    """The process's model for ``spec``, built on first use (one per process, not per task).

    Every call checks the model's fingerprint against the one the alaas_lab worker
    expects (a string compare; backbones compute their fingerprint once).
    """
    key = spec.key
    model = _MODELS.get(key)
    built = False
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                t0 = time.perf_counter()
                model = _MODELS[key] = spec.build()
                _BUILDS[key] += 1
                built = True
                logger.info("built backbone %s in %.2f s", spec.name, time.perf_counter() - t0)
    if spec.fingerprint is not None and model.fingerprint != spec.fingerprint:
        raise ModelError(
            f"Dask worker {_where()}: backbone {spec.name!r} {dict(spec.kwargs)} has "
            f"fingerprint {model.fingerprint!r}, but the alaas_lab worker's is "
            f"{spec.fingerprint!r}: the two load different weights or preprocessing. Make "
            "'active_learning.model.weights' name the same file on every machine, install "
            f"alaas_lab {__version__} on the Dask workers, and do not override the config's "
            "backbone in the worker when embedding on Dask.")
    return model, built


def _fetcher(options: dict[str, Any], in_flight: int) -> Any:
    key = json.dumps([options, in_flight], sort_keys=True, default=str)
    fetcher = _FETCHERS.get(key)
    if fetcher is None:
        from .data import Fetcher

        with _LOCK:
            fetcher = _FETCHERS.get(key)
            if fetcher is None:
                fetcher = _FETCHERS[key] = Fetcher(options or None, max_in_flight=in_flight)
    return fetcher


def _decoder(kind: str, mode: str) -> Any:
    decoder = _DECODERS.get((kind, mode))
    if decoder is None:
        from .data import Decoder

        decoder = _DECODERS.setdefault((kind, mode), Decoder(kind, mode=mode))  # type: ignore[arg-type]
    return decoder


def embed_batch(spec: BatchSpec, uris: Sequence[str], rows: Any = None) -> BatchResult:
    """Fetch (when ``rows`` is None), decode, preprocess and embed one batch.

    Runs on a Dask worker (or anywhere: it has no Dask dependency). Per-item failures
    become ``bad`` entries with the same stage and reason the in-process pipeline gives;
    an exception from the model itself propagates (the whole batch failed).

    Parameters
    ----------
    spec : BatchSpec
    uris : sequence of str
        The items' URIs (fetched when ``rows`` is None; named in reasons otherwise).
    rows : ndarray of shape (b, ...), optional
        Array items already in memory.

    Returns
    -------
    BatchResult
    """
    from .data import quarantine

    seconds = {"fetch": 0.0, "decode": 0.0, "embed": 0.0}
    bad: list[tuple[int, str, str]] = []
    values: list[tuple[int, Any]] = []
    t0 = time.perf_counter()
    if rows is None:
        fetcher = _fetcher(spec.storage_options, spec.fetch_in_flight)
        for pos, res in enumerate(fetcher.fetch_many(list(uris))):
            if res.ok:
                values.append((pos, res.data))
            else:
                bad.append((pos, "fetch", quarantine(uris[pos], "fetch", res.error or "").reason))
        t1 = time.perf_counter()
        seconds["fetch"] = t1 - t0
        t0 = t1
    else:
        values = list(enumerate(rows))
    backbone, built = _model(spec.backbone)
    decoder = _decoder(spec.kind, spec.image_mode)
    if built:
        seconds["model_load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    ready: list[tuple[int, Any]] = []
    for pos, value in values:  # the same steps as Ingestor._decode
        try:
            if isinstance(value, (bytes, bytearray, memoryview)):
                value = decoder.decode_bytes(bytes(value), uri=uris[pos])
            ready.append((pos, backbone.preprocess(value)))
        except Exception as exc:
            bad.append((pos, "decode", quarantine(uris[pos], "decode", exc).reason))
    t1 = time.perf_counter()
    seconds["decode"] = t1 - t0
    chunks = []
    size = max(1, spec.embed_batch_size)
    for start in range(0, len(ready), size):
        part = [p for _, p in ready[start:start + size]]
        chunks.append(np.asarray(backbone.embed(part), dtype=np.float32))
    seconds["embed"] = time.perf_counter() - t1
    out = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    ok = np.array([pos for pos, _ in ready], dtype=np.int64)
    return BatchResult(ok, out, sorted(bad), seconds, _where(), built)


def load_model(spec: BackboneSpec) -> dict[str, Any]:
    """Build (or find) this process's model for ``spec``; ``{"worker", "built", "seconds"}``.

    :meth:`DaskExecutor.prepare` runs it once on every Dask worker before a push.
    """
    t0 = time.perf_counter()
    _, built = _model(spec)
    return {"worker": _where(), "built": built, "seconds": time.perf_counter() - t0}


def worker_state() -> dict[str, Any]:
    """This process's model cache: ``{"pid", "version", "builds": {spec key: count}}``.

    Run it on every Dask worker with ``client.run(worker_state)``.
    """
    return {"pid": os.getpid(), "version": __version__, "builds": dict(_BUILDS)}


def _worker_info() -> dict[str, Any]:
    import sys

    return {"version": __version__, "python": sys.version.split()[0], "pid": os.getpid()}


# ---------------------------------------------------------------------- in the alaas_lab worker
class DaskExecutor:
    """A connection to a Dask scheduler that runs batches with bounded in-flight work.

    The connection opens on first use (:meth:`connect`), so a worker whose pushes all
    hit the cache never needs the cluster.

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``tcp://10.0.0.5:8786`` or ``tls://...``.
    connect_timeout : float, default 5.0
        Seconds to reach the scheduler before :class:`ExecutorError` is raised.
    max_in_flight : int, optional
        Batches submitted and not yet consumed. Defaults to twice the cluster's threads
        (at least 2), read at the start of each run so a cluster that scaled is used.
    batch_size : int, optional
        Items per task. Defaults to the config's ``active_learning.model.batch_size``.
        A task costs the scheduler roughly 0.2-0.5 ms, so a task should carry
        well over 10 ms of work (see ``docs/dask.md``).
    no_workers_timeout : float, default 30.0
        How long a run waits while the cluster has no workers at all before giving up.
    security : distributed.Security, optional
        TLS settings; None reads them from Dask's config (``distributed.comm.tls.*``,
        also settable as ``DASK_DISTRIBUTED__COMM__TLS__...`` environment variables).
    """

    kind = "dask"

    def __init__(self, address: str, *, connect_timeout: float = 5.0,
                 max_in_flight: int | None = None, batch_size: int | None = None,
                 no_workers_timeout: float = 30.0, security: Any = None) -> None:
        if not isinstance(address, str) or not address:
            raise ExecutorError(f"a Dask executor needs a scheduler address; got {address!r}.")
        self.address = address
        self.connect_timeout = float(connect_timeout)
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.no_workers_timeout = float(no_workers_timeout)
        self.security = security
        self._client: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ connection
    def _unreachable(self, detail: str) -> ExecutorError:
        return ExecutorError(
            f"cannot reach the Dask scheduler at {self.address} within "
            f"{self.connect_timeout:g} s ({detail}). Start one there (`dask scheduler`, then "
            f"`dask worker {self.address}` on each machine), fix 'executor.address' in the "
            "config, or set 'executor.kind: local' to embed inside the worker.")

    def connect(self) -> Any:
        """The :class:`distributed.Client`, connected on first call.

        Raises
        ------
        ExecutorError
            The scheduler does not answer within ``connect_timeout`` seconds, has no
            worker after ``no_workers_timeout`` seconds, or its workers cannot import
            alaas_lab.
        """
        with self._lock:
            if self._client is not None:
                if self._client.status == "running":
                    return self._client
                self._client.close(timeout=self.connect_timeout)  # lost: start afresh
                self._client = None
            try:
                from distributed import Client
            except ImportError as exc:
                raise ExecutorError(
                    f"'executor.kind: dask' needs dask.distributed ({exc}); install it with "
                    "pip install 'alaas_lab[dask]' or set 'executor.kind: local'.") from None
            try:
                client = Client(self.address, timeout=self.connect_timeout,
                                set_as_default=False, security=self.security)
            except (OSError, TimeoutError) as exc:
                raise self._unreachable(f"{type(exc).__name__}: {exc}") from None
            except TypeError as exc:
                if not self.address.startswith("tls://"):
                    raise
                raise ExecutorError(
                    f"the Dask scheduler at {self.address} speaks TLS, but no client "
                    f"certificate is configured ({exc}). Set the Dask config keys "
                    "distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
                    "distributed.comm.tls.client.key in the worker's environment (e.g. "
                    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE=/path/ca.pem); see docs/dask.md."
                ) from None
            except ValueError as exc:  # a malformed address, an unknown protocol
                raise ExecutorError(
                    f"'executor.address' {self.address!r} is not a Dask scheduler address "
                    f"({exc}); write it like tcp://host:8786 or tls://host:8786.") from None
            try:
                self._check_workers(client)
            except BaseException:
                client.close()
                raise
            self._client = client
            info = client.scheduler_info()
            logger.info("connected to Dask scheduler %s: %d workers, %d threads", self.address,
                        len(info.get("workers", {})), self.nthreads(client))
            return client

    def _check_workers(self, client: Any) -> None:
        try:
            client.wait_for_workers(1, timeout=self.no_workers_timeout)
        except (TimeoutError, OSError):
            raise ExecutorError(
                f"the Dask scheduler at {self.address} has no workers (waited "
                f"{self.no_workers_timeout:g} s); start some with `dask worker {self.address}`"
                " or set 'executor.kind: local'.") from None
        try:
            infos = client.run(_worker_info)
        except ImportError as exc:
            raise ExecutorError(
                f"the Dask workers of {self.address} cannot import alaas_lab ({exc}); install "
                f"alaas_lab {__version__} in their environment.") from None
        other = {addr: i["version"] for addr, i in infos.items() if i["version"] != __version__}
        if other:
            logger.warning("Dask workers run another alaas_lab version than this worker (%s): "
                           "%s", __version__, other)

    @staticmethod
    def nthreads(client: Any) -> int:
        return int(sum(client.nthreads().values()))

    def slots(self) -> int:
        """Batches kept in flight: ``max_in_flight``, or twice the cluster's threads."""
        if self.max_in_flight is not None:
            return max(1, int(self.max_in_flight))
        return max(2, 2 * self.nthreads(self.connect()))

    def prepare(self, spec: BackboneSpec) -> dict[str, dict[str, Any]]:
        """Load the model on every Dask worker now, one task per worker; wait for all.

        A push calls it first, so model loading (seconds for torch and the weights) is
        not charged to the first batches, every worker is ready when batches arrive, and
        a worker that lacks the weights or loads other ones fails the push at once, named.
        Workers that join later build the model on their first batch.

        Returns ``{worker address: {"worker", "built", "seconds"}}``.
        """
        client = self.connect()
        futures = [client.submit(load_model, spec, workers=[address], allow_other_workers=True,
                                 pure=False, key=f"{KEY_PREFIX}-load-{uuid.uuid4().hex[:12]}")
                   for address in client.nthreads()]
        try:
            return {r["worker"]: r for r in client.gather(futures)}
        finally:
            for f in futures:
                f.release()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "address": self.address}
        if self._client is not None and self._client.status == "running":
            workers = self._client.nthreads()
            out.update(workers=len(workers), threads=int(sum(workers.values())))
        return out

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close(timeout=self.connect_timeout)
                except Exception:  # closing a client whose scheduler is gone
                    logger.debug("closing the Dask client failed", exc_info=True)
                self._client = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ running
    def map_unordered(self, fn: Callable[..., Any], jobs: Iterable[tuple[Any, tuple[Any, ...]]],
                      *, max_in_flight: int | None = None, poll_s: float = 0.25
                      ) -> Iterator[tuple[Any, Any]]:
        """Run ``fn(*args)`` on the cluster for each ``(tag, args)``; yield ``(tag, result)``.

        Results come in completion order. At most ``max_in_flight`` (default
        :meth:`slots`) jobs are submitted and not yet consumed at any time (running,
        queued, or finished and waiting to be yielded); ``jobs`` is read lazily, one job
        per free slot. While the caller works on one result, the rest of the window keeps
        the cluster busy. Closing the generator early cancels what is still running.

        Raises
        ------
        ExecutorError
            A job's tasks killed ``allowed-failures`` Dask workers, the scheduler was lost,
            or the cluster had no workers for ``no_workers_timeout`` seconds.
        Exception
            Whatever ``fn`` raised on the cluster, unchanged.
        """
        from distributed import as_completed

        client = self.connect()
        limit = max_in_flight or self.slots()
        token = uuid.uuid4().hex[:12]
        source = iter(jobs)
        pending: dict[Any, Any] = {}  # submitted, not finished
        ready: collections.deque[tuple[Any, Any]] = collections.deque()  # finished, not yielded
        done = as_completed([], loop=client.loop, with_results=True, raise_errors=False)
        count = 0
        exhausted = False

        def top_up() -> None:
            nonlocal count, exhausted
            while not exhausted and len(pending) + len(ready) < limit:
                try:
                    tag, args = next(source)
                except StopIteration:
                    exhausted = True
                    return
                fut = client.submit(fn, *args, key=f"{KEY_PREFIX}-{token}-{count}", pure=False)
                count += 1
                pending[fut] = tag
                done.add(fut)

        try:
            top_up()
            idle_since = checked = time.monotonic()
            while pending or ready:
                if ready:
                    item = ready.popleft()
                    yield item
                    top_up()  # the slot is free once the caller is done with the result
                    continue
                batch = done.next_batch(block=False) if done.has_ready() else []
                if not batch:
                    now = time.monotonic()
                    if now - checked > 1.0:
                        checked = now
                        self._check_alive(client, now - idle_since, len(pending))
                    _wait_ready(done, poll_s)
                    continue
                idle_since = checked = time.monotonic()
                for fut, result in batch:
                    tag = pending.pop(fut)
                    ready.append((tag, self._outcome(fut, result, tag)))
                del batch, fut, result  # release the keys: the results are here now
        finally:
            if pending:
                client.cancel(list(pending), force=True)
            pending.clear()
            ready.clear()

    def _outcome(self, fut: Any, result: Any, tag: Any) -> Any:
        from distributed import KilledWorker

        if fut.status == "finished":
            return result
        if fut.status == "error":
            exc = result[1] if isinstance(result, tuple) else result
            if isinstance(exc, KilledWorker):
                raise ExecutorError(
                    f"a batch ({_describe_tag(tag)}) was running on Dask workers of "
                    f"{self.address} that died, too many times in a row ({exc}); an item in it "
                    "may crash the decoder or exhaust the workers' memory. Check the workers' "
                    "logs, give them more memory, or push that batch's items separately."
                ) from exc
            raise exc
        raise ExecutorError(
            f"lost the Dask scheduler at {self.address} while a batch ({_describe_tag(tag)}) "
            "was running; check that the scheduler is up and push again (cached items are "
            "not recomputed).")

    def _check_alive(self, client: Any, idle_s: float, waiting: int) -> None:
        if client.status != "running":
            raise ExecutorError(
                f"lost the connection to the Dask scheduler at {self.address} with {waiting} "
                "batches in flight; check that it is up and push again.")
        if idle_s > self.no_workers_timeout and self.nthreads(client) == 0:
            raise ExecutorError(
                f"the Dask cluster at {self.address} has had no workers for {idle_s:.0f} s "
                f"while {waiting} batches wait; start workers (`dask worker {self.address}`) "
                "and push again.")


def _wait_ready(done: Any, timeout: float) -> None:
    """Block until ``done`` (an as_completed) has a result, or ``timeout`` seconds pass.

    as_completed notifies its ``thread_condition`` after queueing each result (that is
    how its own blocking ``__next__`` waits); checking under the condition's lock
    cannot miss a notification. Without it (another Dask version), poll briefly.
    """
    cond = getattr(done, "thread_condition", None)
    if cond is None:
        time.sleep(min(timeout, 0.005))
        return
    with cond:
        if not done.has_ready():
            cond.wait(timeout)


def _describe_tag(tag: Any) -> str:
    if isinstance(tag, Sequence) and tag and hasattr(tag[0], "uri"):
        return f"{len(tag)} items from {tag[0].uri}"
    return repr(tag)[:80]
