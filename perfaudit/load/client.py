"""A minimal HTTP/1.1 keep-alive client for load generation (plain http only, no TLS).

Why hand-written: on loopback a raw ``asyncio.Protocol`` + ``httptools`` client needs
~40 % of a core for ~18k req/s, where aiohttp saturates a core at ~10k and httpx at <1k
(shared/research/feasibility.md, section B). So this module avoids streams, futures and
tasks on the request path: a request is ``transport.write(pre_encoded_bytes)`` and the
response ends in ``on_message_complete``, which calls the pool's ``on_done`` callback.

One :class:`Connection` carries one request at a time (no pipelining) and reconnects by
itself (``Connection: close``, server EOF, errors). The engine owns scheduling; the pool
only owns sockets, timeouts and error classification.

Error kinds passed to ``on_done`` (``status`` is assigned by the engine for codes >= 400):

* ``connect``  - connect refused / failed / connect timeout
* ``timeout``  - no complete response within ``timeout_s`` of the send
* ``closed``   - the server closed or reset the connection before the response ended
* ``protocol`` - the response could not be parsed as HTTP/1.x

Limits (documented rather than handled): no TLS, no pipelining, no HEAD requests (the
parser cannot know a HEAD response has no body), and a keep-alive connection that the
server closes while our next request is in flight is reported as ``closed`` (no retry).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter

from httptools import HttpParserError, HttpResponseParser

ERR_STATUS = "status"
ERR_TIMEOUT = "timeout"
ERR_CONNECT = "connect"
ERR_CLOSED = "closed"
ERR_PROTOCOL = "protocol"
ERROR_KINDS: tuple[str, ...] = (ERR_STATUS, ERR_TIMEOUT, ERR_CONNECT, ERR_CLOSED, ERR_PROTOCOL)

# on_done(connection, status, error_kind_or_None, t_done); status is 0 when there is no response.
DoneCallback = Callable[["Connection", int, "str | None", float], None]


# -- request encoding ------------------------------------------------------------------


def _head(
    method: str, path: str, host: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None
) -> bytes:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {k.lower() for k, _ in items}
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in items)]
    if "host" not in names:
        lines.insert(1, f"Host: {host}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def build_request(
    method: str,
    path: str,
    host: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> bytes:
    """Encode one complete HTTP/1.1 request (Host added if absent, Content-Length if a body)."""
    head = _head(method, path, host, headers)
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


class RequestTemplate:
    """Pre-encodes method/headers once; :meth:`render` adds a per-request path and/or body.

    Scenarios that need a unique id per request render a new body (or path) each time;
    everything else stays the same bytes.
    """

    __slots__ = ("method", "path", "host", "_headers", "_fixed_head", "_fixed")

    def __init__(
        self,
        method: str,
        path: str,
        host: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.host = host
        self._headers = (
            list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        )
        self._fixed_head = _head(self.method, path, host, self._headers)
        self._fixed = build_request(self.method, path, host, self._headers, body)

    @property
    def fixed(self) -> bytes:
        """The request with the default path and body."""
        return self._fixed

    def render(self, body: bytes | None = None, path: str | None = None) -> bytes:
        head = (
            self._fixed_head if path is None else _head(self.method, path, self.host, self._headers)
        )
        if body is None:
            return (
                self._fixed
                if path is None
                else build_request(self.method, path, self.host, self._headers)
            )
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# -- connections -----------------------------------------------------------------------


class _Proto(asyncio.Protocol):
    """One TCP connection. A fresh instance per connect, so callbacks from an old,
    already-abandoned socket (``conn`` set to None) can never touch the new one."""

    __slots__ = ("conn", "transport", "parser", "first", "lost")

    def __init__(self, conn: Connection) -> None:
        self.conn: Connection | None = conn
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.first: bytes | None = None  # first chunk of the current response (see _eof_complete)
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        conn.nbytes += len(data)
        if self.first is None:
            self.first = data
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            conn.fail(ERR_PROTOCOL)

    # httptools callback (only the callbacks that exist on the object are wired, keep few)
    def on_message_complete(self) -> None:
        conn = self.conn
        if conn is None:
            return
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim response (100 Continue, 103 Early Hints): keep waiting
        self.first = None
        conn._complete(self, status, parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        conn = self.conn
        if conn is not None:
            conn._lost(self, exc)


def _eof_complete(proto: _Proto) -> int:
    """Status of a response whose body is delimited by EOF (no Content-Length, not
    chunked), or 0 if the close truncated a framed response. httptools has no
    ``finish()``, so the framing headers are looked up in the first received chunk."""
    first = proto.first
    if not first:
        return 0
    end = first.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = first[:end].lower()
    if b"\ncontent-length:" in head or b"\ntransfer-encoding:" in head:
        return 0
    try:
        return int(proto.parser.get_status_code())
    except Exception:  # parser without a status line
        return 0


class Connection:
    """A reusable request slot on one host:port: one in-flight request, reconnects lazily."""

    __slots__ = (
        "pool",
        "proto",
        "inflight",
        "t_send",
        "t_connect",
        "nbytes",
        "pending",
        "tag",
        "_task",
    )

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.proto: _Proto | None = None
        self.inflight = False
        self.t_send = 0.0
        self.t_connect = 0.0
        self.nbytes = 0  # response bytes received for the current request
        self.pending: bytes | None = None  # request waiting for the connect to finish
        self.tag: float = 0.0  # free for the engine (the open model stores the intended time)
        self._task: asyncio.Future[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]] | None = None

    @property
    def connected(self) -> bool:
        return self.proto is not None

    def send(self, data: bytes) -> None:
        """Start one request; the response (or error) arrives via ``pool.on_done``."""
        self.t_send = perf_counter()
        self.inflight = True
        self.nbytes = 0
        proto = self.proto
        if proto is not None:
            proto.transport.write(data)  # type: ignore[union-attr]
        else:
            self.pending = data
            if self._task is None:
                self._connect()

    def connect(self) -> asyncio.Future[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]] | None:
        """Open the socket ahead of the first request (used to pre-warm the pool)."""
        if self.proto is None and self._task is None:
            self._connect()
        return self._task

    def _connect(self) -> None:
        pool = self.pool
        self.t_connect = perf_counter()
        pool.connects += 1
        loop = pool.loop
        task = loop.create_task(loop.create_connection(lambda: _Proto(self), pool.addr, pool.port))
        self._task = task
        task.add_done_callback(self._connected)

    def _connected(
        self, task: asyncio.Future[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]
    ) -> None:
        if task.cancelled():
            return
        if task is not self._task:  # abandoned (connect timeout / close) but it connected
            if task.exception() is None:
                transport, proto = task.result()
                proto.conn = None  # type: ignore[attr-defined]
                transport.close()
            return
        self._task = None
        exc = task.exception()
        if exc is not None:
            self.pool.connect_errors += 1
            if self.inflight:
                self._finish_error(ERR_CONNECT)
            return
        transport, proto = task.result()
        assert isinstance(proto, _Proto)
        if self.pool.closed:
            proto.conn = None
            transport.close()
            return
        if proto.lost:  # closed by the server before we saw the connect complete
            proto.conn = None
            if self.inflight:
                self._finish_error(ERR_CLOSED)
            return
        self.proto = proto
        data = self.pending
        if data is not None:
            self.pending = None
            transport.write(data)  # type: ignore[attr-defined]

    def _drop(self) -> None:
        """Detach and close the current socket; later callbacks from it are ignored."""
        proto = self.proto
        self.proto = None
        if proto is not None:
            proto.conn = None
            if proto.transport is not None:
                proto.transport.close()

    def _complete(self, proto: _Proto, status: int, keep_alive: bool) -> None:
        if not self.inflight:
            return  # unsolicited response (e.g. a 408 on an idle connection)
        self.inflight = False
        if not keep_alive:
            self._drop()  # Connection: close / HTTP/1.0: reconnect on the next send
        self.pool.on_done(self, status, None, perf_counter())

    def _lost(self, proto: _Proto, exc: Exception | None) -> None:
        if proto is not self.proto:
            return
        self.proto = None
        proto.conn = None
        if self.inflight:
            status = _eof_complete(proto) if exc is None else 0
            if status:
                self.inflight = False
                self.pool.on_done(self, status, None, perf_counter())
            else:
                self._finish_error(ERR_CLOSED)

    def _finish_error(self, kind: str) -> None:
        self.inflight = False
        self.pending = None
        self.pool.on_done(self, 0, kind, perf_counter())

    def fail(self, kind: str) -> None:
        """Abort the current request with ``kind`` (timeouts, parse errors, shutdown)."""
        task = self._task
        if task is not None:
            self._task = None
            task.cancel()
        proto = self.proto
        self.proto = None
        if proto is not None:
            proto.conn = None
            if proto.transport is not None:
                proto.transport.abort()
        if self.inflight:
            self._finish_error(kind)

    def close(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            task.cancel()
        self._drop()


class ConnectionPool:
    """Connections to one ``host:port`` plus a timeout sweeper.

    Timeouts use one periodic sweep instead of a timer per request (a timer handle per
    request would cost about as much as the request's own parsing), so they fire up to
    ``sweep_s`` late.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_done: DoneCallback,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.addr = _resolve(host, port)  # resolve once: no DNS on reconnects
        self.on_done = on_done
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.conns: list[Connection] = []
        self.connects = 0
        self.connect_errors = 0
        self.closed = False
        self._sweep_s = max(0.01, min(0.1, timeout_s / 10, connect_timeout_s / 10))
        self._sweeper: asyncio.TimerHandle | None = None

    def new_connection(self) -> Connection:
        conn = Connection(self)
        self.conns.append(conn)
        if self._sweeper is None and not self.closed:
            self._sweeper = self.loop.call_later(self._sweep_s, self._sweep)
        return conn

    async def connect_all(self, conns: Iterable[Connection], timeout_s: float | None = None) -> int:
        """Pre-open sockets; returns how many connected (failures are not errors here)."""
        tasks = [t for c in conns if (t := c.connect()) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s or self.connect_timeout_s)
        await asyncio.sleep(0)  # let the done callbacks attach the protocols
        return sum(1 for c in self.conns if c.proto is not None)

    def _sweep(self) -> None:
        self._sweeper = None
        if self.closed:
            return
        now = perf_counter()
        timeout = self.timeout_s
        connect_timeout = self.connect_timeout_s
        for conn in self.conns:
            if not conn.inflight:
                continue
            if conn.proto is None:
                if conn._task is not None and now - conn.t_connect > connect_timeout:
                    self.connect_errors += 1
                    conn.fail(ERR_CONNECT)
            elif now - conn.t_send > timeout:
                conn.fail(ERR_TIMEOUT)
        self._sweeper = self.loop.call_later(self._sweep_s, self._sweep)

    @property
    def inflight(self) -> int:
        return sum(1 for c in self.conns if c.inflight)

    def abort_inflight(self, kind: str = ERR_TIMEOUT) -> None:
        for conn in self.conns:
            if conn.inflight:
                conn.fail(kind)

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self.conns:
            conn.close()


def _resolve(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return host  # let connect() report it, classified as a connect error
    return str(infos[0][4][0]) if infos else host
