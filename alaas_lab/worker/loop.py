"""The worker process: a ZeroMQ ROUTER for requests, a PUB socket for events.

Threads and sockets
-------------------
ZeroMQ sockets belong to one thread, so only the main thread touches them. It
polls the ROUTER, answers cheap requests at once (``label`` is a journal commit,
``status`` a read) and hands heavy ones (``push_data``, ``query``, ``fit``) to a
single job thread, so they run one at a time in order. Replies and events from
the job thread and the pipeline go through an outbox queue that the main loop
drains between polls. A request that fails gets an ``error`` reply; nothing a
client sends can stop the loop.

Keys and connection file
------------------------
Every worker signs and checks every message with an HMAC key: the one it was
given, else a fresh random one. Once bound, it writes ``worker.json`` in the
session directory (mode 0600, atomically): both endpoints, its pid, the protocol
version and the key (hex). :class:`~alaas_lab.server.Server` waits for it and
clients read it to attach; a message without that key's signature is refused
with an ``error`` reply (``reason="signature"``) and the worker serves on. ipc
sockets live in ``SESSION_DIR/sockets/`` (mode 0700).

Lifetime
--------
A worker exits cleanly (journal closed, connection file removed) on a ``stop``
request or SIGTERM, after ``al_worker.idle_timeout`` seconds with no request and
no job, and, when given ``parent_pid``, once that process has exited.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from ..config import Config
from ..connection import CONNECTION_FILE, is_loopback
from ..data import confine, expand
from ..errors import AlaasError, ConfigError, InputError, ProtocolError
from ..models._device import check_device
from ..pipeline import thread_plan
from ..protocol import PROTOCOL_VERSION, Message, Session, error_content
from .history import HistoryQuery, read_history
from .ingest import Ingestor
from .items import item_payload
from .pool_map import map_content, queue_first
from .projection import Projector, model_version
from .rounds import check_budget
from .state import PoolSession
from .suspects import SuspectReview

logger = logging.getLogger(__name__)

#: Folder of the session directory that holds the ipc sockets (mode 0700).
SOCKET_DIR = "sockets"



class Worker:
    """Serves one session directory over ZeroMQ.

    Parameters
    ----------
    config : Config
    session_dir : path
    key : bytes, optional
        HMAC key for every message; default: a fresh random one (32 bytes). It is
        written to the connection file only.
    backbone : Backbone, optional
        Overrides the config's (tests, notebooks with their own model).
    parent_pid : int, optional
        Exit (cleanly) once this process has exited: a script's worker.
    """

    def __init__(self, config: Config, session_dir: str | Path, *, key: bytes | None = None,
                 backbone: Any = None, parent_pid: int | None = None) -> None:
        worker = config.al_worker
        if key is not None and not key:
            raise ConfigError("the worker's message key is empty; every worker signs its "
                              "messages: give a key of 32 random bytes or none for a fresh one.")
        if worker.protocol == "tcp" and not is_loopback(worker.host) and not worker.curve_dir:
            raise ConfigError(
                f"config key 'al_worker.host' is {worker.host!r}, which is reachable from other "
                "machines; a remote worker needs authentication: set 'al_worker.curve_dir' to "
                "CURVE keys made with 'alaas-lab keygen DIR', or bind 127.0.0.1.")
        check_device(config.active_learning.device)  # refused at start, not at first push
        self.config = config
        self.key = key if key is not None else secrets.token_bytes(32)
        self.parent_pid = parent_pid
        self.idle_timeout = float(worker.idle_timeout)
        self._last_active = time.monotonic()
        self.plan = thread_plan()
        self.outbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.session = PoolSession(config, session_dir, backbone=backbone, emit=self.emit)
        self.ingestor = Ingestor(self.session, self.plan)
        self.state = "idle"
        self._leasing = False  # a labeler asked for items: async rounds select ahead
        self._topping = False  # a selection ahead is queued or running
        self._again = False  # ... and one more is wanted when it ends
        # item content for the UI: its own threads, so it never waits on a push or a fit
        self.item_pool = ThreadPoolExecutor(2, thread_name_prefix="worker-items")
        # the pool map and the suspect labels: their own threads, never the request thread
        self.projector = Projector(self._map_snapshot, folder=self.session.dir / "projection",
                                   on_ready=self._map_ready, seed=config.seed,
                                   n_jobs=max(1, self.plan.cores // 2))  # as fits
        self.review = SuspectReview(self.session, on_ready=lambda summary: self.emit(
            "suspects_ready", summary))
        self._map_cache: dict[str, Any] = {}  # the head's predictions per map and head
        self._stopping = threading.Event()
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.auth = self._secure(worker.curve_dir) if worker.curve_dir else None
        self.endpoint = self._bind(self.router, worker.port)
        self.events_endpoint = self._bind(self.pub, 0, suffix="events")
        self.wire = Session(self.key)  # main thread only

    # ------------------------------------------------------------ setup
    def _secure(self, curve_dir: str) -> Any:
        """CURVE on both sockets; only clients whose keys are authorized get through."""
        from zmq.auth.thread import ThreadAuthenticator

        from ..security import server_keys

        keys, authorized = server_keys(curve_dir)
        auth = ThreadAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(authorized))
        for sock in (self.router, self.pub):
            sock.curve_server = True
            sock.curve_publickey = keys.public
            sock.curve_secretkey = keys.secret
        return auth

    def _bind(self, sock: zmq.Socket, port: int, suffix: str = "requests") -> str:
        """Bind ``sock``; return its endpoint, absolute (an ipc path never depends on the cwd)."""
        worker = self.config.al_worker
        if worker.protocol == "ipc":
            path = (_socket_dir(self.session.dir) / f"{suffix}.sock").resolve()
            path.unlink(missing_ok=True)
            try:
                sock.bind(f"ipc://{path}")
            except zmq.ZMQError as exc:
                raise ConfigError(
                    f"cannot listen on ipc://{path} ({exc}); an ipc path must be writable and "
                    "shorter than about 100 characters: choose a shorter session_dir or "
                    "'al_worker.protocol: tcp'.") from None
            return f"ipc://{path}"
        host = worker.host
        bracket = f"[{host}]" if ":" in host else host
        if ":" in host:
            sock.setsockopt(zmq.IPV6, 1)
        try:
            if port:
                sock.bind(f"tcp://{bracket}:{port}")
            else:
                port = sock.bind_to_random_port(f"tcp://{bracket}")
        except zmq.ZMQError as exc:
            raise ConfigError(
                f"cannot listen on tcp://{host}:{port} ({exc}); the port is probably in use: "
                "choose another 'al_worker.port' or 0 for a free one.") from None
        return f"tcp://{bracket}:{port}"

    def write_connection_file(self) -> Path:
        path = self.session.dir / CONNECTION_FILE
        tmp = path.with_suffix(".tmp")
        curve = self.config.al_worker.curve_dir
        info = {"endpoint": self.endpoint, "events": self.events_endpoint, "pid": os.getpid(),
                "curve_server_key": _server_public(curve) if curve else "",
                "protocol_version": PROTOCOL_VERSION, "key": self.key.hex(),
                "host": socket.gethostname()}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover tmp file keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------ outbox
    def emit(self, msg_type: str, content: dict[str, Any]) -> None:
        """Publish an event (any thread)."""
        self.outbox.put(("event", msg_type, content))

    def _reply_later(self, request: Message, msg_type: str, content: dict[str, Any]) -> None:
        self.outbox.put(("reply", request, msg_type, content))

    def _drain(self) -> None:
        while True:
            try:
                kind, *rest = self.outbox.get_nowait()
            except queue.Empty:
                return
            try:
                if kind == "event":
                    msg_type, content = rest
                    self.wire.publish(self.pub, msg_type, _jsonable(content))
                elif kind == "error":
                    request, exc = rest
                    self.wire.send_error(self.router, exc, request=request)
                else:
                    request, msg_type, content = rest
                    try:
                        self.wire.reply(self.router, request, msg_type, _jsonable(content))
                    except ProtocolError as exc:  # our bug: the client gets an error, not silence
                        logger.exception("could not send a %s", msg_type)
                        self.wire.send_error(self.router, exc, request=request)
            except Exception:
                logger.exception("could not send %s", kind)

    # ------------------------------------------------------------ main loop
    def serve_forever(self) -> None:
        """Answer requests until a ``stop`` request, SIGTERM, idle timeout or the parent's end."""
        self.write_connection_file()
        jobs = threading.Thread(target=self._job_loop, name="worker-jobs", daemon=True)
        jobs.start()
        self._resume()
        self._push_configured()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        logger.info("worker %d serving %s (events %s)", os.getpid(), self.endpoint,
                    self.events_endpoint)
        self._last_active = time.monotonic()
        try:
            while not self._stopping.is_set():
                if poller.poll(10):
                    self._handle()
                self._drain()
                self._check_lifetime()
        finally:
            self.jobs.put(None)
            jobs.join(timeout=10)
            self._drain()
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def _busy(self) -> bool:
        """Whether a job runs or waits (a push, a query, a fit, a resumed round)."""
        return self.state != "idle" or not self.jobs.empty() or not self.outbox.empty()

    def _check_lifetime(self) -> None:
        """Stop when idle for ``idle_timeout`` s, or when the parent process has exited."""
        now = time.monotonic()
        if self._busy():
            self._last_active = now
        elif self.idle_timeout and now - self._last_active > self.idle_timeout:
            logger.info("no request and no job for %g s (al_worker.idle_timeout): exiting; "
                        "starting the session again resumes it", self.idle_timeout)
            self.stop()
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            logger.info("the process that started this worker (pid %d) has exited: exiting",
                        self.parent_pid)
            self.stop()

    def close(self) -> None:
        self.item_pool.shutdown(wait=True)
        self.projector.close()
        self.review.close()
        self.session.close()
        self.ingestor.close()
        self.router.close(0)
        self.pub.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()
        (self.session.dir / CONNECTION_FILE).unlink(missing_ok=True)

    def _handle(self) -> None:
        try:
            request = self.wire.recv(self.router, zmq.NOBLOCK)
        except zmq.Again:
            return
        except ProtocolError as exc:
            logger.warning("refused a message: %s", exc)
            # answered without a traceback: the sender may hold no key
            refused = ProtocolError(str(exc), reason=exc.reason, header=exc.header,
                                    identities=exc.identities)
            try:
                self.wire.send_error(self.router, refused)
            except Exception:
                logger.debug("could not answer a malformed message", exc_info=True)
            return
        self._last_active = time.monotonic()
        handler = getattr(self, f"_on_{request.msg_type}", None)
        if handler is None:
            self.wire.send_error(self.router, ProtocolError(
                f"the worker does not accept {request.msg_type!r} messages.",
                reason="msg_type"), request=request)
            return
        try:
            handler(request)
        except AlaasError as exc:
            self.wire.send_error(self.router, exc, request=request)
        except Exception as exc:
            logger.exception("request %s failed", request.msg_type)
            self.wire.send_error(self.router, exc, request=request)

    # ------------------------------------------------------------ jobs
    def _job_loop(self) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        # head fits and selections share the machine with a push's embed stage (which
        # starts with every core): half the cores, so neither starves the other
        job_threads = max(1, self.plan.cores // 2)
        torch.set_num_threads(job_threads)
        threadpool_limits(job_threads)  # BLAS too (head fits, strategies)
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    def _submit(self, name: str, fn: Callable[[], Any], request: Message | None,
                reply_type: str | None = None) -> None:
        def job() -> None:
            self.state = name
            try:
                result = fn()
                if request is not None and reply_type is not None:
                    self._reply_later(request, reply_type, result)
            except Exception as exc:
                if not isinstance(exc, AlaasError):
                    logger.exception("job %s failed", name)
                if request is not None:
                    self.outbox.put(("error", request, exc))
                else:
                    self.emit("worker_error", error_content(exc, job=name))
            finally:
                self.state = "idle"
        self.jobs.put(job)

    def _resume(self) -> None:
        """Finish what a killed worker left: embeddings of pushed URIs, a labeled round."""
        s = self.session
        missing = [i for i in range(s.n_items) if not s.emb.filled[i] and not s.quarantined[i]]
        from_memory = [i for i in missing if i in s.raw.index]
        uris = [s.uris[i] for i in missing if i not in s.raw.index
                and not s.uris[i].startswith(("array:", "text:"))]
        if uris:
            logger.info("resuming the push of %d items", len(uris))
            self._submit("push", lambda: self._push_uris(uris), None)
        if from_memory:  # rows and texts pushed from a notebook: embedded from raw/
            logger.info("resuming the push of %d items pushed from memory", len(from_memory))
            self._submit("push", lambda: self.ingestor.push_raw(from_memory), None)
        if s.train_mask().any():
            for done in s.completed_rounds():
                self._submit("fit", lambda done=done: s.finish_round(done), None)

    def _push_configured(self) -> None:
        """Queue the push of the config's ``data.source``, on every start.

        Items already in the journal are not added again and embedded ones are not
        embedded again, so a restart only picks up files that are new since. A source
        that lists nothing, or fails, is logged and published as a ``worker_error``
        event (``job="push"``); the worker keeps serving.
        """
        sources = list(self.config.data.source)
        if not sources:
            return
        # one entry is passed alone so that a manifest (.txt/.csv) is read as one
        source: str | list[str] = sources[0] if len(sources) == 1 else sources

        def run() -> dict[str, Any]:
            try:
                out = self._push_sources(source)
            except Exception as exc:
                logger.error("could not push data.source %s: %s", sources, exc)
                raise
            logger.info("data.source %s: %d items in the pool, %d embedded now, %d from the "
                        "cache", sources, out["n_items"], out["embedded"], out["cache_hits"])
            return self._after_push(out, "pool", None)
        logger.info("pushing data.source %s", sources)
        self._submit("push", run, None)

    def _push_sources(self, sources: str | Sequence[str], *, n_labels: int = 0
                      ) -> dict[str, Any]:
        """Expand URIs, globs or a manifest, confine them to ``data.root``, push them.

        Runs on the job thread (``push_data`` with ``uris`` and the configured source).

        Parameters
        ----------
        sources : str or sequence of str
            What :func:`~alaas_lab.data.expand` accepts.
        n_labels : int, default 0
            Labels given with the push (an evaluation set): they must number the items
            the sources list, which is checked before any item joins the pool.

        Returns
        -------
        dict
            :meth:`Ingestor.push_uris`'s summary.
        """
        data = self.config.data
        infos: dict[str, dict[str, Any]] = {}
        uris = expand(sources, storage_options=data.storage_options or None, infos=infos)
        if data.root:
            confine(uris, data.root)
        if n_labels and n_labels != len(uris):
            raise InputError(f"the push lists {len(uris)} items but got {n_labels} labels; "
                             "give one label per item. Nothing was added.")
        return self.ingestor.push_uris(uris, infos=infos, on_progress=self._progress)

    # ------------------------------------------------------------ handlers
    def _on_hello(self, request: Message) -> None:
        self.wire.reply(self.router, request, "hello_reply", {
            "events": self.events_endpoint, "protocol_version": PROTOCOL_VERSION,
            "pid": os.getpid(), "session_dir": str(self.session.dir),
            "name": self.config.name, "classes": list(self.config.classes),
            "data_kind": self.config.data.kind,
            "features": ["leases", "leave_out", "pool_map", "suspects"],
            "lookahead": self.config.rounds.mode == "async", "config": self.config.to_dict(),
            "resumed": self.session.resumed})

    def _on_status(self, request: Message) -> None:
        status = self.session.status()
        status.update(state=self.state, pid=os.getpid(), protocol_version=PROTOCOL_VERSION,
                      quarantine=self.session.journal.quarantined(),
                      jobs_queued=self.jobs.qsize(), suspects=self.review.summary())
        self.wire.reply(self.router, request, "status_reply", _jsonable(status))

    def _on_stop(self, request: Message) -> None:
        self.wire.reply(self.router, request, "stop_reply", {"stopping": True})
        self.stop()

    def _on_label(self, request: Message) -> None:
        c = request.content
        result = self.session.label(c["item_id"], c["label"], labeler=c.get("labeler"))
        self.wire.reply(self.router, request, "label_reply",
                        {"item_id": result["item_id"], "row_id": result["row_id"]})
        self._after_labels([result])

    def _on_label_many(self, request: Message) -> None:
        c = request.content
        results = self.session.label_many(c["item_ids"], c["labels"], labeler=c.get("labeler"))
        self.wire.reply(self.router, request, "label_many_reply",
                        {"row_ids": [r["row_id"] for r in results]})
        self._after_labels(results)

    def _after_labels(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            if r["round_complete"] is not None:
                rnd = r["round_complete"]
                self._submit("fit", lambda rnd=rnd: self.session.finish_round(rnd), None)
                self.review.refresh()  # score the labels for likely mistakes (own thread)
                if self.session.policy.advance_on_round_end:
                    self._top_up(force=True)  # journal the prepared round once the fits land
        self._top_up()

    # ------------------------------------------------------------ labelers
    def _on_next_items(self, request: Message) -> None:
        """Lease up to ``n`` queued items to a labeler; select more when none is free.

        Answered at once when items are queued. Otherwise a selection runs on the
        job thread (sync rounds: only once every queued item is answered) and the
        reply follows it; ``waiting: True`` with no items means other labelers hold
        what is queued: ask again.
        """
        c = request.content
        n = check_budget(c.get("n", 1))
        labeler = str(c.get("labeler") or "anonymous")
        self._leasing = True
        items = self.session.lease(n, labeler, self.config.rounds.lease_s)
        if items:
            self.wire.reply(self.router, request, "next_items_reply", self._leased(items))
            self._top_up()
            return
        if self.state != "idle" or not self.jobs.empty():
            # a push, fit or selection is running: answer now, select once it is done
            self.wire.reply(self.router, request, "next_items_reply",
                            self._leased([], waiting=True))
            self._select_later()
            return
        self._submit("query", lambda: self._select_and_lease(n, labeler), request,
                     "next_items_reply")

    def _select_later(self) -> None:
        """Queue one selection behind the running jobs, if nothing is queued for labelers."""
        if self._topping:
            return
        self._topping = True
        s = self.session

        def select() -> None:
            try:
                if s.n_free() == 0 and not (s.pending and self.config.rounds.mode == "sync"):
                    s.query(self._round_size())
            except AlaasError as exc:  # the pool still empty, the budget spent...
                logger.debug("no selection for the labelers: %s", exc)
            finally:
                self._topping = False
        self._submit("query", select, None)

    def _on_leave_out(self, request: Message) -> None:
        """A labeler skipped an item twice: out of its round (``undo``: back in)."""
        c = request.content
        done = self.session.leave_out(c["item_id"], labeler=c.get("labeler"),
                                      undo=bool(c.get("undo")))
        self.wire.reply(self.router, request, "leave_out_reply", {"item_id": c["item_id"]})
        self._after_labels([{"round_complete": done}])

    def _select_and_lease(self, n: int, labeler: str) -> dict[str, Any]:
        s, ttl = self.session, self.config.rounds.lease_s
        items = s.lease(n, labeler, ttl)  # a selection ahead may have landed meanwhile
        if not items:
            if s.pending and self.config.rounds.mode == "sync":
                return self._leased([], waiting=True)  # the round is with other labelers
            try:
                s.query(self._round_size())
            except AlaasError as exc:
                if s.pending and exc.reason in ("pool_exhausted", "budget_spent",
                                                 "over_budget"):
                    return self._leased([], waiting=True)  # the last items are out
                raise
            items = s.lease(n, labeler, ttl)
        self._top_up()
        return self._leased(items, waiting=not items)

    def _round_size(self) -> int:
        """Items per selection: a round, less when the budget or the pool runs short."""
        s = self.session
        k = self.config.budget.per_round
        left = s.budget_left()
        if left is not None:
            k = min(k, left)
        return max(1, min(k, int((~s.unselectable()).sum())))

    def _top_up(self, *, force: bool = False) -> None:
        """Async rounds: select the next items before the labelers run out (one at a time).

        ``force``: whatever is queued (PSHEA journals its prepared round after a fit).
        """
        s, rounds = self.session, self.config.rounds
        if rounds.mode != "async" or not self._leasing or not s.policy.selects_ahead:
            return
        if self._topping:
            self._again = self._again or force  # the running selection runs once more
            return
        if not force and s.n_free() >= (rounds.lookahead or self.config.budget.per_round):
            return
        self._topping = True

        def select() -> None:
            try:
                s.policy.select_ahead(self._round_size())
            except AlaasError as exc:  # budget or pool used up: nothing to select
                logger.debug("no selection ahead: %s", exc)
            finally:
                self._topping = False
                if self._again:
                    self._again = False
                    self._top_up(force=True)
        self._submit("query", select, None)

    def _leased(self, items: list[int], *, waiting: bool = False) -> dict[str, Any]:
        s = self.session
        with s.lock:
            asked = [s.pending.get(i, (s.round, "")) for i in items]
        return {"item_ids": items, "uris": [s.uris[i] for i in items],
                "rounds": [r for r, _ in asked], "strategies": [st for _, st in asked],
                "waiting": waiting}

    def _on_fit(self, request: Message) -> None:
        self._submit("fit", self.session.finish_round, request, "fit_reply")
        self.review.refresh()

    def _on_item_data(self, request: Message) -> None:
        ids = [self.session._check_item(i) for i in request.content["item_ids"]]
        max_side = int(request.content.get("max_side", 512))
        kind = self.config.data.kind

        def run() -> None:
            try:
                items = [item_payload(i, self.session.uris[i], kind=kind, raw=self.session.raw,
                                      fetcher=self.ingestor.fetcher, max_side=max_side)
                         | self.session.advice(i) for i in ids]
                self._reply_later(request, "item_data_reply", {"items": items})
            except Exception as exc:
                self.outbox.put(("error", request, exc))
        self.item_pool.submit(run)

    def _on_history(self, request: Message) -> None:
        """Read the journal on an item thread: a big session's history never holds up labels."""
        query = HistoryQuery.from_content(request.content)

        def run() -> None:
            try:
                self._reply_later(request, "history_reply",
                                  read_history(self.session.journal, query))
            except Exception as exc:
                self.outbox.put(("error", request, exc))
        self.item_pool.submit(run)

    def _on_query(self, request: Message) -> None:
        c = request.content
        self._submit("query", lambda: self.session.query(c["budget"],
                                                         strategy=c.get("strategy")),
                     request, "query_reply")

    def _on_push_data(self, request: Message) -> None:
        """Check everything a push names before any item joins the pool, then queue it."""
        c = request.content
        wait = c.get("wait", True)
        role = c.get("role", "pool")
        labels = c.get("labels")
        if role not in ("pool", "eval"):
            raise InputError(f"push_data role must be 'pool' or 'eval'; got {role!r}.")
        if role == "eval" and not labels:
            raise InputError("push_data with role='eval' needs labels, one per item.")
        if role == "pool" and labels:
            raise InputError("labels are for role='eval' (an evaluation set); pool items are "
                             "labeled through query and label.")
        if labels:
            for k, label in enumerate(labels):
                self.session.class_code(label, f"label {k}")
        features, texts = c.get("features"), c.get("texts")
        if features is not None or texts is not None:
            if texts is not None and self.config.data.kind != "text":
                raise InputError(
                    f"this session embeds data.kind {self.config.data.kind!r}, not text: raw "
                    "texts can be pushed to a session with data.kind: text (model minilm).")
            n = len(texts) if texts is not None else len(features)
            if labels and len(labels) != n:
                raise InputError(f"push_data got {n} items but {len(labels)} labels; give one "
                                 "label per item. Nothing was added.")

            def run() -> dict[str, Any]:
                if texts is not None:
                    out = self.ingestor.push_texts(texts, on_progress=self._progress)
                else:
                    out = self.ingestor.push_arrays(np.asarray(features), uris=c.get("names"),
                                                    on_progress=self._progress)
                return self._after_push(out, role, labels)
        else:
            uris = c.get("uris") or []
            # one URI is a single source: expand() refuses it when it does not exist
            sources = uris[0] if len(uris) == 1 else uris

            def run() -> dict[str, Any]:
                return self._after_push(self._push_sources(sources, n_labels=len(labels or [])),
                                        role, labels)
        if wait:
            self._submit("push", run, request, "push_data_reply")
        else:
            self._submit("push", run, None)
            self.wire.reply(self.router, request, "push_data_reply",
                            {"item_ids": [], "n_items": self.session.n_items, "queued": True})

    def _push_uris(self, uris: list[str]) -> dict[str, Any]:
        return self.ingestor.push_uris(uris, on_progress=self._progress)

    def _after_push(self, out: dict[str, Any], role: str, labels: Any) -> dict[str, Any]:
        if role == "eval":
            self.session.mark_eval(np.asarray(out["item_ids"], dtype=np.int64), list(labels))
        if self.projector.watched:  # someone looks at the map: lay out the new items
            self.projector.refresh(self._map_key())
        self.emit("push_done", {k: out[k] for k in ("n_items", "cache_hits", "embedded",
                                                     "seconds")}
                  | {"pipeline": out["pipeline"], "quarantined": out["quarantined"]})
        return out

    def _progress(self, event: dict[str, Any]) -> None:
        self.emit("progress", event)

    # ------------------------------------------------------------ pool map and suspects
    def _mappable(self) -> np.ndarray:
        s = self.session
        with s.lock:
            return s.emb.filled & ~s.quarantined

    def _map_key(self) -> str:
        return model_version(self.session.backbone.fingerprint, self._mappable())

    def _map_snapshot(self) -> tuple[str, np.ndarray, np.ndarray]:
        """The projector's input: model version, embedded item ids, their embeddings."""
        s = self.session
        fingerprint = s.backbone.fingerprint
        with s.lock:
            mask = s.emb.filled & ~s.quarantined
            ids = np.flatnonzero(mask)
            return model_version(fingerprint, mask), ids, s.emb.matrix[ids]

    def _map_ready(self, proj: Any) -> None:
        self.emit("pool_map_ready", {"version": proj.version, "n": int(proj.item_ids.size),
                                     "method": proj.method, "seconds": proj.seconds})

    def _on_pool_map(self, request: Message) -> None:
        """The pool's 2-D map (binary arrays), built on an item thread.

        Starts a new projection when the embeddings changed; the reply carries the
        newest finished one (``computing`` says a newer one is on its way, and a
        ``pool_map_ready`` event says when). ``wait`` waits for it (tests, scripts).
        """
        c = request.content
        since = c.get("since_version")
        wait = bool(c.get("wait"))
        timeout = float(c.get("timeout") or 600.0)

        def run() -> None:
            try:
                computing = self.projector.refresh(self._map_key())
                if wait and computing:
                    self.projector.wait(timeout)
                    computing = self.projector.computing
                proj = self.projector.current
                with_coords = proj is None or since != proj.version
                content = map_content(self.session, proj, suspects=self.review.flags(
                    self.session.n_items), with_coords=with_coords, cache=self._map_cache)
                content.update(computing=computing)
                if self.projector.error:
                    content["error"] = self.projector.error
                self._reply_later(request, "pool_map_reply", content)
            except Exception as exc:
                self.outbox.put(("error", request, exc))
        if wait:  # a long wait must not hold an item thread the labelers need
            threading.Thread(target=run, name="worker-map-wait", daemon=True).start()
        else:
            self.item_pool.submit(run)

    def _on_queue_items(self, request: Message) -> None:
        """Items chosen on the map go to the front of the labelers' queue."""
        c = request.content
        labeler = c.get("labeler") or None
        out = queue_first(self.session, c["item_ids"], labeler=labeler,
                          ttl=self.config.rounds.lease_s)
        self._leasing = True
        self.wire.reply(self.router, request, "queue_items_reply",
                        {"item_ids": out["item_ids"], "n_queued": int(out["item_ids"].size),
                         "skipped": out["skipped"]})

    def _on_suspects(self, request: Message) -> None:
        """The open suspect labels (``refresh``: score again; ``wait``: for the scores)."""
        c = request.content
        limit = c.get("limit")
        if c.get("refresh") or (not self.review.scored_at and not self.review.computing):
            self.review.refresh()

        def run() -> None:
            try:
                if c.get("wait"):
                    self.review.wait(float(c.get("timeout") or 600.0))
                summary = self.review.summary()
                self._reply_later(request, "suspects_reply",
                                  summary | {"items": self.review.rows(limit)})
            except Exception as exc:
                self.outbox.put(("error", request, exc))
        threading.Thread(target=run, name="worker-suspects-reply", daemon=True).start()

    def _on_relabel(self, request: Message) -> None:
        """A reviewed label: the same label confirms it, another corrects it (journaled)."""
        c = request.content
        out = self.review.review(c["item_id"], c["label"], labeler=c.get("labeler"),
                                 undo=bool(c.get("undo")))
        self.wire.reply(self.router, request, "relabel_reply",
                        {k: out[k] for k in ("item_id", "kind", "before", "after", "row_id")})
        if out["row_id"] is not None:  # a correction, or an undone one: a new label row
            self._after_labels([out])


def _server_public(curve_dir: str) -> str:
    from ..security import server_public_key

    return server_public_key(curve_dir).decode("ascii")


def _jsonable(value: Any) -> Any:
    """numpy scalars → Python numbers, NaN → None (the wire refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _socket_dir(session_dir: Path) -> Path:
    """``SESSION_DIR/sockets``, made private (0700): only this user may reach its ipc sockets."""
    path = session_dir / SOCKET_DIR
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask; an old folder may be wider
    except OSError as exc:
        raise ConfigError(f"cannot make the private socket folder {path} ({exc.strerror or exc})"
                          "; make the session directory writable or choose another.") from None
    return path


def run_worker(config: Config, session_dir: str | Path, *, key: bytes | None = None,
               backbone: Any = None, parent_pid: int | None = None) -> None:
    """Run a worker in this process until it is stopped (the ``serve`` entry point).

    ``session_dir`` is made absolute first, so the endpoints and paths the worker
    publishes do not depend on this process's working directory. ``key`` and
    ``parent_pid`` are :class:`Worker`'s.
    """
    session_dir = Path(session_dir).expanduser().resolve()
    # before the config is used: SESSION_DIR/plugins/*.py (%%alaas strategy), then the
    # config's plugins (imported already when it was loaded; the same bytes are no-ops)
    from ..plugins import load_plugins, load_session_plugins

    load_session_plugins(session_dir)
    load_plugins(config.plugins)
    worker = Worker(config, session_dir, key=key, backbone=backbone, parent_pid=parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    try:
        worker.serve_forever()
    except KeyboardInterrupt:
        worker.stop()

