"""Start, find and stop worker processes, as in the paper: ``Server(config_path=...).start()``.

The worker runs as a separate Python process (``python -m alaas_lab.worker``), so
the notebook kernel stays responsive while it fetches, embeds and trains. Its
session directory holds the journal, the resolved config, the log and the
connection file; starting a server on a directory that already holds a session
resumes it.

Each start gives the worker a fresh random HMAC key, which only its connection
file (mode 0600) holds; :meth:`Server.client`, ``Client(connection_file=...)``
and ``Lab(session_dir=...)`` read it from there. By default a worker outlives
the process that started it (a notebook's worker survives a kernel restart)
until ``al_worker.idle_timeout``; ``with Server(...) as srv:`` or
``tie_to_parent=True`` ties it to this process instead.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .client import Client
from .config import Config, load_config
from .connection import CONNECTION_FILE
from .errors import AlaasError, WorkerStartError

__all__ = ["Server", "WorkerStartError", "session_path", "write_session_config"]

CONFIG_FILE = "config.yml"


def session_path(config: Config, session_dir: str | os.PathLike[str] | None = None) -> Path:
    """The absolute session directory of a worker for ``config``.

    Parameters
    ----------
    config : Config
    session_dir : path, optional
        Default: the config's ``session_dir``, else ``./alaas_sessions/<name>``.
    """
    where = session_dir or config.session_dir or Path("alaas_sessions") / config.name
    return Path(where).expanduser().resolve()


def write_session_config(config: Config, session_dir: str | os.PathLike[str]) -> Path:
    """Create ``session_dir`` and write the resolved config to its ``config.yml``.

    Every worker start does this (:meth:`Server.start`, ``alaas-lab serve``), so
    ``Lab(session_dir=...)`` can reopen any session.

    Returns
    -------
    path : Path
        The ``config.yml`` written.

    Raises
    ------
    WorkerStartError
        The directory cannot be created or written.
    """
    session_dir = Path(session_dir)
    path = session_dir / CONFIG_FILE
    tmp = path.with_suffix(".yml.tmp")
    try:
        session_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        os.replace(tmp, path)  # a full disk leaves the old config.yml whole
    except OSError as exc:
        raise _unwritable(session_dir, exc) from None
    return path


def _unwritable(session_dir: Path, exc: OSError) -> WorkerStartError:
    return WorkerStartError(
        f"cannot write to the session directory {session_dir} ({exc.strerror or exc}); free "
        "space or make it writable, or choose another session_dir.")


class Server:
    """A worker process for one session.

    Parameters
    ----------
    config_path : path, optional
        YAML config (the paper's shape); or give ``config``.
    config : Config or dict, optional
    session_dir : path, optional
        Default: the config's ``session_dir``, else ``./alaas_sessions/<name>``.
    key : bytes, optional
        HMAC key for the wire. Default: a fresh random key at each start. Either
        way it is written only to the connection file (mode 0600).
    tie_to_parent : bool, default False
        Whether the worker exits when this process does (a script's worker). By
        default it outlives it (a notebook's worker survives a kernel restart)
        until ``al_worker.idle_timeout``. ``with Server(...)`` sets it.
    """

    def __init__(self, config_path: str | os.PathLike[str] | None = None, *,
                 config: Config | dict[str, Any] | None = None,
                 session_dir: str | os.PathLike[str] | None = None,
                 key: bytes | None = None, tie_to_parent: bool = False,
                 log_level: str = "INFO") -> None:
        if config_path is not None and config is not None:
            raise AlaasError("give config_path or config, not both.")
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            got = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
            raise AlaasError(f"key must be at least 16 random bytes; got {got}. Leave it out "
                             "for a fresh random key, which clients read from the connection "
                             "file.")
        self.config = load_config(config_path if config is None else config)
        self.session_dir = session_path(self.config, session_dir)
        self._key = key
        self.tie_to_parent = tie_to_parent
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: list[dict[str, Any]] = []  # what the supervisor saw and did
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def connection_file(self) -> Path:
        return self.session_dir / CONNECTION_FILE

    @property
    def log_file(self) -> Path:
        return self.session_dir / "worker.log"

    @property
    def url(self) -> str:
        return self.connection()["endpoint"]

    @property
    def key(self) -> bytes:
        """The running worker's HMAC key (from its connection file)."""
        return bytes.fromhex(self.connection()["key"])

    def connection(self) -> dict[str, Any]:
        """The running worker's connection info (endpoints, pid, key)."""
        try:
            return json.loads(self.connection_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise AlaasError(f"no worker is running for {self.session_dir} "
                             "(no connection file); call start().") from None

    def start(self, *, timeout: float = 120.0, env: dict[str, str] | None = None) -> Server:
        """Start the worker (or attach to a live one for this session) and wait until it serves.

        ``env`` adds environment variables for this start only (e.g. fail points in tests).
        """
        self._stopping.clear()
        if self.is_alive():
            return self
        config_file = write_session_config(self.config, self.session_dir)
        try:
            self.connection_file.unlink(missing_ok=True)
        except OSError as exc:
            raise _unwritable(self.session_dir, exc) from None
        key = self._key or secrets.token_bytes(32)  # a fresh key for every worker
        env = {**os.environ, **(env or {}), "ALAAS_KEY": key.hex()}
        tie = ["--parent-pid", str(os.getpid())] if self.tie_to_parent else []
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "alaas_lab.worker", "--config", str(config_file),
                 "--session-dir", str(self.session_dir), "--log-level", self.log_level, *tie],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WorkerStartError(
                    f"the worker exited with code {self.process.returncode} while starting; "
                    f"its log ({self.log_file}) ends with:\n{self.log_tail()}")
            info = self._read_connection()
            if info and info.get("pid") == self.process.pid:
                return self
            time.sleep(0.05)
        self.kill()
        raise WorkerStartError(f"the worker did not come up within {timeout:g} s; its log "
                               f"ends with:\n{self.log_tail()}")

    def client(self, **kwargs: Any) -> Client:
        """A :class:`Client` connected to this worker."""
        return Client(connection_file=self.connection_file, **kwargs)

    def pid(self) -> int | None:
        info = self._read_connection()
        return None if info is None else int(info["pid"])

    def is_alive(self) -> bool:
        """Whether a worker process for this session is running."""
        if self.process is not None:
            return self.process.poll() is None
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def supervise(self, *, interval: float = 0.2,
                  on_restart: Callable[[dict[str, Any]], None] | None = None) -> Server:
        """Watch the worker from a background thread; restart it from the journal if it dies.

        A death is noticed within ``interval`` seconds. The new worker resumes the
        session (labels, rounds, pending selections; an interrupted push is redone).
        Each restart is appended to :attr:`restarts` and passed to ``on_restart``.
        A clean exit (exit code 0: a ``stop`` request, SIGTERM, the idle timeout)
        ends the watch instead.
        """
        if self._supervisor is not None and self._supervisor.is_alive():
            return self

        def watch() -> None:
            while not self._stopping.wait(interval):
                if self.process is None or self.process.poll() is None:
                    continue
                if self.process.returncode == 0:
                    return
                noticed = time.monotonic()
                event = {"exit_code": self.process.returncode, "noticed": time.time()}
                self.process = None
                try:
                    self.start()
                    event["restart_s"] = round(time.monotonic() - noticed, 3)
                except AlaasError as exc:
                    event["error"] = str(exc)
                self.restarts.append(event)
                if on_restart is not None:
                    on_restart(event)

        self._supervisor = threading.Thread(target=watch, name="alaas-supervisor", daemon=True)
        self._supervisor.start()
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the worker to stop; kill it if it does not within ``timeout`` s."""
        self._stopping.set()
        if not self.is_alive():
            return
        try:
            with self.client(timeout=min(timeout, 5.0)) as c:
                c.stop()
        except AlaasError:
            pass
        if not self._wait(timeout):
            self.kill()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker (SIGKILL by default) and reap it; no restart follows."""
        self._stopping.set()
        pid = self.process.pid if self.process is not None else self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        self._wait(10.0)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _wait(self, timeout: float) -> bool:
        if self.process is not None:
            try:
                self.process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                return True
            time.sleep(0.05)
        return False

    def _read_connection(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.connection_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def __enter__(self) -> Server:
        """Start a worker tied to this process; leaving the block stops it."""
        self.tie_to_parent = True
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
