"""What the three widgets share: bundled front-end files, thread-safe trait updates,
a heartbeat that lets a view tell that its kernel side is gone, and full-size images."""

from __future__ import annotations

import logging
import os
import re
import threading
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from anywidget._file_contents import VirtualFileContents  # an _esm whose text can change

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

# ``import { a, b as c } from "./dom.js";`` (one or several lines), at the start of a line
_RELATIVE_IMPORT = re.compile(
    r'^import\s*\{(?P<names>[^}]*)\}\s*from\s*(?P<q>["\'])(?P<path>\./[\w.-]+\.js)(?P=q)'
    r'[ \t]*;?[ \t]*$', re.M)
# any other import of a file (a default or namespace import, ../, a bare path)
_OTHER_FILE_IMPORT = re.compile(r'^\s*import\b[^;]*?["\'](?:\.{1,2}/|/)[^"\']*["\']', re.M)
_EXPORTED_DECLARATION = re.compile(
    r'^export\s+(?=(?:async\s+)?function\b|const\b|let\b|var\b|class\b)'
    r'(?:(?:async\s+)?function\*?|const|let|var|class)\s+(?P<name>[A-Za-z_$][\w$]*)', re.M)
_OTHER_EXPORT = re.compile(r'^export\b(?!\s+(?:(?:async\s+)?function\b|const\b|let\b|var\b|'
                           r'class\b))[^\n]*', re.M)


def inline_imports(entry: str | Path) -> str:
    """An ES module's source with its imports of sibling modules inlined: one file.

    anywidget loads a widget's ``_esm`` as one file, so ``import { h } from
    "./dom.js"`` has nothing to resolve against. Each imported module (and what it
    imports, depth first, each module once) becomes a scope of its own ahead of the
    importer, its ``export`` keywords dropped and its exports returned::

        const __alaas_dom_js = (() => { function h(...) {...} ...; return { h, s }; })();
        const { h, s: svg } = __alaas_dom_js;   // was: import { h, s as svg } from "./dom.js";

    No build step: a module imported this way runs unchanged in Node and browsers.

    Only named imports of ``./name.js`` beside ``entry`` are inlined; inlined modules
    export with ``export function|const|let|class <name>``. Anything else (a default
    or namespace import, ``../``, ``export default`` in an inlined module, a name the
    module does not export, an import cycle) raises :class:`ImportError` naming the file.

    Parameters
    ----------
    entry : str or Path
        The widget's module, e.g. ``JS_DIR / "dashboard.js"``.

    Returns
    -------
    str
        The module's source: the inlined modules first, then ``entry`` with each of
        its relative imports replaced by a ``const`` destructuring.
    """
    entry = Path(entry)
    # module -> (the const that holds its exports, their names)
    scopes: dict[Path, tuple[str, set[str]]] = {}
    blocks: list[str] = []

    def link(source: str, path: Path, chain: tuple[Path, ...]) -> str:
        def replace(m: re.Match[str]) -> str:
            dep = (path.parent / m["path"]).resolve()
            var, exported = module_scope(dep, (*chain, path), importer=path)
            bindings = []
            for spec in filter(None, (part.strip() for part in m["names"].split(","))):
                name, _, alias = (w.strip() for w in spec.partition(" as "))
                if name not in exported:
                    raise ImportError(f"{path.name} imports {name!r} from {dep.name}, which "
                                      f"exports only {sorted(exported)}; export it there.")
                bindings.append(f"{name}: {alias}" if alias else name)
            return f"const {{ {', '.join(bindings)} }} = {var};"

        linked = _RELATIVE_IMPORT.sub(replace, source)
        other = _OTHER_FILE_IMPORT.search(linked)
        if other:
            raise ImportError(f"{path}: cannot inline {other.group(0).strip()!r}; write it as "
                              'import { name } from "./module.js"; with the module beside it.')
        return linked

    def module_scope(path: Path, chain: tuple[Path, ...], importer: Path
                     ) -> tuple[str, set[str]]:
        if path in chain:
            cycle = " -> ".join(p.name for p in (*chain, path))
            raise ImportError(f"import cycle between the front-end modules: {cycle}")
        if not path.is_file() or path.parent != entry.parent.resolve():
            raise ImportError(f"{importer.name} imports {path}, which is not a module in "
                              f"{entry.parent}; put it there.")
        if path not in scopes:
            source = link(path.read_text(encoding="utf-8"), path, chain)
            names = _EXPORTED_DECLARATION.findall(source)
            other = _OTHER_EXPORT.search(source)
            if other:
                raise ImportError(f"{path}: cannot inline {other.group(0).strip()!r}; export "
                                  "with export function|const|let|class <name>.")
            var = "__alaas_" + re.sub(r"\W", "_", path.name)
            body = re.sub(r"^export\s+", "", source, flags=re.M)
            blocks.append(f"// ---- {path.name}, inlined by alaas_lab.widgets._base."
                          f"inline_imports\nconst {var} = (() => {{\n{body}\n"
                          f"return {{ {', '.join(names)} }};\n}})();\n")
            scopes[path] = var, set(names)
        return scopes[path]

    main = link(entry.read_text(encoding="utf-8"), entry.resolve(), ())
    return "".join(blocks) + main


class FrontEndModule(VirtualFileContents):
    """A widget's ``_esm``: ``inline_imports(JS_DIR / name)``, built when the class is defined.

    anywidget sends the text to each view and, on :meth:`reload` (or a save, with
    ``ANYWIDGET_HMR=1``, ``watchfiles`` installed and ``js/`` outside site-packages),
    the rebuilt text to the live views.
    """

    def __init__(self, name: str, js_dir: Path | None = None) -> None:
        self.path = (js_dir or JS_DIR) / name
        super().__init__(inline_imports(self.path))
        if _hot_reload_enabled(self.path):
            threading.Thread(target=self._watch, name=f"alaas-hmr-{name}", daemon=True).start()

    def reload(self) -> bool:
        """Rebuild from the files; True (and the views updated) when the text changed."""
        try:
            text = inline_imports(self.path)
        except (ImportError, OSError):  # a file half-saved or broken: keep the last good text
            logger.exception("front-end module %s not reloaded", self.path.name)
            return False
        if text == self.contents:
            return False
        self.contents = text  # emits ``changed``: anywidget sets each instance's _esm
        return True

    def _watch(self) -> None:  # pragma: no cover - needs watchfiles and a file save
        from watchfiles import watch

        for _ in watch(self.path.parent):
            self.reload()


def _hot_reload_enabled(path: Path) -> bool:
    """anywidget's own rule: ``ANYWIDGET_HMR=1``, watchfiles importable, not installed."""
    if os.environ.get("ANYWIDGET_HMR") != "1" or {"site-packages", "dist-packages"} & set(
            path.parts):
        return False
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        logger.warning("ANYWIDGET_HMR=1 but watchfiles is not installed: no hot reload")
        return False
    return True


def front_end_module(name: str) -> FrontEndModule:
    """The ``_esm`` of a widget whose module is ``js/<name>``, its imports inlined."""
    return FrontEndModule(name)
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
