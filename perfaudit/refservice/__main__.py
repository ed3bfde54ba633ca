"""Run the reference service: ``python -m perfaudit.refservice --port 3000``.

Settings come from the environment (spec §5); the optimization switches from
``PERFAUDIT_SWITCHES``.
"""

from __future__ import annotations

import argparse

import uvicorn

from perfaudit.refservice import logsetup
from perfaudit.refservice.app import create_app
from perfaudit.refservice.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perfaudit.refservice")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings.from_env()
    logsetup.configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the app logs each request itself (spec §1 middleware)
        log_config=None,
        timeout_graceful_shutdown=10,  # spec: forced exit after 10 s
    )


if __name__ == "__main__":
    main()
