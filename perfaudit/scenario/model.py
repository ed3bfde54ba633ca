"""The validated, typed form of a scenario file (all frozen; built only by the validator).

Units are in the names: ``*_s`` seconds, ``*_ms`` milliseconds, ``*_rps`` requests per
second. Templated values (paths, header values, JSON bodies, the job's update) are kept as
written; :mod:`perfaudit.scenario.template` compiles them for the load generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from perfaudit.profile.spec import ProfileSpec
from perfaudit.refservice import switches as sw

Kind = Literal["http", "job", "redis-store", "flow"]
KINDS: tuple[str, ...] = ("http", "job", "redis-store", "flow")
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
REDIS_OPERATIONS: tuple[str, ...] = ("store", "get", "remove")


@dataclass(frozen=True)
class Canary:
    """External targets without the loop probe: a low-rate request to ``path`` on its own
    connection; its latency above the idle baseline is the event-loop lag it waited."""

    path: str
    rate_hz: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rate_hz": self.rate_hz}


@dataclass(frozen=True)
class Target:
    """What is driven: the bundled reference service (a variant plus switches) or a
    service the user runs, on a loopback URL."""

    service: Literal["reference", "external"] = "reference"
    variant: str = "optimized"  # reference only
    with_: tuple[str, ...] = ()  # reference only: switches added to the variant
    without: tuple[str, ...] = ()  # reference only: switches removed
    url: str | None = None  # external only: http://loopback-host:port
    start: str | None = None  # external only: shell command that starts the service
    cwd: Path | None = None  # external only: absolute; the command's working directory
    ready_path: str = "/"  # external only: GET this until it answers < 500
    ready_timeout_s: float = 30.0
    # external only: "started" (the started process), a pid, or a command-name substring
    profile_process: str | int | None = None
    env: tuple[tuple[str, str], ...] = ()  # external only: added to the started command's env
    redis_url: str | None = None  # external only: the service's Redis, read (INFO) not driven
    canary: Canary | None = None  # external only: loop lag when the probe is not mounted

    @property
    def is_reference(self) -> bool:
        return self.service == "reference"

    @property
    def switches(self) -> frozenset[str]:
        """The optimization switches on (reference only; empty for external)."""
        if not self.is_reference:
            return frozenset()
        return sw.resolve(self.variant, self.with_, self.without)

    @property
    def host(self) -> str | None:
        """External only: the URL's host (IPv6 without brackets)."""
        from urllib.parse import urlsplit

        return urlsplit(self.url).hostname if self.url else None

    @property
    def port(self) -> int | None:
        from urllib.parse import urlsplit

        return (urlsplit(self.url).port or 80) if self.url else None

    def label(self) -> str:
        """Short text for tables: ``reference/phase3+redis-pool`` or the external URL."""
        if not self.is_reference:
            return f"external {self.url}"
        mods = "".join(f"+{n}" for n in self.with_) + "".join(f"-{n}" for n in self.without)
        return f"reference/{self.variant}{mods}"

    def to_dict(self) -> dict[str, Any]:
        if self.is_reference:
            return {
                "service": self.service,
                "variant": self.variant,
                "with": list(self.with_),
                "without": list(self.without),
                "switches": sorted(self.switches),
            }
        return {
            "service": self.service,
            "url": self.url,
            "start": self.start,
            "cwd": None if self.cwd is None else str(self.cwd),
            "ready_path": self.ready_path,
            "ready_timeout_s": self.ready_timeout_s,
            "profile_process": self.profile_process,
            "env": {k: _hide_password(v) for k, v in self.env},
            "redis_url": None if self.redis_url is None else _hide_password(self.redis_url),
            "canary": None if self.canary is None else self.canary.to_dict(),
        }


def _hide_password(text: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host``: results files get shared."""
    import re

    return re.sub(r"(://[^:/@\s]*:)[^@/\s]+@", r"\1***@", text)


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, templated. At most one of ``json``, ``body``, ``body_file``."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    json: Any = None  # a mapping or list (JSON-compatible), or None
    body: str | None = None
    body_file: Path | None = None  # absolute
    expect_status: tuple[int, ...] | None = None  # None: any 2xx counts as success

    def is_success(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 300
        return status in self.expect_status

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "json": self.json,
            "body": self.body,
            "body_file": None if self.body_file is None else str(self.body_file),
            "expect_status": None if self.expect_status is None else list(self.expect_status),
        }


@dataclass(frozen=True)
class JobSpec:
    """Kind job: the Telegram update enqueued per job (templated like a JSON body)."""

    update: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"update": self.update}


@dataclass(frozen=True)
class RedisStoreSpec:
    """Kind redis-store: each iteration runs ``operations`` in order on one fresh id."""

    operations: tuple[str, ...] = REDIS_OPERATIONS
    payload_bytes: int = 150

    def to_dict(self) -> dict[str, Any]:
        return {"operations": list(self.operations), "payload_bytes": self.payload_bytes}


@dataclass(frozen=True)
class LoadSpec:
    """The load model. Open: ``rate`` or ``stages`` (each ``(duration_s, target_rps)``,
    ramping linearly from the previous target, the first from 0). Closed: ``users``."""

    model: Literal["open", "closed"] = "open"
    rate: float | None = None
    stages: tuple[tuple[float, float], ...] = ()
    users: int | None = None
    think_time_s: float | tuple[float, float] = 0.0  # closed: fixed or (low, high) uniform
    max_connections: int = 256  # open: concurrency cap
    processes: int = 1

    def describe(self) -> str:
        if self.model == "closed":
            think = self.think_time_s
            t = (
                f", think {think[0] * 1000:g}-{think[1] * 1000:g}ms"
                if isinstance(think, tuple)
                else (f", think {think * 1000:g}ms" if think else "")
            )
            return f"closed {self.users} users{t}"
        if self.stages:
            return "open ramp " + "→".join(f"{t:g}" for _, t in self.stages) + "/s"
        return f"open {self.rate:g}/s"

    def to_dict(self) -> dict[str, Any]:
        think = self.think_time_s
        return {
            "model": self.model,
            "rate": self.rate,
            "stages": [list(s) for s in self.stages],
            "users": self.users,
            "think_time_s": list(think) if isinstance(think, tuple) else think,
            "max_connections": self.max_connections,
            "processes": self.processes,
        }


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits; None means not checked."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    error_rate: float | None = None  # 0..1
    min_rps: float | None = None  # achieved throughput
    e2e_p95_ms: float | None = None  # flow: webhook sent -> reply at the Telegram stand-in
    queue_wait_p95_ms: float | None = None  # job: enqueued -> started
    run_p95_ms: float | None = None  # job: started -> finished
    min_jobs_per_s: float | None = None  # job: completed jobs per second
    # Any other recorded metric (perfaudit.analysis.metrics), e.g. per-request costs:
    # (("redis_commands_per_request", 10.0), ...)
    extra: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, float]:
        named = {k: v for k, v in self.__dict__.items() if k != "extra" and v is not None}
        return {**named, **dict(self.extra)}

    def describe(self) -> str:
        parts = []
        for k, v in self.to_dict().items():
            if k == "error_rate":
                parts.append(f"err<={v * 100:g}%")
            elif k.startswith("min_"):
                parts.append(f"{k[4:]}>={v:g}")
            elif k.endswith("_ms"):
                parts.append(f"{k[:-3]}<{v:g}ms")
            else:
                parts.append(f"{k}<={v:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Prepare:
    """Setup before the load (reference target only)."""

    pending_callbacks: bool = False  # seed a pending request per request: {{ pending_id }}

    def to_dict(self) -> dict[str, Any]:
        return {"pending_callbacks": self.pending_callbacks}


MEASURES: tuple[str, ...] = ("latency", "instructions")


@dataclass(frozen=True)
class CostSpec:
    """How the instructions measure drives the scenario (perfaudit.measure.instructions):
    ``requests`` sequential requests after ``warmup_requests``, counted in ``windows``
    sub-windows (their spread is the run's own noise), with ``idle_s`` idle windows before
    and after to subtract background work; ``python_calls``: a second, native run counts
    Python calls per function (where the instructions went, by name)."""

    requests: int = 150
    warmup_requests: int = 60
    windows: int = 5
    idle_s: float = 2.0
    python_calls: bool = True
    settle_s: float = 0.5  # external targets: quiet time after the last response

    def settings(self) -> dict[str, Any]:
        """What two counts must share to be compared."""
        return {"requests": self.requests, "warmup_requests": self.warmup_requests,
                "windows": self.windows}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {**self.settings(), "idle_s": self.idle_s, "python_calls": self.python_calls,
                "settle_s": self.settle_s}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """One validated scenario file. Exactly one of ``request`` (http, flow), ``job`` (job)
    or ``redis_store`` (redis-store) is set, matching ``kind``."""

    name: str
    path: Path  # absolute path of the YAML file
    kind: Kind
    description: str
    target: Target
    load: LoadSpec
    warmup_s: float
    duration_s: float  # the measured window (with stages: their sum)
    thresholds: Thresholds
    request: RequestSpec | None = None
    job: JobSpec | None = None
    redis_store: RedisStoreSpec | None = None
    standins: Mapping[str, Any] = field(default_factory=dict)  # patch for POST /_standin/config
    prepare: Prepare = Prepare()
    tags: tuple[str, ...] = ()
    profile: tuple[ProfileSpec, ...] = ()  # profilers over the steady window (perfaudit.profile)
    measure: tuple[str, ...] = ("latency",)  # MEASURES: the load run, callgrind counts
    cost: CostSpec = CostSpec()
    # key path -> 1-based line, so later errors (a missing env var) can name the place.
    source_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def display_path(self) -> str:
        from perfaudit.scenario.yamlnodes import display_path

        return display_path(self.path)

    def line_of(self, key: str) -> int | None:
        return self.source_lines.get(key)

    def expected_requests(self) -> int | None:
        """Arrivals over warmup + duration for open models (how many pending requests to
        seed); None for the closed model, whose count depends on the service."""
        if self.load.model == "closed":
            return None
        if self.load.stages:
            total, prev = 0.0, 0.0
            for d, t in self.load.stages:
                total += d * (prev + t) / 2
                prev = t
            # warmup runs at the first stage's target (see perfaudit.load.models)
            return int(total + self.warmup_s * self.load.stages[0][1]) + 1
        assert self.load.rate is not None
        return int(self.load.rate * (self.warmup_s + self.duration_s)) + 1

    def load_model_dict(self) -> dict[str, Any]:
        """The mapping ``perfaudit.load.models.model_from_dict`` takes."""
        ld = self.load
        if ld.model == "closed":
            think = ld.think_time_s
            return {
                "type": "closed",
                "users": ld.users,
                "duration_s": self.duration_s,
                "think_time_s": list(think) if isinstance(think, tuple) else think,
            }
        if ld.stages:
            return {
                "type": "open",
                "stages": [{"duration_s": d, "target_rps": t} for d, t in ld.stages],
                "max_connections": ld.max_connections,
            }
        return {
            "type": "open",
            "rate": ld.rate,
            "duration_s": self.duration_s,
            "max_connections": ld.max_connections,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, for the results file."""
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "description": self.description,
            "target": self.target.to_dict(),
            "request": None if self.request is None else self.request.to_dict(),
            "job": None if self.job is None else self.job.to_dict(),
            "redis_store": None if self.redis_store is None else self.redis_store.to_dict(),
            "load": self.load.to_dict(),
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "thresholds": self.thresholds.to_dict(),
            "standins": dict(self.standins),
            "prepare": self.prepare.to_dict(),
            "tags": list(self.tags),
            "profile": [p.to_dict() for p in self.profile],
            "measure": list(self.measure),
            "cost": self.cost.to_dict(),
        }
