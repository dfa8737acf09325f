"""A TCP proxy on 127.0.0.1 that delays the first byte of every response: a remote store's latency.

A local S3 server (moto) answers a small GET in about a millisecond; a real object
store takes tens of milliseconds before the first byte. Put this proxy in front of
the local server and point the client at it::

    proxy = LatencyProxy(("127.0.0.1", moto_port), delay_ms=20, jitter=0.25).start()
    s3fs.S3FileSystem(endpoint_url=proxy.url, ...)
    ...
    proxy.stop()

or run it alone (it prints its URL)::

    python benchmarks/_latency_proxy.py --target 127.0.0.1:5000 --delay-ms 20

It speaks no HTTP: on each connection, the first chunk the server sends after the
client has sent something (a request; HTTP/1.1 clients do not pipeline) waits
``delay_ms × uniform(1 - jitter, 1 + jitter)`` milliseconds before it is forwarded,
on top of the server's own time. The rest of a response, and the upload direction,
pass at once. Keep-alive connections get the delay on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading

__all__ = ["LatencyProxy"]

CHUNK = 1 << 16


class LatencyProxy:
    """Forwards 127.0.0.1:<port> to ``target``, delaying each response's first byte.

    Parameters
    ----------
    target : (host, port)
        The server behind the proxy.
    delay_ms : float, default 20.0
        Mean added first-byte delay; 0 forwards at once.
    jitter : float, default 0.25
        Relative spread: each delay is ``delay_ms × uniform(1 - jitter, 1 + jitter)``.
    seed : int, default 0
        Seed of the jitter.
    """

    def __init__(self, target: tuple[str, int], *, delay_ms: float = 20.0, jitter: float = 0.25,
                 seed: int = 0) -> None:
        if delay_ms < 0 or not 0 <= jitter <= 1:
            raise ValueError(f"delay_ms must be >= 0 and jitter in [0, 1]; got {delay_ms!r}, "
                             f"{jitter!r}")
        self.target = (str(target[0]), int(target[1]))
        self.delay_ms = float(delay_ms)
        self.jitter = float(jitter)
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.responses = 0  # responses delayed so far

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def delay_s(self) -> float:
        """One draw of the first-byte delay, in seconds."""
        if self.delay_ms == 0:
            return 0.0
        return self.delay_ms / 1000 * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    # ------------------------------------------------------------ lifetime
    def start(self) -> LatencyProxy:
        """Listen on a free port of 127.0.0.1 in a background thread; returns self."""
        ready = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failed.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="latency-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failed:
            raise failed[0]
        return self

    def stop(self) -> None:
        """Close the listener and every connection."""
        loop = self._loop
        if loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ forwarding
    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
                      ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        waiting = asyncio.Event()  # a request went up; its response's first byte waits

        async def upstream() -> None:
            while data := await client_r.read(CHUNK):
                waiting.set()
                server_w.write(data)
                await server_w.drain()
            server_w.write_eof() if server_w.can_write_eof() else server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(CHUNK):
                if waiting.is_set():
                    waiting.clear()
                    self.responses += 1
                    delay = self.delay_s()
                    if delay:
                        await asyncio.sleep(delay)
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=1)  # let the other direction flush
        except asyncio.CancelledError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            for w in (client_w, server_w):
                w.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="HOST:PORT of the server behind the proxy")
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--jitter", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    proxy = LatencyProxy((host or "127.0.0.1", int(port)), delay_ms=args.delay_ms,
                         jitter=args.jitter, seed=args.seed).start()
    print(proxy.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
