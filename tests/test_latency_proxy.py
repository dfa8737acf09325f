"""The benchmarks' latency proxy adds its first-byte delay to every response, and only that."""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import threading
import time
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_latency_proxy.py"
_spec = importlib.util.spec_from_file_location("_latency_proxy", _PATH)
latency_proxy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(latency_proxy)
LatencyProxy = latency_proxy.LatencyProxy

BODY = b"x" * 200_000  # several chunks: only the first may wait


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients use it

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address
    srv.shutdown()
    srv.server_close()


def timed_gets(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            conn.request("GET", "/item.png")
            resp = conn.getresponse()
            body = resp.read()
            out.append(time.perf_counter() - t)
            assert resp.status == 200 and body == BODY
    finally:
        conn.close()
    return out


def test_each_get_on_a_kept_alive_connection_waits_the_delay(origin):
    direct = min(timed_gets(origin[1], 3))
    with LatencyProxy(origin, delay_ms=60, jitter=0.0) as proxy:
        assert proxy.url.startswith("http://127.0.0.1:")
        through = timed_gets(proxy.port, 3)
        assert proxy.responses == 3
    for t in through:  # every request, not only the connection's first
        assert 0.055 <= t - direct < 0.06 + 0.1, (t, direct)


def test_zero_delay_passes_through_and_jitter_spreads_the_delay(origin):
    with LatencyProxy(origin, delay_ms=0) as proxy:
        assert max(timed_gets(proxy.port, 2)) < 0.05
    proxy = LatencyProxy(origin, delay_ms=20, jitter=0.5, seed=1)
    draws = [proxy.delay_s() for _ in range(200)]
    assert 0.010 <= min(draws) < 0.013 and 0.027 < max(draws) <= 0.030
    with pytest.raises(ValueError, match="jitter in"):
        LatencyProxy(origin, jitter=2)
