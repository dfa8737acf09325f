"""The data room against a real S3 API: moto's standalone server, reached over sockets by s3fs.

Faults are injected by :class:`FaultProxy`, a small HTTP proxy between s3fs and moto: it
forwards every request, except that it answers the first requests for chosen keys with
``503 SlowDown``, ``500 InternalError``, ``403 AccessDenied``, a body cut off halfway, no answer
until after the client's time-out (``hang``) or an answer 0.4 s late (``slow``). It also counts
requests per key, so a test sees how many tries really went over the wire, and the most
requests it was answering at once.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest
import s3fs
from PIL import Image

from alaas_lab.data import Decoder, Fetcher, RetryPolicy, expand
from alaas_lab.errors import DataError

pytestmark = pytest.mark.s3

FAST = RetryPolicy(max_attempts=4, base=0.001, cap=0.005)

_ERRORS = {
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "403": (403, "AccessDenied", "Access Denied"),
}


class FaultProxy:
    """An HTTP proxy in front of ``upstream`` that plays queued faults for chosen paths."""

    def __init__(self, upstream: str) -> None:
        self.faults: dict[str, list[str]] = {}
        self.counts: Counter = Counter()
        self.in_flight = self.peak_in_flight = 0  # requests being answered at once
        self._lock = threading.Lock()
        host, port = urlsplit(upstream).hostname, urlsplit(upstream).port
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per response

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._forward()

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                key = urlsplit(self.path).path
                with proxy._lock:
                    proxy.counts[(self.command, key)] += 1
                    queue = proxy.faults.get(key) or []
                    fault = queue.pop(0) if queue else None
                    proxy.in_flight += 1
                    proxy.peak_in_flight = max(proxy.peak_in_flight, proxy.in_flight)
                try:
                    self._answer(key, body, fault)
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _answer(self, key, body, fault):
                if fault == "hang":  # answer only after the client's time-out
                    time.sleep(4.0)
                if fault == "slow":  # a remote store's latency, well within the time-out
                    time.sleep(0.4)
                if fault in _ERRORS:
                    status, code, message = _ERRORS[fault]
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>proxy</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                conn = http.client.HTTPConnection(host, port, timeout=10)
                skip = {"connection", "keep-alive", "transfer-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response_only(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in skip | {"content-length", "server", "date"}:
                        self.send_header(k, v)
                size = resp.getheader("Content-Length") if self.command == "HEAD" else len(data)
                self.send_header("Content-Length", str(size or 0))
                if fault == "truncate":  # announce the whole body, send half, hang up
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # many connections at once (the default backlog is 5)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def gets(self, key: str) -> int:
        return self.counts[("GET", key)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pngs(s3_bucket):
    """12 small PNGs under <bucket>/pool/ (a/ and b/sub/), a note.txt, and their bytes."""
    fs = s3fs.S3FileSystem(**s3_bucket)
    rng = np.random.default_rng(0)
    files = {}
    for i in range(12):
        folder = "a" if i < 6 else "b/sub"
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(buf, "PNG")
        files[f"{s3_bucket.name}/pool/{folder}/img{i:02d}.png"] = buf.getvalue()
    files[f"{s3_bucket.name}/pool/note.txt"] = b"not an image"
    fs.pipe(files)
    return {f"s3://{k}": v for k, v in files.items()}


@pytest.fixture
def proxy(s3_server):
    p = FaultProxy(s3_server)
    yield p
    p.close()


def test_expand_glob_directory_and_manifest_on_s3(s3_bucket, pngs):
    images = sorted(u for u in pngs if u.endswith(".png"))
    assert expand(f"{s3_bucket.url}/pool/**/*.png", storage_options=s3_bucket) == images
    assert expand(f"{s3_bucket.url}/pool/a/*.png", storage_options=s3_bucket) == images[:6]
    assert expand(f"{s3_bucket.url}/pool/", storage_options=s3_bucket) == sorted(pngs)
    assert expand(f"{s3_bucket.url}/pool", storage_options=s3_bucket) == sorted(pngs)
    manifest = f"{s3_bucket.name}/lists/pool.txt"
    s3fs.S3FileSystem(**s3_bucket).pipe(
        manifest, b"../pool/a/img00.png\ns3://%s/pool/b/sub/*.png\n" % s3_bucket.name.encode()
    )
    assert expand(f"s3://{manifest}", storage_options=s3_bucket) == images[:1] + images[6:]


def test_expand_sees_new_objects_and_reports_empty_prefixes(s3_bucket, pngs):
    so = s3_bucket
    assert len(expand(f"{so.url}/pool/a/*.png", storage_options=so)) == 6
    s3fs.S3FileSystem(**so).pipe(f"{so.name}/pool/a/new.png", b"x")
    assert len(expand(f"{so.url}/pool/a/*.png", storage_options=so)) == 7  # no stale listing
    with pytest.raises(DataError, match=r"no files found in 's3://.*/nothing/\*\.png'"):
        expand(f"{so.url}/nothing/*.png", storage_options=so)
    with pytest.raises(DataError, match="does not exist"):
        expand(f"{so.url}/pool/a/missing.png", storage_options=so)


def test_fetch_many_returns_bytes_and_identity(s3_bucket, pngs):
    uris = sorted(pngs)
    with Fetcher(s3_bucket, max_in_flight=8) as fetcher:
        results = list(fetcher.fetch_many(uris))
        infos = list(fetcher.info_many(uris))
    assert [r.uri for r in results] == uris
    for r, i in zip(results, infos, strict=True):
        assert r.ok and r.attempts == 1 and r.data == pngs[r.uri]
        # A single-part upload's ETag is the MD5 of its bytes.
        assert r.info["etag"] == hashlib.md5(pngs[r.uri]).hexdigest()
        assert r.info["size"] == len(pngs[r.uri]) and r.info["mtime"] > 1.6e9
        assert i.ok and i.data is None and i.info == r.info


def test_fetched_images_decode_to_the_arrays_written(s3_bucket, pngs):
    uris = sorted(u for u in pngs if u.endswith(".png"))
    dec = Decoder("image")
    with Fetcher(s3_bucket) as fetcher:
        items = [dec.decode(r) for r in fetcher.fetch_many(uris, ordered=False)]
    assert sorted(i.uri for i in items) == uris
    for item in items:
        want = np.asarray(Image.open(io.BytesIO(pngs[item.uri])))
        np.testing.assert_array_equal(item.value, want)
    bad = dec.decode(Fetcher(s3_bucket).fetch(f"{s3_bucket.url}/pool/note.txt"))
    assert bad.stage == "decode" and "not a decodable image" in bad.reason


def test_missing_key_is_not_found_and_tried_once(s3_bucket, pngs, proxy):
    so = {**s3_bucket, "endpoint_url": proxy.url}
    uri = f"{s3_bucket.url}/pool/missing.png"
    with Fetcher(so, retries=FAST) as fetcher:
        [r] = fetcher.fetch_many([uri])
        [i] = fetcher.info_many([uri])
    assert r.error.startswith(f"not found: {uri}") and r.attempts == 1
    assert i.error.startswith("not found") and i.attempts == 1
    # One request on the wire: neither botocore nor s3fs retried behind our back.
    assert proxy.gets(f"/{s3_bucket.name}/pool/missing.png") == 1
    assert proxy.counts[("HEAD", f"/{s3_bucket.name}/pool/missing.png")] == 1


@pytest.mark.parametrize(
    "faults, attempts",
    [(["503", "503"], 3), (["500"], 2), (["truncate"], 2), (["503", "truncate", "500"], 4)],
)
def test_transient_faults_are_retried_then_succeed(s3_bucket, pngs, proxy, faults, attempts):
    uri = f"{s3_bucket.url}/pool/a/img01.png"
    key = f"/{s3_bucket.name}/pool/a/img01.png"
    proxy.faults[key] = list(faults)
    with Fetcher({**s3_bucket, "endpoint_url": proxy.url}, retries=FAST) as fetcher:
        [r] = fetcher.fetch_many([uri])
    assert r.ok, r.error
    assert r.data == pngs[uri] and r.attempts == attempts == proxy.gets(key)


def test_a_request_that_hangs_times_out_and_is_retried(s3_bucket, pngs, proxy):
    uri = f"{s3_bucket.url}/pool/a/img00.png"
    key = f"/{s3_bucket.name}/pool/a/img00.png"
    proxy.faults[key] = ["hang"]
    options = {**s3_bucket, "endpoint_url": proxy.url}
    with Fetcher(options, retries=FAST, timeout=1.0) as fetcher:
        [r] = fetcher.fetch_many([uri])
    assert r.ok, r.error
    # the hung try timed out and was retried (a loaded machine may time out once more)
    assert r.data == pngs[uri] and r.attempts >= 2 and proxy.gets(key) == r.attempts


def test_faults_that_persist_or_are_permanent(s3_bucket, pngs, proxy):
    slow = f"/{s3_bucket.name}/pool/a/img02.png"
    denied = f"/{s3_bucket.name}/pool/a/img03.png"
    cut = f"/{s3_bucket.name}/pool/a/img05.png"
    proxy.faults[slow] = ["503"] * 10
    proxy.faults[denied] = ["403"] * 10
    proxy.faults[cut] = ["truncate"] * 10
    uris = [f"s3:/{slow}", f"s3:/{denied}", f"s3:/{cut}", f"{s3_bucket.url}/pool/a/img04.png"]
    with Fetcher({**s3_bucket, "endpoint_url": proxy.url}, retries=FAST) as fetcher:
        gave_up, refused, short, fine = fetcher.fetch_many(uris)
    assert gave_up.error.startswith("server error: ") and "SlowDown" in gave_up.error
    assert gave_up.error.endswith("gave up after 4 attempts") and proxy.gets(slow) == 4
    assert refused.error.startswith("access denied: ") and proxy.gets(denied) == 1
    assert short.error.startswith("truncated body: ") and proxy.gets(cut) == 4
    assert fine.ok and fine.data == pngs[fine.uri]


def test_listing_retries_transient_faults(s3_bucket, pngs, proxy):
    so = {**s3_bucket, "endpoint_url": proxy.url}
    proxy.faults[f"/{s3_bucket.name}"] = ["503", "500"]  # ListObjectsV2 hits the bucket path
    got = expand(f"{s3_bucket.url}/pool/a/*.png", storage_options=so, retries=FAST)
    assert len(got) == 6
    assert proxy.gets(f"/{s3_bucket.name}") >= 3


@pytest.mark.parametrize("pool", [None, 4])
def test_requests_in_flight_are_not_capped_by_a_small_connection_pool(s3_bucket, proxy, pool):
    # botocore keeps 10 connections unless told otherwise; the filesystem is given 256
    # (S3_MAX_POOL_CONNECTIONS), and a user's own config_kwargs value still wins.
    n = 16
    s3fs.S3FileSystem(**s3_bucket).pipe(
        {f"{s3_bucket.name}/many/k{i:02d}": b"%d" % i for i in range(n)}
    )
    uris = [f"{s3_bucket.url}/many/k{i:02d}" for i in range(n)]
    for uri in uris:
        proxy.faults[uri.removeprefix("s3:/")] = ["slow"]
    options = {**s3_bucket, "endpoint_url": proxy.url}
    if pool is not None:
        options["config_kwargs"] = {"max_pool_connections": pool}
    with Fetcher(options, max_in_flight=64) as fetcher:
        results = list(fetcher.fetch_many(uris, ordered=False))
    assert sorted(r.data for r in results) == sorted(b"%d" % i for i in range(n))
    if pool is None:
        assert proxy.peak_in_flight > 10  # ideally all 16 at once
    else:
        assert proxy.peak_in_flight <= pool
