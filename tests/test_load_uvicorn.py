"""Smoke test against a real ASGI stack (uvicorn + Starlette), incl. a chunked stream."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from perfaudit.load import ClosedModel, ConstantArrivalRate, LoadConfig, build_request, run_load

HOST = "127.0.0.1"

APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

async def health(request):
    return JSONResponse({"status": "ok", "service": "demo"})

async def stream(request):
    async def gen():
        for i in range(3):
            yield b"part%d," % i
    return StreamingResponse(gen(), media_type="text/plain")

async def boom(request):
    return JSONResponse({"error": "boom"}, status_code=500)

app = Starlette(routes=[Route("/health", health), Route("/stream", stream), Route("/boom", boom)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def uvicorn_port() -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cfg(port: int, path: str, model: object) -> LoadConfig:
    return LoadConfig(
        host=HOST, port=port, model=model, request=build_request("GET", path, f"{HOST}:{port}")
    )  # type: ignore[arg-type]


def test_uvicorn_json_chunked_and_500(uvicorn_port: int) -> None:
    r = run_load(_cfg(uvicorn_port, "/health", ConstantArrivalRate(rate=200, duration_s=1)))
    assert r.ok == r.sent == pytest.approx(200, abs=2) and r.error_count == 0
    s = run_load(_cfg(uvicorn_port, "/stream", ConstantArrivalRate(rate=100, duration_s=1)))
    assert s.ok == s.sent == pytest.approx(100, abs=2) and s.error_count == 0
    b = run_load(_cfg(uvicorn_port, "/boom", ClosedModel(users=4, duration_s=0.5)))
    assert b.sent > 0 and b.error_status == {500: b.sent}
