"""Plugins: user code that reaches the worker process, by import, never by pickle.

A plugin is a dotted module name (``mypkg.strategies``) or a ``.py`` file. Its
import registers strategies (:func:`alaas_lab.strategies.register`) or backbones
(:func:`alaas_lab.models.register_backbone`). Three ways in:

``plugins:`` config key
    imported by :func:`~alaas_lab.config.load_config`, in the kernel and in the
    worker alike, before strategy names are checked (so both sides agree);
    relative file paths are taken from the config file's folder (the current
    directory for a dict) and stored absolute.
``SESSION_DIR/plugins/*.py``
    what ``%%alaas strategy NAME`` writes; the worker imports every one at start.
entry points
    a package adds strategies in the group ``alaas_lab.strategies``
    (``name = "pkg.mod:function"``; the function's ``needs`` attribute, default
    ``{"probs"}``, says its inputs) and backbones in ``alaas_lab.backbones``
    (``name = "pkg.mod:Class"``, imported on first use).

A plugin that fails to import raises :class:`~alaas_lab.errors.ConfigError`
naming the plugin, its file and the line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path

from .errors import AlaasError, ConfigError

__all__ = [
    "BACKBONE_GROUP",
    "PLUGIN_DIR",
    "STRATEGY_GROUP",
    "is_path",
    "load_entry_points",
    "load_plugins",
    "load_session_plugins",
    "resolve_spec",
    "session_plugin_files",
    "write_strategy_plugin",
]

#: Entry-point group of strategies: ``name = "pkg.mod:function"``.
STRATEGY_GROUP = "alaas_lab.strategies"
#: Entry-point group of backbones: ``name = "pkg.mod:Class"``.
BACKBONE_GROUP = "alaas_lab.backbones"
#: Folder of a session directory whose ``*.py`` files the worker imports at start.
PLUGIN_DIR = "plugins"

_LOCK = threading.RLock()
_LOADED: dict[str, str] = {}  # absolute file path -> sha256 of the bytes imported
_ENTRY_POINTS_LOADED = False


def is_path(spec: str) -> bool:
    """Whether a plugin spec names a file (``.py`` or a path) rather than a module."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def resolve_spec(spec: str, *, base_dirs: Iterable[str | os.PathLike[str] | None] = ()) -> str:
    """A plugin spec with a file path made absolute (modules are returned as given).

    A relative path is looked up in each of ``base_dirs`` in turn.

    Raises
    ------
    ConfigError
        ``spec`` is not a non-empty string, or names a file found nowhere.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"config key 'plugins' holds {spec!r}; each plugin is a module name "
                          "(pkg.module) or a path to a .py file.")
    if not is_path(spec):
        return spec
    path = Path(spec).expanduser()
    tried = []
    candidates = [path] if path.is_absolute() else [
        Path(b).expanduser() / path for b in base_dirs if b is not None] or [path]
    for cand in candidates:
        tried.append(str(cand))
        if cand.is_file():
            return str(cand.resolve())
    raise ConfigError(f"plugin {spec!r} does not exist (looked at {', '.join(tried)}); "
                      "give a path to a .py file (relative to the config's folder) or a "
                      "module name.")


def _where(exc: BaseException, filename: str | None) -> str:
    """``file, line N`` of the error: a SyntaxError's own, else the last frame in the plugin."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename != "<unknown>":
        return f"{exc.filename}, line {exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    target = os.path.abspath(filename) if filename is not None else None
    ours = [f for f in frames if target is not None and os.path.abspath(f.filename) == target]
    if not ours:  # a module: the last frame outside the import machinery
        ours = [f for f in frames if "importlib" not in f.filename
                and not f.filename.endswith("alaas_lab/plugins.py")]
    if not ours:
        return filename or "?"
    frame = ours[-1]
    return f"{frame.filename}, line {frame.lineno}"


def _failed(spec: str, exc: BaseException, filename: str | None) -> ConfigError:
    what = f"{type(exc).__name__}: {exc.msg if isinstance(exc, SyntaxError) else exc}"
    return ConfigError(f"plugin {spec!r} failed to import ({_where(exc, filename)}): {what}. "
                       "Fix the plugin, or remove it from the config's 'plugins' key "
                       "(or from the session's plugins folder).")


def _import_file(spec: str, path: str) -> None:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with _LOCK:
        if _LOADED.get(path) == digest:
            return  # the same bytes were imported already: registering again is a no-op
        name = f"alaas_lab_plugin_{Path(path).stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:  # pragma: no cover
            raise ConfigError(f"plugin {spec!r} ({path}) cannot be imported as a Python file.")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise _failed(spec, exc, path) from exc
        _LOADED[path] = digest


def _import_module(spec: str) -> None:
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise ConfigError(f"plugin module {spec!r} is not installed ({exc}); install it, "
                              "or give a path to a .py file.") from exc
        raise _failed(spec, exc, None) from exc
    except Exception as exc:
        raise _failed(spec, exc, None) from exc


def load_entry_points() -> list[str]:
    """Register the strategies and backbones installed packages declare (once per process).

    Returns
    -------
    names : list of str
        ``group:name`` of every entry point registered by this call.
    """
    global _ENTRY_POINTS_LOADED
    with _LOCK:
        if _ENTRY_POINTS_LOADED:
            return []
        _ENTRY_POINTS_LOADED = True
        from .models import register_backbone
        from .strategies import register

        done = []
        for ep in importlib.metadata.entry_points(group=BACKBONE_GROUP):
            try:
                register_backbone(ep.name, ep.value)
            except AlaasError as exc:
                raise ConfigError(f"entry point {BACKBONE_GROUP}:{ep.name} = {ep.value!r}: "
                                  f"{exc}") from exc
            done.append(f"{BACKBONE_GROUP}:{ep.name}")
        for ep in importlib.metadata.entry_points(group=STRATEGY_GROUP):
            try:
                fn = ep.load()
            except Exception as exc:
                raise _failed(f"{STRATEGY_GROUP}:{ep.name} = {ep.value}", exc, None) from exc
            try:
                register(ep.name, fn, needs=getattr(fn, "needs", {"probs"}))
            except AlaasError as exc:
                raise ConfigError(f"entry point {STRATEGY_GROUP}:{ep.name} = {ep.value!r}: "
                                  f"{exc}") from exc
            done.append(f"{STRATEGY_GROUP}:{ep.name}")
        return done


def load_plugins(specs: Iterable[str], *,
                 base_dir: str | os.PathLike[str] | None = None,
                 session_dir: str | os.PathLike[str] | None = None,
                 entry_points: bool = True) -> list[str]:
    """Import plugins, then (once per process) the entry points.

    Parameters
    ----------
    specs : iterable of str
        Module names or ``.py`` paths; a relative path is looked up in ``base_dir``
        (the config's folder), then ``session_dir``.
    base_dir, session_dir : path, optional
    entry_points : bool, default True
        Also register the ``alaas_lab.strategies`` / ``alaas_lab.backbones`` entry points.

    Returns
    -------
    resolved : list of str
        The specs, file paths made absolute.

    Raises
    ------
    ConfigError
        A plugin is missing or failed to import: the message names it, its file and line.
    """
    resolved = []
    for spec in specs:
        target = resolve_spec(spec, base_dirs=(base_dir, session_dir))
        if is_path(target):
            _import_file(spec, target)
        else:
            _import_module(target)
        resolved.append(target)
    if entry_points:
        load_entry_points()
    return resolved


def session_plugin_files(session_dir: str | os.PathLike[str]) -> list[Path]:
    """``SESSION_DIR/plugins/*.py``, sorted by name."""
    folder = Path(session_dir) / PLUGIN_DIR
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


def load_session_plugins(session_dir: str | os.PathLike[str]) -> list[str]:
    """Import every ``SESSION_DIR/plugins/*.py`` (what ``%%alaas strategy`` wrote)."""
    return load_plugins([str(p.resolve()) for p in session_plugin_files(session_dir)],
                        entry_points=False)




_NAME_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def write_strategy_plugin(session_dir: str | os.PathLike[str], name: str, source: str, *,
                          needs: str | Iterable[str] = "probs", fn: str | None = None) -> Path:
    """Save ``source`` as ``SESSION_DIR/plugins/NAME.py`` registering strategy ``name``.

    The function registered is ``fn``, else the one named ``name``, else the
    source's only top-level function. The file is imported here first (the
    registry's contract checks run); a file that fails is not kept, so the
    worker's plugins never hold a broken one.

    Parameters
    ----------
    session_dir : path
    name : str
        Letters, digits, ``_``, ``.`` and ``-``.
    source : str
        Python code defining ``fn(k, *, probs, embeddings, labeled, rng, **options)``.
    needs : str or iterable of str, default "probs"
        Comma-separated or a list, from ``probs``, ``mc_probs``, ``embeddings``.
    fn : str, optional

    Returns
    -------
    path : Path
        The plugin file.

    Raises
    ------
    ConfigError
        A bad name, no function to register, or the code fails (file and line named).
    """
    import ast

    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise ConfigError(f"strategy name {name!r} may hold only letters, digits, '_', '.' "
                          "and '-' (it names the plugin file).")
    if isinstance(needs, str):
        needs = [n.strip() for n in needs.split(",") if n.strip()]
    needs = sorted(set(needs))
    path = Path(session_dir).expanduser().resolve() / PLUGIN_DIR / f"{name}.py"
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise _failed(name, exc, str(path)) from None
    funcs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if fn is None:
        if name in funcs:
            fn = name
        elif len(funcs) == 1:
            fn = funcs[0]
        else:
            raise ConfigError(
                f"strategy {name!r}: the cell defines {len(funcs)} functions ({funcs}); name "
                "the one to register with --fn FUNC, or call it like the strategy.")
    elif fn not in funcs:
        raise ConfigError(f"strategy {name!r}: the cell defines no function {fn!r} "
                          f"(it defines {funcs}).")
    text = (f"# strategy {name!r}, saved by %%alaas strategy; the worker imports it at start.\n"
            f"{source.rstrip()}\n\n\n"
            "from alaas_lab.strategies import register as _alaas_register  # noqa: E402\n\n"
            f"_alaas_register({name!r}, {fn}, needs={needs!r}, clobber=True)\n")
    old = path.read_bytes() if path.is_file() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    try:
        load_plugins([str(path)], entry_points=False)
    except AlaasError:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(old)
        raise
    return path
