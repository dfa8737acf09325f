"""What the three widgets share: bundled front-end files, thread-safe trait updates,
a heartbeat that lets a view tell that its kernel side is gone, and full-size images."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..client import Client

logger = logging.getLogger(__name__)



def _front_end_dir() -> Path:
    """The widgets' ES modules and CSS: ``alaas_lab/js`` in a wheel, ``js/`` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "js", package.parent / "js"):
        if (candidate / "labeler.js").is_file():
            return candidate
    raise ImportError(
        f"alaas_lab's front end (labeler.js) is neither in {package / 'js'} nor in "
        f"{package.parent / 'js'}: reinstall alaas_lab (pip install alaas_lab)"
    )


JS_DIR = _front_end_dir()
CSS = JS_DIR / "alaas.css"
#: Seconds between heartbeats; a view that hears none for ``max(6, 3 * HEARTBEAT_S + 1)``
#: seconds says it is disconnected (the kernel restarted, died, or the widget is gone).
HEARTBEAT_S = 2.0
#: ``max_side`` of a full-size image (a view's "Full size" button).
FULL_SIZE_SIDE = 4096


class _Heartbeat:
    """One daemon thread per kernel that bumps ``heartbeat`` on every live widget.

    The trait goes out from this thread (like the widgets' other updates from their
    threads), so it keeps beating while a cell runs; it stops when the kernel does,
    and the views notice the silence. Widgets are held weakly and leave on ``close``.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._widgets: weakref.WeakSet[SessionWidget] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, widget: SessionWidget) -> None:
        with self._lock:
            self._widgets.add(widget)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alaas-heartbeat",
                                                daemon=True)
                self._thread.start()

    def discard(self, widget: SessionWidget) -> None:
        with self._lock:
            self._widgets.discard(widget)

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            with self._lock:
                widgets = list(self._widgets)
                if not widgets:
                    self._thread = None
                    return
            for widget in widgets:
                widget._beat()


_HEARTBEAT = _Heartbeat(HEARTBEAT_S)


def budget_total(status: dict[str, Any]) -> int | None:
    """The session's ``budget.total`` from a ``status`` reply (None: no limit).

    The worker reports what is left: ``total - labeled - pending``.
    """
    left = status.get("budget_left")
    if left is None:
        return None
    return int(left) + int(status.get("n_labeled") or 0) + int(status.get("n_pending") or 0)


def connect(client: Client | None, connection_file: str | Path | None,
            timeout: float = 30.0) -> Client:
    """A widget's own :class:`Client`: its requests never queue behind the notebook's.

    ``Client`` serializes requests on one socket; a widget waiting on a slow
    ``query`` must not hold up a label, nor ``lab.status()`` in a cell. So each
    widget opens its own socket(s) from the connection file when it has one.
    """
    if connection_file is not None:
        return Client(connection_file=connection_file, timeout=timeout)
    if client is None:
        raise TypeError("give a client or a connection_file")
    return Client(client.url, key=client.key, timeout=timeout)


class SessionWidget(anywidget.AnyWidget):
    """Base of the alaas_lab widgets: a lock around trait updates from worker threads.

    Events arrive on a subscription thread and replies on the widgets' own threads,
    while front-end messages arrive on the kernel's shell thread. Every state change
    goes through :meth:`_update` (or ``with self._state():``), which holds one lock
    and ``hold_sync`` so that related traits reach the browser in one message.
    """

    _css = CSS

    error = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    #: bumped every ``heartbeat_s`` seconds while the kernel side lives
    heartbeat = traitlets.Int(0).tag(sync=True)
    heartbeat_s = traitlets.Float(HEARTBEAT_S).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._cleanup: list[Callable[[], None]] = []
        self._stop_reason = ""
        super().__init__(**kwargs)
        _HEARTBEAT.add(self)

    def _beat(self) -> None:
        """One heartbeat (from the heartbeat thread); skipped while an update holds the lock."""
        if not self._lock.acquire(timeout=self.heartbeat_s / 2):
            return
        try:
            self.heartbeat += 1
        except Exception:  # a closed comm: the view is gone anyway
            logger.debug("heartbeat failed", exc_info=True)
        finally:
            self._lock.release()

    @contextmanager
    def _state(self):
        with self._lock, self.hold_sync():
            yield

    def _update(self, **traits: Any) -> None:
        with self._state():
            for name, value in traits.items():
                setattr(self, name, value)

    def _subscribe(self, client: Client, callback: Callable[[Any], None],
                   types: list[str]) -> None:
        """Listen to worker events until :meth:`close`; failures show in ``error``."""

        def safe(event: Any) -> None:
            if self._closed.is_set():
                return
            try:
                callback(event)
            except Exception as exc:  # a bad event must not silence the widget
                logger.exception("%s: event %s failed", type(self).__name__, event.msg_type)
                self._update(error=f"{type(exc).__name__}: {exc}")

        try:
            self._cleanup.append(client.subscribe(safe, types=types))
        except Exception as exc:
            self._update(error=f"cannot listen to the worker's events: {exc}")

    @property
    def stopped(self) -> bool:
        return self._closed.is_set()

    def shutdown(self, reason: str = "stopped") -> None:
        """Stop this widget's threads and subscriptions; the view stays, inert, saying why."""
        closed = getattr(self, "_closed", None)  # None: __init__ failed before it ran
        if closed is None or closed.is_set():
            return
        self._stop_reason = reason
        self._closed.set()
        for fn in self._cleanup:
            try:
                fn()
            except Exception:  # pragma: no cover - best effort on teardown
                logger.debug("cleanup failed", exc_info=True)
        self._cleanup.clear()
        self._stop()
        with self._state():
            if self.has_trait("state"):
                self.state = "stopped"
            self.message = reason

    def _stop(self) -> None:
        """Subclasses wake and join their threads here.

        A thread closes the client it uses itself, on its way out: a ZeroMQ socket
        must not be closed by one thread while another waits on it.
        """

    def close(self) -> None:
        """Stop the widget's threads, then close it (its views disappear)."""
        _HEARTBEAT.discard(self)
        self.shutdown()
        super().close()


class FullSizeImages(traitlets.HasTraits):
    """A view's "Full size" button: one item's image at up to ``FULL_SIZE_SIDE`` pixels.

    The view sends ``{"type": "full_size", "item_id"}``; :meth:`_load_full_size` asks
    the worker for the item (``item_data`` with a large ``max_side``) on a short-lived
    thread with its own client, so the shell thread never waits on the worker.

    Traits
    ------
    full : dict
        ``item_id``, ``state`` (``loading``, ``ready`` or ``error``), ``mime``, ``text``
        (why it failed).
    full_data : bytes
        The image (PNG) when ``state`` is ``ready``.
    """

    full = traitlets.Dict().tag(sync=True)
    full_data = traitlets.Bytes(b"").tag(sync=True)

    #: ``(client, connection_file)`` the widget was made with (set by the widget)
    _endpoint: tuple[Client | None, str | Path | None] = (None, None)

    def _load_full_size(self, item_id: int) -> None:
        if self.full.get("item_id") == item_id and self.full.get("state") in ("loading", "ready"):
            return
        self.full, self.full_data = {"item_id": item_id, "state": "loading"}, b""

        def run() -> None:
            reply: dict[str, Any] = {"item_id": item_id, "state": "error"}
            data = b""
            try:
                client = connect(*self._endpoint, timeout=60.0)
                try:
                    (item,) = client.item_data([item_id], max_side=FULL_SIZE_SIDE)
                finally:
                    client.close()
                if item.get("kind") == "image" and item.get("data"):
                    reply.update(state="ready", mime=item.get("mime") or "image/png")
                    data = bytes(item["data"])
                else:
                    reply["text"] = (item.get("text")
                                     or f"the item is {item.get('kind')}, not an image")
            except Exception as exc:
                reply["text"] = f"{type(exc).__name__}: {exc}"
            with self._lock, self.hold_sync():  # type: ignore[attr-defined]
                if self.full.get("item_id") == item_id:  # not replaced by a newer request
                    self.full, self.full_data = reply, data

        threading.Thread(target=run, name="alaas-full-size", daemon=True).start()


class RefreshingWidget(SessionWidget):
    """A widget whose ``status`` requests all run on one thread, which owns its client.

    :meth:`refresh` is called there every ``poll`` seconds (never if 0) and whenever
    :meth:`request_refresh` asks, e.g. from an event callback.
    """

    def _start_refresher(self, client: Client, poll: float) -> None:
        self._refresh_now = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, args=(client, poll),
                                           name=f"alaas-{type(self).__name__}", daemon=True)
        self._refresher.start()

    def request_refresh(self) -> None:
        self._refresh_now.set()

    def refresh(self) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _worker_status(self) -> dict[str, Any] | None:
        """The worker's status, or None once the widget shows why it could not be had."""
        try:
            return self._client.status()
        except Exception as exc:
            if not self.stopped:
                self._update(state="error", error=f"the worker does not answer: {exc}")
            return None

    def _worker_history(self, include: list[str]) -> dict[str, Any] | None:
        """The ``history`` sections that changed since the last call (None on failure).

        The first call gets them all; later ones pass the reply's cursor, so an
        unchanged section does not come again.
        """
        try:
            reply = self._client.history(getattr(self, "_cursor", 0), include)
        except Exception as exc:
            if not self.stopped:
                self._update(state="error", error=f"the worker sent no history: {exc}")
            return None
        self._cursor = reply["cursor"]
        return reply

    def _refresh_loop(self, client: Client, poll: float) -> None:
        try:
            while not self._closed.is_set():
                self._refresh_now.wait(poll if poll > 0 else None)
                self._refresh_now.clear()
                if not self._closed.is_set():
                    self.refresh()
        finally:
            client.close()

    def _stop(self) -> None:
        refresher = getattr(self, "_refresher", None)
        if refresher is None:  # never started: nobody else uses the client
            self._client.close()
            return
        self._refresh_now.set()
        refresher.join(15.0)
