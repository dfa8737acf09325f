"""Shared fixtures: a real S3 server (moto's standalone server) and fresh buckets on it, an
HTTP mirror of the project's data sets (``../shared/data``) on 127.0.0.1, and the digits the
worker and widget tests label; :func:`wait_for` polls until a condition holds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

#: The data sets kept beside the checkout (see ../shared/data/README.md); the download
#: path of ``alaas_lab.datasets`` is tested against an HTTP server serving this folder.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def wait_for(predicate, timeout: float = 30.0, step: float = 0.02):
    """Call ``predicate`` every ``step`` s until it returns something true; that value.

    Fails the test (AssertionError) after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits: images (1797, 8, 8) float32 and labels as strings."""
    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(str)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers (any HTTP status), or fail the test run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


try:  # resolved here: the child of a fork must not import anything
    import ctypes

    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform == "linux" else None
except OSError:
    _prctl = None
_PR_SET_PDEATHSIG, _SIGTERM = 1, int(signal.SIGTERM)


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM when pytest dies, even if pytest itself is killed.
    _prctl(_PR_SET_PDEATHSIG, _SIGTERM)


def start_server(args: list[str], **kwargs) -> subprocess.Popen:
    """Start a test server process that cannot outlive the test run (on Linux)."""
    return subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if _prctl is not None else None,
        **kwargs,
    )


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server started by a fixture, and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class S3Bucket(dict):
    """The ``storage_options`` for the test S3 server, plus ``.name`` and ``.url`` of a bucket."""

    name: str
    url: str


@pytest.fixture(scope="session")
def s3_server():
    """URL of a moto S3 server (a real HTTP server in its own process) on 127.0.0.1."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/", proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture
def s3_bucket(s3_server) -> S3Bucket:
    """A new, empty bucket; the value is the ``storage_options`` dict for s3fs/fsspec.

    ``s3_bucket.name`` is the bucket's name, ``s3_bucket.url`` is ``"s3://<name>"``.
    """
    import s3fs

    options = S3Bucket(endpoint_url=s3_server, key="testing", secret="testing")
    options.name = f"test-{uuid.uuid4().hex[:12]}"
    options.url = f"s3://{options.name}"
    s3fs.S3FileSystem(**options).mkdir(options.name)  # one shared client per server
    return options


def serve_folder(folder: Path) -> tuple[str, subprocess.Popen]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (``python -m http.server``): (base URL, process)."""
    port = free_port()
    proc = start_server([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                         "--directory", str(folder), str(port)])
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, proc)
    return url, proc


@pytest.fixture(scope="session")
def data_mirror():
    """Base URL of an HTTP server on 127.0.0.1 serving ``../shared/data`` (for
    ``$ALAAS_DATA_MIRROR``); skips the test where that folder is absent."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no data sets in {SHARED_DATA} to serve")
    url, proc = serve_folder(SHARED_DATA)
    try:
        yield url
    finally:
        stop(proc)
