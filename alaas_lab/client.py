"""The kernel-side handle on a worker: requests, replies and the event stream.

Only :mod:`alaas_lab.protocol` crosses the process line; the client imports no
torch and no strategy code, so a notebook kernel stays light.

The paper's three steps run as written::

    server = Server(config_path="example.yml"); server.start()
    client = server.client()     # or Client(connection_file=".../worker.json")
    client.push_data(data_list, asynchronous=False)
    selected = client.query(budget=10)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from .errors import AlaasError, ProtocolError, RemoteError, WorkerUnavailable
from .protocol import Message, Session
from .push_input import push_input

__all__ = ["Client", "RemoteError", "Selection", "WorkerUnavailable"]


@dataclass
class Selection(Sequence):
    """Items a query selected, best first. Iterates over their URIs, like the paper's list."""

    round: int
    strategy: str
    item_ids: list[int]
    uris: list[str] = field(default_factory=list)

    def __getitem__(self, i):  # type: ignore[override]
        return self.uris[i]

    def __len__(self) -> int:
        return len(self.item_ids)


def _endpoint(url: str) -> str:
    if "://" in url:
        return url
    host, _, port = url.rpartition(":")
    if not host or not port.isdigit():
        raise AlaasError(f"worker address {url!r} is not 'host:port' or a ZeroMQ endpoint "
                         "(tcp://host:port, ipc://path).")
    return f"tcp://{host}:{port}"


class Client:
    """Talk to a running worker.

    Parameters
    ----------
    al_server_url : str, optional
        ``host:port``, ``tcp://host:port`` or ``ipc://path``; give ``key`` with it.
    key : bytes or hex str, optional
        The worker's HMAC key: every worker signs its messages with a fresh key that
        its connection file holds (``"key"``).
    connection_file : path, optional
        A worker's ``SESSION_DIR/worker.json`` (mode 0600): gives the address and key
        (instead of the two above). The usual way to attach.
    timeout : float, default 60
        Seconds to wait for a reply before raising :class:`WorkerUnavailable`.
    curve_server_key : str or bytes, optional
        The remote worker's CURVE public key (``server.key``; in its connection file).
    curve_secret_file : path, optional
        This client's CURVE key pair (``client.key_secret`` from ``alaas-lab keygen``); its
        public key must be in the worker's ``authorized/`` folder.
    """

    def __init__(self, al_server_url: str | None = None, *, key: bytes | str | None = None,
                 connection_file: str | Path | None = None, timeout: float = 60.0,
                 curve_server_key: str | bytes | None = None,
                 curve_secret_file: str | Path | None = None) -> None:
        if connection_file is not None:
            info = _read_connection_file(connection_file)
            al_server_url, key = info["endpoint"], info["key"]
            curve_server_key = curve_server_key or info.get("curve_server_key") or None
        if al_server_url is None:
            raise AlaasError("give the worker's connection_file (SESSION_DIR/worker.json), or "
                             "its address (al_server_url) and key.")
        if isinstance(key, str):
            try:
                key = bytes.fromhex(key)
            except ValueError:
                raise AlaasError("key must be bytes or the hex string of a worker's connection "
                                 "file ('key').") from None
        if not key:
            raise AlaasError(
                f"Client({al_server_url!r}) has no key, and every worker signs its messages "
                "with its own key. Attach with Client(connection_file='SESSION_DIR/"
                "worker.json') (or server.client(), Lab(session_dir=...)), or pass key= "
                "(the 'key' in that file).")
        self.url = _endpoint(al_server_url)
        self.key = key
        self.timeout = timeout
        self._curve: tuple[bytes, Any] | None = None
        if curve_server_key:
            from .security import client_keys

            if curve_secret_file is None:
                raise AlaasError("this worker uses CURVE: pass curve_secret_file= with your "
                                 "client.key_secret (made by 'alaas-lab keygen').")
            server = curve_server_key.encode() if isinstance(curve_server_key, str) \
                else curve_server_key
            self._curve = (server, client_keys(curve_secret_file))
        self._ctx = zmq.Context.instance()
        self._lock = threading.Lock()
        self._wire = Session(key)
        self._sock = self._connect()
        self._events_url: str | None = None
        self._data_kind: str | None = None

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        self._apply_curve(sock)
        sock.connect(self.url)
        return sock

    def _apply_curve(self, sock: zmq.Socket) -> None:
        if self._curve is not None:
            server, keys = self._curve
            sock.curve_serverkey = server
            sock.curve_publickey = keys.public
            sock.curve_secretkey = keys.secret

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ------------------------------------------------------------ requests
    def request(self, msg_type: str, content: dict[str, Any] | None = None, *,
                timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return the reply's content (raises on an error reply)."""
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            msg_id = self._wire.send(self._sock, msg_type, content or {})
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._sock.poll(int(left * 1000)):
                    # the socket may hold a late reply: start over with a fresh one
                    self._sock.close(0)
                    self._sock = self._connect()
                    raise WorkerUnavailable(
                        f"no reply to {msg_type!r} from the worker at {self.url} within "
                        f"{timeout:g} s; is it running (status) and is the address right?")
                try:
                    reply = self._wire.recv(self._sock)
                except ProtocolError as exc:
                    if exc.reason != "signature":
                        raise
                    # the worker refused our signature, or signed with another key
                    raise WorkerUnavailable(
                        f"the worker at {self.url} refused the message, or answered with "
                        "another key: this client's key is not the worker's (each worker "
                        "start makes a fresh one). Attach with Client(connection_file="
                        "'SESSION_DIR/worker.json') (or server.client(), "
                        "Lab(session_dir=...)).", reason="signature") from None
                if reply.parent_id == msg_id:
                    break  # else: a late reply to an earlier, timed-out request
        if reply.msg_type == "error":
            c = reply.content
            raise RemoteError(c.get("ename", "Error"), c.get("evalue", ""), c)
        return reply.content

    def hello(self) -> dict[str, Any]:
        reply = self.request("hello", timeout=min(self.timeout, 10.0))
        self._events_url = reply["events"]
        self._data_kind = reply.get("data_kind")
        return reply

    def push_data(self, data: Any, asynchronous: bool = False, *, role: str = "pool",
                  labels: Sequence[Any] | None = None, names: Sequence[str] | None = None,
                  timeout: float | None = None) -> dict[str, Any]:
        """Add items to the pool: URIs / globs, arrays, or (in a text session) raw texts.

        Parameters
        ----------
        data : str, path, list of str, ndarray of shape (n, ...), list of arrays, DataFrame...
            URIs and globs (local, file://, s3://, http(s)://, memory://), rows, or
            texts: anything :func:`~alaas_lab.push_input.push_input` accepts. Checked
            before anything is sent; nothing joins the pool when it is refused.
        asynchronous : bool, default False
            Return at once; progress and completion arrive as events.
        role : {"pool", "eval"}
            ``"eval"`` makes these items the evaluation set (give ``labels``).
        labels : sequence or "from_folders", optional
            One per item, for ``role="eval"``. ``"from_folders"`` with ``data`` a local
            folder of class sub-folders (torchvision's ImageFolder layout) pushes its
            images labeled by their sub-folder's name
            (:func:`alaas_lab.datasets.image_folder`).
        """
        if isinstance(labels, str):
            if labels != "from_folders":
                raise AlaasError(f"labels= takes one label per item or 'from_folders'; got the "
                                 f"string {labels!r}.")
            if role != "eval":
                raise AlaasError("labels='from_folders' is for role='eval'; push a folder as a "
                                 "pool with push(path) (or push(image_folder(path)[0])).")
            if not isinstance(data, (str, Path)) and not hasattr(data, "__fspath__"):
                raise AlaasError("labels='from_folders' needs data to be the path of a local "
                                 f"folder of class sub-folders; got a {type(data).__name__}.")
            from .datasets import image_folder

            data, labels = image_folder(data)
        if role not in ("pool", "eval"):
            raise AlaasError(f"push role must be 'pool' or 'eval'; got {role!r}.")
        if role == "eval" and labels is None:
            raise AlaasError("push with role='eval' needs labels=, one per item.")
        if role == "pool" and labels is not None:
            raise AlaasError("labels= is for role='eval' (an evaluation set); pool items are "
                             "labeled through query and label.")
        items = push_input(data, text_session=self.data_kind() == "text")
        if labels is not None:
            labels = [_plain(x) for x in labels]
            if items.n_items is not None and len(labels) != items.n_items:
                raise AlaasError(f"push got {items.n_items} items but {len(labels)} labels; "
                                 "give one label per item.")
        content: dict[str, Any] = {"wait": not asynchronous, "role": role}
        if items.rows is not None:
            content["features"] = np.ascontiguousarray(items.rows)
        elif items.texts is not None:
            content["texts"] = items.texts
        else:
            content["uris"] = items.uris
        if labels is not None:
            content["labels"] = labels
        if names is not None:
            content["names"] = list(names)
        wait = None if asynchronous else (timeout or max(self.timeout, 3600.0))
        return self.request("push_data", content, timeout=wait)

    def data_kind(self) -> str:
        """The session's ``data.kind`` (``image``, ``text``, ``array``), from ``hello``."""
        if self._data_kind is None:
            self.hello()
        return self._data_kind or "image"

    def query(self, budget: int, *, strategy: str | None = None) -> Selection:
        """Select ``budget`` items to label; they stay queued until labeled."""
        content: dict[str, Any] = {"budget": int(budget)}
        if strategy:
            content["strategy"] = strategy
        r = self.request("query", content)
        return Selection(r["round"], r.get("strategy", ""), r["item_ids"], r.get("uris", []))

    def label(self, item: int, label: Any, *, labeler: str | None = None) -> int:
        """Give one answer (saved before this returns); ``label=None`` undoes it."""
        content = {"item_id": int(item), "label": _plain(label)}
        if labeler:
            content["labeler"] = labeler
        return self.request("label", content)["row_id"]

    def label_many(self, items: Sequence[int], labels: Sequence[Any], *,
                   labeler: str | None = None) -> list[int]:
        content: dict[str, Any] = {"item_ids": [int(i) for i in items],
                                   "labels": [_plain(x) for x in labels]}
        if labeler:
            content["labeler"] = labeler
        return self.request("label_many", content)["row_ids"]

    def next_items(self, n: int, *, labeler: str | None = None) -> dict[str, Any]:
        """Lease up to ``n`` items to label (this labeler's own first); see ``next_items``.

        Returns the reply: ``item_ids`` (empty with ``waiting`` True when other
        labelers hold what is queued), ``rounds`` and ``strategies`` per item.
        """
        content: dict[str, Any] = {"n": int(n)}
        if labeler:
            content["labeler"] = labeler
        return self.request("next_items", content)

    def leave_out(self, item: int, *, labeler: str | None = None, undo: bool = False) -> None:
        """Take a queued item out of its round for good (skipped twice); ``undo`` brings it back."""
        content: dict[str, Any] = {"item_id": int(item), "undo": bool(undo)}
        if labeler:
            content["labeler"] = labeler
        self.request("leave_out", content)

    def item_data(self, items: Sequence[int], *, max_side: int = 512) -> list[dict[str, Any]]:
        """Content of items for display: ``kind`` image (``data``: PNG bytes), text, array."""
        reply = self.request("item_data", {"item_ids": [int(i) for i in items],
                                           "max_side": int(max_side)})
        return reply["items"]

    def history(self, since: int | str = 0, include: Sequence[str] | None = None,
                limit: int | None = None, *, current: bool = False,
                include_eval: bool = False, labeler: str | None = None,
                round: int | None = None) -> dict[str, Any]:
        """What the session's journal holds, read by the worker (``history`` request).

        Parameters
        ----------
        since : int or str, default 0
            The ``cursor`` of a previous reply: then only label rows after it come,
            and the other sections only if they changed. 0: everything.
        include : sequence of str, optional
            Sections among ``labels``, ``rounds``, ``forecasts``, ``eliminations``,
            ``quarantine``, ``pending``, ``selections`` (default: all).
        limit : int, optional
            At most this many label rows; ``more`` is then true: ask again with ``cursor``.
        current : bool, default False
            Each item's standing label instead of every journal row (changed answers,
            retractions with ``label`` None).
        include_eval : bool, default False
            Also the evaluation set's labels.
        labeler : str, optional
            Only this labeler's label rows.
        round : int, optional
            ``selections`` of this round only.

        Returns
        -------
        reply : dict
            One list of dicts per section sent, ``cursor`` (str) and ``more`` (bool);
            see ``docs/protocol.md``.
        """
        content: dict[str, Any] = {"since": since, "current": current,
                                   "include_eval": include_eval}
        for name, value in (("include", None if include is None else list(include)),
                            ("limit", limit), ("labeler", labeler), ("round", round)):
            if value is not None:
                content[name] = value
        return self.request("history", content)

    def pool_map(self, *, since_version: int | None = None, wait: bool = False,
                 timeout: float = 600.0) -> dict[str, Any]:
        """The pool's 2-D map: ``xy`` (n, 2) float32 and ``item_ids`` (n,) as arrays, with
        per-point ``predicted``, ``uncertainty``, ``point_state``, ``strategy``, ``label``
        and ``suspect`` arrays (see ``pool_map_reply`` in docs/protocol.md).

        ``since_version``: the version held already (then only the per-point fields
        come back if it is still the newest); ``wait``: for a running projection.
        """
        content: dict[str, Any] = {"wait": bool(wait), "timeout": float(timeout)}
        if since_version is not None:
            content["since_version"] = int(since_version)
        return self.request("pool_map", content,
                            timeout=(timeout + self.timeout) if wait else None)

    def queue_items(self, items: Sequence[int] | np.ndarray, *,
                    labeler: str | None = None) -> dict[str, Any]:
        """Put items (a selection on the map) at the front of the labelers' queue.

        Returns ``item_ids`` (the items queued), ``n_queued`` and ``skipped`` counts.
        """
        content: dict[str, Any] = {"item_ids": np.asarray(items, dtype=np.int64).reshape(-1)}
        if labeler:
            content["labeler"] = labeler
        return self.request("queue_items", content)

    def suspects(self, *, refresh: bool = False, wait: bool = False, limit: int | None = None,
                 timeout: float = 600.0) -> dict[str, Any]:
        """Labels that are likely mistakes, most likely first (``items``), and review counts."""
        content: dict[str, Any] = {"refresh": bool(refresh), "wait": bool(wait),
                                   "timeout": float(timeout)}
        if limit is not None:
            content["limit"] = int(limit)
        return self.request("suspects", content,
                            timeout=(timeout + self.timeout) if wait else None)

    def relabel(self, item: int, label: Any, *, labeler: str | None = None,
                undo: bool = False) -> dict[str, Any]:
        """Review a label: the same label confirms it, another corrects it (both journaled).

        ``undo``: take back the item's newest review instead; ``label`` is the label that
        review found, which comes back.
        """
        content: dict[str, Any] = {"item_id": int(item), "label": _plain(label)}
        if labeler:
            content["labeler"] = labeler
        if undo:
            content["undo"] = True
        return self.request("relabel", content)

    def fit(self) -> dict[str, Any]:
        """Train the last layer on every label now, evaluate, record the round."""
        return self.request("fit")

    def status(self) -> dict[str, Any]:
        return self.request("status", timeout=min(self.timeout, 10.0))

    def stop(self) -> None:
        """Ask the worker to shut down."""
        self.request("stop", timeout=min(self.timeout, 10.0))

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ events
    def events(self, *, types: Sequence[str] = (), timeout: float | None = None
               ) -> Iterator[Message]:
        """Yield published events (all, or those of ``types``) until ``timeout`` s of quiet."""
        sub = self._subscribe(types)
        try:
            wire = Session(self.key)
            while sub.poll(None if timeout is None else int(timeout * 1000)):
                yield wire.recv(sub)
        finally:
            sub.close(0)

    def subscribe(self, callback: Callable[[Message], None], *, types: Sequence[str] = ()
                  ) -> Callable[[], None]:
        """Call ``callback(event)`` from a background thread; returns an unsubscribe function."""
        sub = self._subscribe(types)
        stop = threading.Event()

        def loop() -> None:
            wire = Session(self.key)
            while not stop.is_set():
                if sub.poll(100):
                    try:
                        callback(wire.recv(sub))
                    except Exception:  # a listener's bug must not kill the stream
                        import logging

                        logging.getLogger(__name__).exception("event callback failed")
            sub.close(0)

        thread = threading.Thread(target=loop, name="alaas-events", daemon=True)
        thread.start()

        def unsubscribe() -> None:
            stop.set()
            thread.join(2)
        return unsubscribe

    def _subscribe(self, types: Sequence[str]) -> zmq.Socket:
        if self._events_url is None:
            self.hello()
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        self._apply_curve(sub)
        for t in types or [b""]:
            sub.setsockopt(zmq.SUBSCRIBE, t.encode() if isinstance(t, str) else t)
        sub.connect(self._events_url)
        time.sleep(0.05)  # PUB/SUB joins asynchronously; events before this are missed
        return sub


def _read_connection_file(path: str | Path) -> dict[str, Any]:
    """A worker's ``worker.json``: ``endpoint``, ``key`` (hex) and the rest."""
    try:
        info = json.loads(Path(path).read_text())
        if not (isinstance(info, dict) and info.get("endpoint") and info.get("key")):
            raise ValueError("no endpoint or key")
    except FileNotFoundError:
        raise WorkerUnavailable(f"no worker connection file at {path}: the worker is not "
                                "running (or has exited); start it (Lab.start, %alaas "
                                "start, alaas-lab serve).") from None
    except (OSError, ValueError) as exc:
        raise AlaasError(f"cannot read the worker connection file {path} ({exc}); it is "
                         "written by the worker and readable only by its user.") from None
    return info


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
