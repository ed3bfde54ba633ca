"""Run the reference service: ``python -m perfaudit.refservice --port 3000``.

Settings come from the environment (spec §5); the optimization switches from
``PERFAUDIT_SWITCHES``. For profiling, ``PERFAUDIT_LOOP=asyncio`` replaces uvloop (pyinstrument
loses await attribution under uvloop) and ``PERFAUDIT_PYINSTRUMENT=1`` mounts the pyinstrument
hook (:mod:`perfaudit.profile.asgi`); both are unset in normal runs.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from perfaudit.profile.asgi import LOOP_ENV_VAR, wrap
from perfaudit.refservice import logsetup
from perfaudit.refservice.app import create_app
from perfaudit.refservice.config import Settings

LOOPS = ("uvloop", "asyncio")


def event_loop() -> str:
    loop = os.environ.get(LOOP_ENV_VAR, "").strip() or "uvloop"
    if loop not in LOOPS:
        raise SystemExit(f"{LOOP_ENV_VAR}={loop!r}: must be one of {', '.join(LOOPS)}")
    return loop


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perfaudit.refservice")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings.from_env()
    logsetup.configure(settings.log_level)
    uvicorn.run(
        wrap(create_app(settings)),
        host=args.host,
        port=args.port,
        loop=event_loop(),
        http="httptools",
        access_log=False,  # the app logs each request itself (spec §1 middleware)
        log_config=None,
        timeout_graceful_shutdown=10,  # spec: forced exit after 10 s
    )


if __name__ == "__main__":
    main()
