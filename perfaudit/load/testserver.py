"""A tiny raw-asyncio HTTP/1.1 server with misbehaviour on demand.

Used by the load tests and for checking the generator itself (it is much cheaper per
request than an ASGI stack, so the generator's own limits show). Routes:

    /, /ok            200, small JSON body with Content-Length
    /chunked          200, chunked transfer encoding (3 chunks)
    /close            200 with ``Connection: close``, then closes
    /eof              200 without Content-Length; the body ends when the socket closes
    /status/<code>    that status code
    /sleep/<ms>       answers after <ms> milliseconds
    /stall            answers at once, except during stall windows (``--stall-for`` s
                      out of every ``--stall-period`` s, from server start), when
                      answers wait until the window ends: the server "stops answering"
    /hang             never answers
    /drop             sends part of a response, then closes
    /reset            resets the connection (RST)

Run: ``python -m perfaudit.load.testserver --port 0`` prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import httptools

from perfaudit.load.loop import new_event_loop

BODY = b'{"status":"ok","service":"demo"}'


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        len(body),
        extra,
        body,
    )


OK = _response(200, BODY)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
)
CLOSE = _response(200, BODY, b"Connection: close\r\n")
EOF = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nbody until eof"
DROP = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"


class _ServerProto(asyncio.Protocol):
    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        self.server.handle(self, url.split(b"?", 1)[0])

    def write(self, data: bytes, close: bool = False) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        if close:
            t.close()


class TestServer:
    def __init__(self, stall_period_s: float = 2.0, stall_for_s: float = 1.0) -> None:
        self.stall_period_s = stall_period_s
        self.stall_for_s = stall_for_s
        self.t0 = time.monotonic()
        self.loop = asyncio.get_event_loop()

    def handle(self, proto: _ServerProto, path: bytes) -> None:
        if path in (b"/", b"/ok"):
            proto.write(OK)
        elif path == b"/stall":
            phase = (time.monotonic() - self.t0) % self.stall_period_s
            if phase < self.stall_for_s:
                self.loop.call_later(self.stall_for_s - phase, proto.write, OK)
            else:
                proto.write(OK)
        elif path == b"/chunked":
            proto.write(CHUNKED)
        elif path == b"/close":
            proto.write(CLOSE, close=True)
        elif path == b"/eof":
            proto.write(EOF, close=True)
        elif path.startswith(b"/status/"):
            code = int(path.rsplit(b"/", 1)[1])
            proto.write(_response(code, b'{"error":true}'))
        elif path.startswith(b"/sleep/"):
            ms = float(path.rsplit(b"/", 1)[1])
            self.loop.call_later(ms / 1000.0, proto.write, OK)
        elif path == b"/hang":
            pass
        elif path == b"/drop":
            proto.write(DROP, close=True)
        elif path == b"/reset":
            t = proto.transport
            if t is not None:
                sock = t.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0 => close() sends RST
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                t.abort()
        else:
            proto.write(_response(404, b'{"error":"not found"}'))


async def _serve(host: str, port: int, stall_period_s: float, stall_for_s: float) -> None:
    app = TestServer(stall_period_s, stall_for_s)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _ServerProto(app), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stall-period", type=float, default=2.0)
    ap.add_argument("--stall-for", type=float, default=1.0)
    ap.add_argument("--asyncio", action="store_true", help="plain asyncio loop instead of uvloop")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = ap.parse_args(argv)
    if a.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    loop = new_event_loop(not a.asyncio)
    asyncio.set_event_loop(loop)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(_serve(a.host, a.port, a.stall_period, a.stall_for))


def start_test_server(*args: str, timeout_s: float = 15.0) -> tuple[subprocess.Popen[str], int]:
    """Start the server in a subprocess; returns (process, port). Caller terminates it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfaudit.load.testserver", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("PORT "):
            proc.stdout.close()  # the server prints nothing else
            return proc, int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("test server did not start")


if __name__ == "__main__":
    main()
