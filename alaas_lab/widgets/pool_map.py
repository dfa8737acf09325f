"""The pool map: every embedded item as a point of a 2-D projection, live.

The worker computes the projection (``pool_map`` requests; t-SNE, see
``alaas_lab/worker/projection.py``) and sends coordinates and per-point fields
as binary arrays; this widget passes them to ``js/pool_map.js`` as bytes traits,
which the view reads as typed arrays and draws on one canvas. Rounds, pushes,
new maps and new suspect scores (events) make it ask again; between them a
light ``status`` poll asks for the per-point fields only when what they show
moved (the head's round, labels, the queue, the embedded items, the suspects),
so an idle session sends no arrays at all.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import traitlets

from ..client import Client
from ._base import CSS, JS_DIR, RefreshingWidget, connect, front_end_module

__all__ = ["PoolMap"]

#: What the map can be coloured by (the view's menu).
COLOR_BY = ("class", "uncertainty", "state", "strategy", "suspect")
#: Per-point fields of a ``pool_map_reply`` and their dtypes, as the view reads them.
_FIELDS = {"predicted": np.int16, "uncertainty": np.float32, "point_state": np.uint8,
           "strategy": np.uint8, "label": np.int16, "suspect": np.uint8}
_HOVER_SIDE = 160


def _bytes(value: Any, dtype: Any) -> bytes:
    return np.ascontiguousarray(value, dtype=dtype).tobytes()


def _fields_key(status: dict[str, Any]) -> tuple[Any, ...]:
    """What in a ``status`` reply moves when the map's per-point fields change: the
    rounds (a new head), labels, the queue, embedded items, the suspect labels."""
    s = status.get("suspects") or {}
    return (status.get("round"), len(status.get("rounds") or ()), status.get("n_labeled"),
            status.get("n_pending"), status.get("n_embedded"), s.get("open"),
            s.get("confirmed"), s.get("corrected"), s.get("time"))


class PoolMap(RefreshingWidget):
    """The pool's embeddings in 2-D; hover shows an item, a lasso queues items to label.

    Traits (the contract with ``js/pool_map.js``)
    ---------------------------------------------
    xy : bytes
        ``(n, 2)`` float32, row-major; ``item_ids`` : bytes, ``(n,)`` int32.
    predicted, label : bytes
        ``(n,)`` int16 class indices into ``classes`` (-1: none).
    uncertainty : bytes
        ``(n,)`` float32, ``1 - max p`` (NaN before the first fit).
    point_state, strategy, suspect : bytes
        ``(n,)`` uint8: index into ``states``, index into ``strategies`` (0: none),
        1 for an open suspect label.
    n, version : int
        Points, and the worker's map version (0: none yet).
    method : str
        ``tsne``, ``pca`` or ``none``.
    classes, states, strategies : list of str
    color_by : str
        One of :data:`COLOR_BY`; the view sets it.
    computing : bool
        A newer map is being computed.
    hover : dict
        The item under the cursor: ``item_id``, ``state`` (``loading``, ``ready``,
        ``error``), ``kind``, ``text``, ``mime``, ``uri``; ``hover_data`` : bytes (PNG).
    queued : dict
        The last selection sent: ``n_queued``, ``skipped``, ``item_ids``.
    state : str
        ``starting``, ``computing``, ``ready``, ``empty`` or ``error``.

    Messages from the view: ``{"type": "hover", "item_id"}`` and ``{"type":
    "queue", "n"}`` with one buffer, the item ids as int32.

    Parameters
    ----------
    client, connection_file
        As for :class:`~alaas_lab.widgets.LabelingWidget`.
    labeler : str, optional
        Items queued from the map are leased to this labeler at once.
    poll : float, default 5.0
        Seconds between ``status`` requests; the per-point fields are asked for only
        when the status shows they changed (and on events); 0: only on events.

    Attributes
    ----------
    fetches : int
        ``pool_map`` requests made so far.
    """

    _esm = front_end_module("pool_map.js")
    _css = CSS.read_text() + "\n" + (JS_DIR / "pool_map.css").read_text()

    xy = traitlets.Bytes(b"").tag(sync=True)
    item_ids = traitlets.Bytes(b"").tag(sync=True)
    predicted = traitlets.Bytes(b"").tag(sync=True)
    uncertainty = traitlets.Bytes(b"").tag(sync=True)
    point_state = traitlets.Bytes(b"").tag(sync=True)
    strategy = traitlets.Bytes(b"").tag(sync=True)
    label = traitlets.Bytes(b"").tag(sync=True)
    suspect = traitlets.Bytes(b"").tag(sync=True)
    n = traitlets.Int(0).tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    method = traitlets.Unicode("").tag(sync=True)
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    states = traitlets.List(traitlets.Unicode()).tag(sync=True)
    strategies = traitlets.List(traitlets.Unicode()).tag(sync=True)
    color_by = traitlets.Enum(COLOR_BY, default_value="class").tag(sync=True)
    computing = traitlets.Bool(False).tag(sync=True)
    hover = traitlets.Dict().tag(sync=True)
    hover_data = traitlets.Bytes(b"").tag(sync=True)
    queued = traitlets.Dict().tag(sync=True)
    state = traitlets.Unicode("starting").tag(sync=True)

    def __init__(self, client: Client | None = None, *,
                 connection_file: str | Path | None = None, labeler: str | None = None,
                 poll: float = 5.0, color_by: str = "class", start: bool = True) -> None:
        super().__init__(color_by=color_by)
        self._endpoint = (client, connection_file)
        self._labeler = labeler
        self._poll = poll
        self._client = connect(client, connection_file, timeout=30.0)
        self._want_hover: int | None = None
        self._forced = True  # an event (or the first look): ask for the map
        self._seen_key: tuple[Any, ...] | None = None
        self.fetches = 0
        self._hover_wake = threading.Event()
        self._hover_thread: threading.Thread | None = None
        self.on_msg(self._on_view_msg)
        if start:
            self.start()

    def start(self) -> PoolMap:
        """Ask for the map, then follow events (and poll) until :meth:`shutdown`."""
        self._subscribe(self._client, lambda event: self.request_map(),
                        ["pool_map_ready", "round_result", "push_done", "suspects_ready"])
        self._start_refresher(self._client, self._poll)
        self.request_refresh()
        self._hover_thread = threading.Thread(target=self._hover_loop, name="alaas-map-hover",
                                              daemon=True)
        self._hover_thread.start()
        return self

    # ------------------------------------------------------------ the map
    def request_map(self) -> None:
        """Ask for the map on the refresher thread, whatever the status says."""
        self._forced = True
        self.request_refresh()

    def refresh(self) -> None:
        """Ask the worker for the map when something it shows may have changed.

        On an event (or the first time) always; on a poll only when the worker's
        status moved (see :func:`_fields_key`). The coordinates come only with a
        new map version.
        """
        if self.stopped:
            return
        forced, self._forced = self._forced, False
        if not forced:
            status = self._worker_status()
            if status is None:
                return
            key = _fields_key(status)
            if key == self._seen_key and not self.computing:
                return
            self._seen_key = key
        self.fetches += 1
        try:
            reply = self._client.pool_map(since_version=self.version or None)
        except Exception as exc:
            if not self.stopped:
                self._update(state="error", error=f"the worker sent no map: {exc}")
            return
        self.apply(reply)

    def apply(self, reply: dict[str, Any]) -> None:
        """Show a ``pool_map_reply``."""
        version = int(reply.get("version") or 0)
        with self._state():
            if "xy" in reply:  # a new map (else the fields of the one shown)
                self.xy = _bytes(reply["xy"], np.float32)
                self.item_ids = _bytes(reply["item_ids"], np.int32)
            if version:
                for name, dtype in _FIELDS.items():
                    setattr(self, name, _bytes(reply[name], dtype))
            self.n, self.version = int(reply.get("n") or 0), version
            self.method = reply.get("method") or ""
            self.classes = list(reply.get("classes") or [])
            self.states = list(reply.get("states") or [])
            self.strategies = list(reply.get("strategies") or [])
            self.computing = bool(reply.get("computing"))
            self.error = reply.get("error") or ""
            self.state = ("ready" if version else "computing" if self.computing else "empty")
            if self.state == "empty":
                self.message = "no embedded items yet: push data first"
            elif self.state == "computing":
                self.message = "computing the map…"
            elif self.message.startswith(("no embedded", "computing")):
                self.message = ""

    # ------------------------------------------------------------ view messages
    def _on_view_msg(self, _widget: Any, content: dict[str, Any], buffers: Any) -> None:
        kind = content.get("type")
        if kind == "hover":
            self._want_hover = int(content["item_id"])
            self._hover_wake.set()
        elif kind == "queue" and buffers:
            ids = np.frombuffer(bytes(buffers[0]), dtype=np.int32).astype(np.int64)
            threading.Thread(target=self.send_to_labeler, args=(ids,), name="alaas-map-queue",
                             daemon=True).start()

    def send_to_labeler(self, item_ids: Any) -> dict[str, Any]:
        """Queue ``item_ids`` to be labeled next (what the view's "Send to labeler" does)."""
        try:
            client = connect(*self._endpoint, timeout=30.0)
            try:
                out = client.queue_items(item_ids, labeler=self._labeler)
            finally:
                client.close()
        except Exception as exc:
            self._update(error=f"could not queue the selection: {exc}")
            raise
        skipped = {k: int(v) for k, v in (out.get("skipped") or {}).items()}
        note = ", ".join(f"{v} {k}" for k, v in skipped.items())
        queued = {"n_queued": int(out["n_queued"]), "skipped": skipped,
                  "item_ids": [int(i) for i in out["item_ids"][:1000]], "time": time.time()}
        self._update(queued=queued, message=f"queued {out['n_queued']} items for the labeler"
                     + (f" (skipped: {note})" if note else ""))
        self.request_map()
        return out

    def _hover_loop(self) -> None:
        """Fetch the hovered item (the newest wanted only) with this thread's own client."""
        client: Client | None = None
        try:
            while not self._closed.is_set():
                self._hover_wake.wait()
                self._hover_wake.clear()
                item, self._want_hover = self._want_hover, None
                if item is None or self._closed.is_set():
                    continue
                if client is None:
                    client = connect(*self._endpoint, timeout=30.0)
                self._update(hover={"item_id": item, "state": "loading"})
                reply: dict[str, Any] = {"item_id": item, "state": "error"}
                data = b""
                try:
                    (it,) = client.item_data([item], max_side=_HOVER_SIDE)
                    reply.update(state="ready", kind=it.get("kind"), uri=it.get("uri"),
                                 mime=it.get("mime") or "", text=it.get("text") or "")
                    data = bytes(it.get("data") or b"")
                except Exception as exc:
                    reply["text"] = f"{type(exc).__name__}: {exc}"
                with self._state():
                    if self._want_hover is None:  # not overtaken by a newer hover
                        self.hover_data, self.hover = data, reply
        finally:
            if client is not None:
                client.close()

    def _stop(self) -> None:
        self._hover_wake.set()
        if self._hover_thread is not None:
            self._hover_thread.join(5.0)
        super()._stop()
