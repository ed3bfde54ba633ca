"""Run the three stand-ins plus the control API as four uvicorn servers on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette

from perfaudit.upstreams import control, cursor_runner, elevenlabs, telegram
from perfaudit.upstreams import routes as r
from perfaudit.upstreams.config import StandinConfig
from perfaudit.upstreams.protocol import counting_protocol
from perfaudit.upstreams.runtime import Credentials, Runtime

logger = logging.getLogger("uvicorn.error")

# In-flight hangs (timeout simulation) must not hold up shutdown for 65 s.
GRACEFUL_SHUTDOWN_S = 2.0


@dataclass
class ServeOptions:
    telegram_port: int
    cursor_port: int
    elevenlabs_port: int
    control_port: int
    host: str = "127.0.0.1"
    credentials: Credentials = field(default_factory=Credentials)
    config_patch: dict[str, Any] | None = None  # applied on top of the defaults
    log_level: str = "warning"
    # Longer than typical client pool expiry, so the server never races a client
    # reusing an idle connection (that would show up as spurious upstream errors).
    keep_alive_s: float = 65.0


class _Server(uvicorn.Server):
    """uvicorn Server without its own signal capture: four servers share one handler."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _server(app: Starlette, port: int, http: Any, opts: ServeOptions) -> _Server:
    config = uvicorn.Config(
        app,
        host=opts.host,
        port=port,
        http=http,
        lifespan="off",
        access_log=False,
        log_level=opts.log_level,
        timeout_keep_alive=int(opts.keep_alive_s),
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        server_header=False,
    )
    return _Server(config)


def build_runtime(opts: ServeOptions) -> Runtime:
    cfg = StandinConfig.default()
    rt = Runtime(cfg, opts.credentials)
    if opts.config_patch:
        rt.apply_config(opts.config_patch)
    return rt


async def serve(opts: ServeOptions, rt: Runtime | None = None) -> None:
    rt = rt or build_runtime(opts)
    conns = rt.recorder.connections
    servers = [
        _server(
            telegram.build_app(rt),
            opts.telegram_port,
            counting_protocol(r.TELEGRAM, conns[r.TELEGRAM]),
            opts,
        ),
        _server(
            cursor_runner.build_app(rt),
            opts.cursor_port,
            counting_protocol(r.CURSOR_RUNNER, conns[r.CURSOR_RUNNER]),
            opts,
        ),
        _server(
            elevenlabs.build_app(rt),
            opts.elevenlabs_port,
            counting_protocol(r.ELEVENLABS, conns[r.ELEVENLABS]),
            opts,
        ),
        _server(control.build_app(rt), opts.control_port, "httptools", opts),
    ]
    rt.ready = lambda: all(s.started for s in servers)

    def on_signal(sig: signal.Signals) -> None:
        logger.info("perfaudit.upstreams: received %s, shutting down", sig.name)
        for s in servers:
            if s.should_exit and sig == signal.SIGINT:
                s.force_exit = True  # second Ctrl+C: stop waiting for connections
            s.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await rt.callbacks.aclose()


def run(opts: ServeOptions, rt: Runtime | None = None) -> None:
    """Blocking entry point: serve on uvloop until SIGTERM/SIGINT."""
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a hard dep on Linux
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(opts, rt))
