"""Sequential requests on one keep-alive connection: the load of a cost measure.

A deterministic measure needs the same work in the same order every time, so requests go
one at a time (concurrency 1), rendered from the scenario's compiled template (fixed-width
ids, so every body has the same size), and each response is read to its end before the
next request is sent. The parser is httptools, as in the load engine.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from httptools import HttpParserError, HttpResponseParser

Factory = Callable[[], bytes]


class DriverError(RuntimeError):
    """The target closed the connection, timed out or answered garbage."""


@dataclass
class Sent:
    requests: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, other: Sent) -> None:
        self.requests += other.requests
        self.ok += other.ok
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v


class _ClosedIdle(Exception):
    """The server closed the connection before answering a byte."""


class _Response:
    def __init__(self) -> None:
        self.done = False
        self.keep_alive = True

    def on_message_complete(self) -> None:
        self.done = True


class SequentialDriver:
    def __init__(
        self,
        host: str,
        port: int,
        next_request: Factory,
        is_success: Callable[[int], bool],
        timeout_s: float = 120.0,  # under valgrind a request takes ~50x longer
    ) -> None:
        self.host, self.port = host, port
        self.next_request = next_request
        self.is_success = is_success
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SequentialDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def one(self) -> int:
        """Send one request and read its whole response; returns the status. A reused
        connection the server closed while idle (keep-alive timeout) is replaced once."""
        data = self.next_request()
        reused = self._sock is not None
        try:
            return self._exchange(data)
        except _ClosedIdle:
            if not reused:
                raise DriverError(f"{self.host}:{self.port} closed the connection") from None
            return self._exchange(data)

    def _exchange(self, data: bytes) -> int:
        sock = self._connect()
        got = False
        try:
            sock.sendall(data)
            resp = _Response()
            parser = HttpResponseParser(resp)
            while not resp.done:
                chunk = sock.recv(65536)
                if not chunk:
                    if not got:
                        raise _ClosedIdle
                    raise DriverError(f"{self.host}:{self.port} closed the connection")
                got = True
                parser.feed_data(chunk)
            status = parser.get_status_code()
            if not parser.should_keep_alive():
                self.close()
            return int(status)
        except _ClosedIdle:
            self.close()
            raise
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if not got:
                raise _ClosedIdle from exc
            raise DriverError(f"{self.host}:{self.port}: {exc}") from None
        except (OSError, HttpParserError) as exc:
            self.close()
            raise DriverError(f"{self.host}:{self.port}: {exc}") from None

    def send(self, n: int) -> Sent:
        out = Sent()
        for _ in range(n):
            status = self.one()
            out.requests += 1
            out.ok += self.is_success(status)
            out.statuses[status] = out.statuses.get(status, 0) + 1
        return out
