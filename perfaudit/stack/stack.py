"""The whole stack in one place: Redis, the stand-ins, the service and its worker.

Started in dependency order and stopped in reverse, always: ``with Stack(options) as info:``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perfaudit.refservice import switches as sw
from perfaudit.refservice.jobqueue import WORKER_READY_LINE
from perfaudit.stack.net import LOOPBACK, free_port, http_ok
from perfaudit.stack.process import ManagedProcess
from perfaudit.stack.redis_server import ping, redis_process

# Stand-in settings for tests and smoke flows: fast upstreams, quick callbacks.
FAST_STANDINS: dict[str, object] = {
    "routes": {"*": {"latency_ms": 2, "jitter_ms": 0}},
    "callback_delay_ms": 50,
    "callback_jitter_ms": 0,
}


@dataclass(frozen=True)
class StackOptions:
    run_dir: Path
    switches: frozenset[str] = frozenset()
    redis_url: str | None = None  # an existing server: nothing is started for Redis
    standin_config: dict[str, object] | None = None
    service_env: dict[str, str] = field(default_factory=dict)
    # Interpreter arguments before ``-m module`` per process ("service", "worker"): how a
    # profiler such as ``memray run`` wraps them (``-m memray run -o FILE``).
    python_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # A command put before the interpreter per process: ``valgrind --tool=callgrind ...``.
    command_prefix: Mapping[str, Sequence[str]] = field(default_factory=dict)
    start_worker: bool = True
    secrets_seed: str | None = None  # fixed secrets (Secrets.derived) instead of random ones
    startup_timeout: float = 30.0


@dataclass(frozen=True)
class Secrets:
    webhook_secret: str
    telegram_webhook_secret: str
    telegram_bot_token: str
    elevenlabs_api_key: str

    @classmethod
    def derived(cls, seed: str) -> Secrets:
        """Secrets of the usual form, the same for the same seed (the instructions measure:
        a secret is compared and redacted on every request, and other bytes cost other
        instructions)."""
        import base64
        import hashlib

        def part(label: str, n: int) -> bytes:
            return hashlib.sha256(f"{seed}/{label}".encode()).digest()[:n]

        def urlsafe(label: str, n: int) -> str:
            return base64.urlsafe_b64encode(part(label, n)).rstrip(b"=").decode()

        number = int.from_bytes(part("bot-id", 4), "big") % 10**9
        return cls(
            webhook_secret=urlsafe("webhook", 18),
            telegram_webhook_secret=urlsafe("telegram-webhook", 18),
            telegram_bot_token=f"{number:09d}:{urlsafe('bot', 26)}",
            elevenlabs_api_key=part("elevenlabs", 16).hex(),
        )

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            webhook_secret=secrets.token_urlsafe(18),
            telegram_webhook_secret=secrets.token_urlsafe(18),
            telegram_bot_token=f"{secrets.randbelow(10**9):09d}:{secrets.token_urlsafe(26)}",
            elevenlabs_api_key=secrets.token_hex(16),
        )


@dataclass(frozen=True)
class StackInfo:
    service_url: str
    redis_url: str
    telegram_url: str
    cursor_runner_url: str
    elevenlabs_url: str
    standin_control_url: str
    secrets: Secrets
    switches: tuple[str, ...]
    run_dir: str
    logs: dict[str, str]
    pids: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.processes: list[ManagedProcess] = []
        self.info: StackInfo | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def dead(self) -> list[ManagedProcess]:
        """Children that exited on their own."""
        return [p for p in self.processes if not p.alive()]

    # -- internals ---------------------------------------------------------------------
    def _launch(self, proc: ManagedProcess) -> None:
        self.processes.append(proc)
        proc.start()
        proc.wait_ready(self.options.startup_timeout)

    def _start(self) -> StackInfo:
        opts = self.options
        run_dir = opts.run_dir.resolve()
        log_dir = run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        keys = Secrets.derived(opts.secrets_seed) if opts.secrets_seed else Secrets.generate()
        logs: dict[str, str] = {}

        if opts.redis_url:
            redis_url = opts.redis_url
            if not ping(redis_url):
                raise ConnectionError(f"--redis-url {redis_url}: no Redis answers PING there")
        else:
            redis, redis_url = redis_process(log_dir)
            self._launch(redis)
            logs["redis"] = str(redis.log_path)

        service_port = free_port()
        service_url = f"http://{LOOPBACK}:{service_port}"
        ports = {name: free_port() for name in ("telegram", "cursor", "elevenlabs", "control")}
        standin_urls = {name: f"http://{LOOPBACK}:{port}" for name, port in ports.items()}
        config_path = run_dir / "standins.json"
        config_path.write_text(json.dumps(opts.standin_config or {}, indent=2))
        standins = ManagedProcess(
            "stand-ins",
            [
                sys.executable,
                "-m",
                "perfaudit.upstreams",
                "--host",
                LOOPBACK,
                "--telegram-port",
                str(ports["telegram"]),
                "--cursor-port",
                str(ports["cursor"]),
                "--elevenlabs-port",
                str(ports["elevenlabs"]),
                "--control-port",
                str(ports["control"]),
                "--callback-url",
                f"{service_url}/cursor-runner/callback",
                # One argument: a secret may start with "-" (token_urlsafe), which argparse
                # would take for an option.
                f"--callback-secret={keys.webhook_secret}",
                "--telegram-token",
                keys.telegram_bot_token,
                "--elevenlabs-key",
                keys.elevenlabs_api_key,
                "--config",
                str(config_path),
            ],  # fmt: skip
            log_dir / "standins.log",
            ready=lambda: http_ok(f"{standin_urls['control']}/_standin/health"),
        )
        self._launch(standins)
        logs["stand-ins"] = str(standins.log_path)

        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": keys.webhook_secret,
            "TELEGRAM_WEBHOOK_SECRET": keys.telegram_webhook_secret,
            "TELEGRAM_BOT_TOKEN": keys.telegram_bot_token,
            "TELEGRAM_API_URL": standin_urls["telegram"],
            "TELEGRAM_WEBHOOK_BASE_URL": service_url,
            "CURSOR_RUNNER_URL": standin_urls["cursor"],
            "ELEVENLABS_API_URL": standin_urls["elevenlabs"],
            "ELEVENLABS_API_KEY": keys.elevenlabs_api_key,
            "SHARED_DB_PATH": str(run_dir / "shared.sqlite3"),
            "PERFAUDIT_TMP_DIR": str(run_dir / "tmp"),
            sw.ENV_VAR: sw.encode(opts.switches),
            **opts.service_env,
        }
        (run_dir / "tmp").mkdir(exist_ok=True)
        service = ManagedProcess(
            "service",
            [
                *opts.command_prefix.get("service", ()),
                sys.executable,
                *opts.python_args.get("service", ()),
                "-m",
                "perfaudit.refservice",
                "--host",
                LOOPBACK,
                "--port",
                str(service_port),
            ],  # fmt: skip
            log_dir / "service.log",
            env=env,
            ready=lambda: http_ok(f"{service_url}/health"),
        )
        self._launch(service)
        logs["service"] = str(service.log_path)

        if opts.start_worker:
            worker = ManagedProcess(
                "worker",
                [
                    *opts.command_prefix.get("worker", ()),
                    sys.executable,
                    *opts.python_args.get("worker", ()),
                    "-m",
                    "perfaudit.refservice.worker",
                ],  # fmt: skip
                log_dir / "worker.log",
                env=env,
                ready=lambda: _worker_ready(log_dir / "worker.log"),
            )
            self._launch(worker)
            logs["worker"] = str(worker.log_path)

        self.info = StackInfo(
            service_url=service_url,
            redis_url=redis_url,
            telegram_url=standin_urls["telegram"],
            cursor_runner_url=standin_urls["cursor"],
            elevenlabs_url=standin_urls["elevenlabs"],
            standin_control_url=standin_urls["control"],
            secrets=keys,
            switches=tuple(sorted(opts.switches)),
            run_dir=str(run_dir),
            logs=logs,
            pids={p.name: p.pid for p in self.processes if p.pid},
        )
        (run_dir / "stack.json").write_text(json.dumps(self.info.to_dict(), indent=2))
        return self.info


def _worker_ready(log: Path) -> bool:
    try:
        return WORKER_READY_LINE in log.read_text(errors="replace")
    except OSError:
        return False
