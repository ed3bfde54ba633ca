"""uvicorn httptools protocol that counts TCP connections per upstream.

uvicorn builds one protocol instance per accepted connection, so ``connection_made``
is an exact count of new connections: exactly what keep-alive/pooling audits need.
One subclass per upstream (built by :func:`counting_protocol`) tells the servers apart.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from perfaudit.upstreams.recorder import ConnectionStats


def counting_protocol(name: str, stats: ConnectionStats) -> type[HttpToolsProtocol]:
    class CountingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            stats.new += 1
            stats.open += 1
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            stats.open -= 1
            super().connection_lost(exc)

    CountingHttpToolsProtocol.__qualname__ = f"CountingHttpToolsProtocol[{name}]"
    return CountingHttpToolsProtocol
