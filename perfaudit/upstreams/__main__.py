"""CLI: ``python -m perfaudit.upstreams --telegram-port P1 --cursor-port P2 ...``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perfaudit.upstreams.config import ConfigError
from perfaudit.upstreams.runtime import Credentials
from perfaudit.upstreams.server import ServeOptions, build_runtime, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m perfaudit.upstreams",
        description="Local stand-ins for the Telegram Bot API, cursor-runner and ElevenLabs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--telegram-port", type=int, required=True)
    p.add_argument("--cursor-port", type=int, required=True)
    p.add_argument("--elevenlabs-port", type=int, required=True)
    p.add_argument("--control-port", type=int, required=True)
    p.add_argument("--callback-url", help="default cursor-runner callback target")
    p.add_argument("--callback-secret", help="secret sent with callbacks (both headers)")
    p.add_argument("--telegram-token", help="only this bot token is accepted (default: any)")
    p.add_argument("--elevenlabs-key", help="required xi-api-key (default: not checked)")
    p.add_argument("--config", help="JSON file, same shape as POST /_standin/config")
    p.add_argument("--keep-alive-s", type=float, default=65.0, help="server keep-alive timeout")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    return p.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    patch: dict[str, Any] = {}
    if args.callback_url is not None:
        patch["callback_url"] = args.callback_url
    if args.callback_secret is not None:
        patch["callback_secret"] = args.callback_secret
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            file_patch = json.load(fh)
        if not isinstance(file_patch, dict):
            raise ConfigError(f"{args.config}: expected a JSON object")
        # Explicit CLI flags win over the file.
        patch = {**file_patch, **patch}
    return ServeOptions(
        telegram_port=args.telegram_port,
        cursor_port=args.cursor_port,
        elevenlabs_port=args.elevenlabs_port,
        control_port=args.control_port,
        host=args.host,
        credentials=Credentials(args.telegram_token or None, args.elevenlabs_key or None),
        config_patch=patch or None,
        log_level=args.log_level,
        keep_alive_s=args.keep_alive_s,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        opts = options_from_args(args)
        rt = build_runtime(opts)  # validates the config before any port is bound
    except (OSError, ValueError) as exc:  # ConfigError and JSONDecodeError are ValueErrors
        print(f"perfaudit.upstreams: bad configuration: {exc}", file=sys.stderr)
        return 2
    run(opts, rt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
