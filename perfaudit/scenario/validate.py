"""YAML nodes -> :class:`Scenario`, reporting every problem with its file, line and key.

Sections are read independently (a broken ``load`` does not hide a broken ``request``);
checks that span sections (kind vs sections, placeholders vs target) run at the end.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfaudit.analysis.metrics import threshold_keys
from perfaudit.profile.spec import OPTIONS as PROFILE_OPTIONS
from perfaudit.profile.spec import ProfileSpec, ProfileSpecError, make_spec, parse_cli
from perfaudit.refservice import switches as sw
from perfaudit.scenario import standins as standins_mod
from perfaudit.scenario.model import (
    KINDS,
    MEASURES,
    METHODS,
    REDIS_OPERATIONS,
    Canary,
    CostSpec,
    JobSpec,
    LoadSpec,
    Prepare,
    RedisStoreSpec,
    RequestSpec,
    Scenario,
    Target,
    Thresholds,
)
from perfaudit.scenario.template import PLACEHOLDER, scan, whole_placeholder
from perfaudit.scenario.yamlnodes import Checker, cpu_count, kind_name, line

TOP_KEYS = (
    "name",
    "description",
    "kind",
    "target",
    "request",
    "job",
    "redis_store",
    "load",
    "warmup",
    "duration",
    "thresholds",
    "standins",
    "prepare",
    "tags",
    "profile",
    "measure",
    "cost",
)
TARGET_REFERENCE_KEYS = ("variant", "with", "without")
TARGET_EXTERNAL_KEYS = (
    "url", "start", "cwd", "ready_path", "ready_timeout", "profile_process", "env", "redis_url",
    "canary",
)  # fmt: skip
CANARY_KEYS = ("path", "rate")
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# A leading shell assignment word: NAME=value, the value unquoted, 'quoted' or "quoted".
ASSIGNMENT = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)=((?:[^\s'\"\\]|\\.|'[^']*'|\"(?:[^\"\\]|\\.)*\")*)(?=\s|$)"
)


def split_env_prefix(command: str) -> tuple[list[tuple[str, str]], str]:
    """``"A=1 B='x y' cmd args"`` -> ``([("A", "1"), ("B", "x y")], "cmd args")``. Stops at
    the first word that is not an assignment, or whose value the shell would expand (``$``,
    backquotes): that one and the rest stay in the command, for the shell."""
    out: list[tuple[str, str]] = []
    pos = 0
    while m := ASSIGNMENT.match(command, pos):
        raw = m.group(2)
        if "$" in raw or "`" in raw:
            break
        out.append((m.group(1), "".join(shlex.split(raw)) if raw else ""))
        pos = m.end()
    return out, command[pos:].strip()


REQUEST_KEYS = ("method", "path", "headers", "json", "body", "body_file", "expect_status")
BODY_KEYS = ("json", "body", "body_file")
LOAD_KEYS = ("model", "rate", "stages", "users", "think_time", "max_connections", "processes")
# key -> kinds it applies to: every recorded metric (perfaudit.analysis.metrics)
THRESHOLD_KEYS: dict[str, tuple[str, ...]] = {
    key: metric.kinds for key, (metric, _) in threshold_keys().items()
}
SECTION_KINDS = {"request": ("http", "flow"), "job": ("job",), "redis_store": ("redis-store",)}
NAME_PATTERN = r"[a-z0-9-]+"
_HEADER_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_COMPUTED_HEADERS = ("content-length", "transfer-encoding")
DEFAULT_WARMUP_S = 2.0


@dataclass
class _Use:
    name: str  # placeholder name
    line: int
    key: str


@dataclass
class _Build:
    c: Checker
    base_dir: Path
    uses: list[_Use] = field(default_factory=list)

    def templated(self, node: Node, key: str, text: str, prefix: str = "") -> None:
        names, errors = scan(text)
        for e in errors:
            self.c.problem(node, key, prefix + e)
        self.uses += [_Use(n, line(node), key) for n in names]

    def templated_tree(self, node: Node, key: str) -> None:
        """Check the placeholders of every string value in a JSON subtree."""
        if isinstance(node, MappingNode):
            for k, v in node.value:
                name = str(k.value)
                if "{{" in name:
                    self.c.problem(
                        k, f"{key}.{name}", "placeholders are only allowed in values, not keys"
                    )
                self.templated_tree(v, f"{key}.{name}")
        elif isinstance(node, SequenceNode):
            for i, v in enumerate(node.value):
                self.templated_tree(v, f"{key}[{i}]")
        elif isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            self.templated(node, key, node.value)


def build_scenario(root: Node, path: Path, shown: str) -> Scenario:
    """Validate a composed document; raises ScenarioError listing every problem."""
    c = Checker(shown)
    if not isinstance(root, MappingNode):
        c.problem(
            root,
            "",
            f"the top level must be a mapping (name:, request:, load:, ...), got {kind_name(root)}",
        )
        c.raise_if_any()
    b = _Build(c, path.parent)
    top = c.mapping(root, "", TOP_KEYS) or {}
    top_line = line(root)

    def get(key: str) -> Node | None:
        return top[key][1] if key in top else None

    def at(key: str) -> int:
        return line(top[key][0]) if key in top else top_line

    name = _opt(
        get("name"),
        lambda n: c.string(
            n, "name", pattern=NAME_PATTERN, what="lowercase letters, digits and dashes"
        ),
    )
    if "name" not in top:
        c.problem(
            top_line, "name", "required (lowercase letters, digits and dashes, unique across files)"
        )
    description = _opt(get("description"), lambda n: c.string(n, "description")) or ""
    kind = _opt(get("kind"), lambda n: c.choice(n, "kind", KINDS)) if "kind" in top else "http"
    tags = _opt(get("tags"), lambda n: c.string_list(n, "tags")) or ()

    target = _target(b, get("target"), at("target")) if "target" in top else Target()

    sections: dict[str, Any] = {}
    if kind is not None:
        for section, kinds in SECTION_KINDS.items():
            if section in top and kind not in kinds:
                c.problem(
                    top[section][0],
                    section,
                    f"only for kind {' or '.join(kinds)} (this scenario is kind {kind})",
                )
            elif section not in top and kind in kinds and section != "redis_store":
                c.problem(top_line, section, f"required for kind {kind}")
    if "request" in top and (kind is None or kind in SECTION_KINDS["request"]):
        sections["request"] = _request(b, top["request"][1], at("request"))
    if "job" in top and (kind is None or kind == "job"):
        sections["job"] = _job(b, top["job"][1], at("job"))
    if kind == "redis-store":
        node = get("redis_store")
        sections["redis_store"] = _redis_store(b, node) if node is not None else RedisStoreSpec()

    measure = _measure(b, get("measure")) if "measure" in top else ("latency",)
    # Only the load run needs a load model; a scenario that only counts instructions
    # (sequential requests, cost:) may leave it out.
    counted_only = "latency" not in measure and "load" not in top and "duration" not in top
    load = _load(b, get("load"), at("load")) if "load" in top else None
    if counted_only:
        load = LoadSpec(rate=1.0)
    elif "load" not in top:
        c.problem(top_line, "load", "required (e.g. load: {rate: 50})")
    warmup = _opt(get("warmup"), lambda n: c.duration(n, "warmup"))
    duration = 1.0 if counted_only else _duration(b, get("duration"), load, top_line)
    thresholds = _thresholds(b, get("thresholds"), kind) if "thresholds" in top else Thresholds()
    standins = _opt(get("standins"), lambda n: standins_mod.check(c, n, "standins"))
    prepare = _prepare(b, get("prepare")) if "prepare" in top else Prepare()
    profile = _profile(b, get("profile")) if "profile" in top else ()
    cost = _cost(b, get("cost")) if "cost" in top else CostSpec()

    # -- checks across sections --------------------------------------------------------
    if target is not None and not target.is_reference:
        if kind is not None and kind != "http":
            c.problem(
                at("target"),
                "target.service",
                f"kind {kind} needs the reference target (external targets are http only)",
            )
        for key in ("standins", "prepare"):
            if key in top:
                c.problem(top[key][0], key, "only for the reference target")
        for u in b.uses:
            if u.name.startswith("secrets."):
                c.problem(
                    u.line,
                    u.key,
                    f"{{{{ {u.name} }}}} is only available for the reference target (use {{{{ env.NAME }}}})",
                )
    if "instructions" in measure:
        if kind not in (None, "http"):
            c.problem(at("measure"), "measure", f"instructions: only for kind http, not {kind}")
        if target is not None and not target.is_reference and not target.start:
            c.problem(
                at("measure"), "measure",
                "instructions needs target.start: perfaudit starts the service under valgrind",
            )  # fmt: skip
    if prepare.pending_callbacks and kind not in (None, "http"):
        c.problem(
            at("prepare"), "prepare.pending_callbacks", "only for kind http (callback scenarios)"
        )
    for u in b.uses:
        if u.name == "pending_id" and not prepare.pending_callbacks:
            c.problem(u.line, u.key, "{{ pending_id }} needs prepare: {pending_callbacks: true}")
    if kind in ("job", "flow"):
        _check_unique_update(b, kind, top)

    c.raise_if_any()
    assert name is not None and kind is not None and target is not None and load is not None
    assert duration is not None
    return Scenario(
        name=name,
        path=path,
        kind=kind,  # type: ignore[arg-type]
        description=description,
        target=target,
        load=load,
        warmup_s=DEFAULT_WARMUP_S if warmup is None else warmup,
        duration_s=duration,
        thresholds=thresholds,
        request=sections.get("request"),
        job=sections.get("job"),
        redis_store=sections.get("redis_store"),
        standins=standins or {},
        prepare=prepare,
        tags=tuple(tags),
        profile=profile,
        measure=measure,
        cost=cost,
        source_lines=dict(c.lines),
    )


def _opt(node: Node | None, read: Any) -> Any:
    return None if node is None else read(node)


# -- target ----------------------------------------------------------------------------


def _target(b: _Build, node: Node | None, at: int) -> Target | None:
    c = b.c
    assert node is not None
    m = c.mapping(node, "target", ("service", *TARGET_REFERENCE_KEYS, *TARGET_EXTERNAL_KEYS))
    if m is None:
        return None
    service = (
        c.choice(m["service"][1], "target.service", ("reference", "external"))
        if "service" in m
        else "reference"
    )
    if service is None:
        return None
    wrong = TARGET_EXTERNAL_KEYS if service == "reference" else TARGET_REFERENCE_KEYS
    other = "external" if service == "reference" else "reference"
    for key in wrong:
        if key in m:
            c.problem(
                m[key][0], f"target.{key}", f"only for service: {other} (this target is {service})"
            )
    ok = not any(key in m for key in wrong)
    if service == "reference":
        variant = (
            c.choice(m["variant"][1], "target.variant", sw.VARIANTS)
            if "variant" in m
            else "optimized"
        )
        with_ = c.string_list(m["with"][1], "target.with", sw.NAMES) if "with" in m else ()
        without = (
            c.string_list(m["without"][1], "target.without", sw.NAMES) if "without" in m else ()
        )
        for n in set(with_ or ()) & set(without or ()):
            c.problem(m["without"][0], "target.without", f"switch {n!r} is also in target.with")
        if variant is None or with_ is None or without is None or not ok:
            return None
        return Target("reference", variant, tuple(with_), tuple(without))

    url = _url(b, m["url"][1]) if "url" in m else None
    if "url" not in m:
        c.problem(at, "target.url", "required for service: external (e.g. http://127.0.0.1:8000)")
    start = c.string(m["start"][1], "target.start") if "start" in m else None
    cwd = None
    if "cwd" in m:
        text = c.string(m["cwd"][1], "target.cwd")
        if text is not None:
            cwd = (b.base_dir / text).resolve()
            if not cwd.is_dir():
                c.problem(m["cwd"][1], "target.cwd", f"no such directory: {cwd}")
        if "start" not in m:
            c.problem(m["cwd"][0], "target.cwd", "only used with target.start")
    elif start is not None:
        cwd = b.base_dir.resolve()
    ready_path = (
        c.string(
            m["ready_path"][1], "target.ready_path", pattern=r"/\S*", what="a path starting with /"
        )
        if "ready_path" in m
        else "/"
    )
    ready_timeout = (
        c.duration(m["ready_timeout"][1], "target.ready_timeout", positive=True)
        if "ready_timeout" in m
        else 30.0
    )
    profile: str | int | None = "started" if start is not None else None
    if "profile_process" in m:
        profile = _profile_process(b, m["profile_process"][1], start is not None)
    env: tuple[tuple[str, str], ...] | None = ()
    if "env" in m:
        env = _env(b, m["env"][1])
        if "start" not in m:
            c.problem(m["env"][0], "target.env", "only used with target.start")
    if start is not None and env is not None:
        # `VAR=value cmd`: the assignments join target.env (and win, as in a shell), so the
        # command is a plain command for everything that rewrites it (memray, valgrind).
        prefix, rest = split_env_prefix(start)
        if prefix and not rest:
            c.problem(
                m["start"][1], "target.start", f"only variable assignments, no command: {start!r}"
            )
            start = None
        elif prefix:
            env = tuple({**dict(env), **dict(prefix)}.items())
            start = rest
    redis_url = _redis_url(b, m["redis_url"][1]) if "redis_url" in m else None
    canary = _canary(b, m["canary"][1]) if "canary" in m else None
    if (
        None in (url, ready_path, ready_timeout, env)
        or not ok
        or ("start" in m and start is None)
        or ("redis_url" in m and redis_url is None)
        or ("canary" in m and canary is None)
    ):
        return None
    assert ready_path is not None and ready_timeout is not None and env is not None
    return Target(
        "external",
        url=url,
        start=start,
        cwd=cwd,
        ready_path=ready_path,
        ready_timeout_s=ready_timeout,
        profile_process=profile,
        env=env,
        redis_url=redis_url,
        canary=canary,
    )


def _env(b: _Build, node: Node) -> tuple[tuple[str, str], ...] | None:
    """NAME -> value for the started command; numbers and booleans are written as text
    (``true``/``false``), nothing is expanded (the command itself may use ``$NAME``)."""
    c = b.c
    if not isinstance(node, MappingNode):
        c.problem(node, "target.env", f"must be a mapping of NAME: value, got {kind_name(node)}")
        return None
    out: dict[str, str] = {}
    good = True
    for k, v in node.value:
        if not (isinstance(k, ScalarNode) and k.tag == "tag:yaml.org,2002:str"):
            c.problem(k, "target.env", f"names must be strings, got {kind_name(k)}")
            good = False
            continue
        key = f"target.env.{k.value}"
        if not re.fullmatch(_ENV_NAME, k.value):
            c.problem(k, key, "not a valid environment variable name (letters, digits, _; "
                      "not starting with a digit)")  # fmt: skip
            good = False
            continue
        if k.value in out:
            c.problem(k, key, "duplicate name")
            good = False
            continue
        scalar = c.plain(v, key) if isinstance(v, ScalarNode) else None
        if scalar is None or isinstance(scalar, float) and not math.isfinite(scalar):
            c.problem(v, key, f"must be a string, number or boolean, got {kind_name(v)}")
            good = False
            continue
        out[k.value] = ("true" if scalar else "false") if isinstance(scalar, bool) else str(scalar)
        c.lines[key] = line(k)
    return tuple(out.items()) if good else None


def _redis_url(b: _Build, node: Node) -> str | None:
    c = b.c
    key = "target.redis_url"
    text = c.string(node, key)
    if text is None:
        return None
    try:
        u = urlsplit(text)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        c.problem(node, key, f"not a valid URL: {exc}")
        return None
    if u.scheme not in REDIS_SCHEMES:
        c.problem(
            node, key, f"must be a redis://HOST:PORT URL (or rediss://, unix://), got {text!r}"
        )
        return None
    if u.scheme != "unix" and not u.hostname:
        c.problem(node, key, f"needs a host, got {text!r}")
        return None
    if u.scheme == "unix" and not u.path:
        c.problem(node, key, f"needs a socket path (unix:///path/redis.sock), got {text!r}")
        return None
    return text


def _canary(b: _Build, node: Node) -> Canary | None:
    c = b.c
    m = c.mapping(node, "target.canary", CANARY_KEYS)
    if m is None:
        return None
    if "path" not in m:
        c.problem(node, "target.canary.path", "required: a cheap GET route, e.g. /health")
        return None
    path = c.string(
        m["path"][1], "target.canary.path", pattern=r"/\S*", what="a path starting with /"
    )
    rate = c.number(m["rate"][1], "target.canary.rate", gt=0, le=50) if "rate" in m else 5.0
    if path is None or rate is None:
        return None
    return Canary(path=path, rate_hz=float(rate))


def _url(b: _Build, node: Node) -> str | None:
    c = b.c
    key = "target.url"
    text = c.string(node, key)
    if text is None:
        return None
    try:
        u = urlsplit(text)
        port = u.port
    except ValueError as exc:
        c.problem(node, key, f"not a valid URL: {exc}")
        return None
    if u.scheme != "http":
        c.problem(
            node, key, f"must be an http:// URL (the load generator has no TLS), got {text!r}"
        )
        return None
    host = u.hostname
    if not host:
        c.problem(node, key, f"needs a host, got {text!r}")
        return None
    if not _is_loopback(host):
        c.problem(
            node,
            key,
            f"host {host!r} is not a loopback address: perfaudit only drives services on this "
            "machine (use 127.0.0.1, another 127.x.y.z address, localhost or [::1])",
        )
        return None
    if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
        c.problem(
            node,
            key,
            f"must be a base URL like http://127.0.0.1:8000 (no path, query or credentials), got {text!r}",
        )
        return None
    netloc = f"[{host}]" if ":" in host else host
    return f"http://{netloc}:{port or 80}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _profile_process(b: _Build, node: Node, started: bool) -> str | int | None:
    c = b.c
    key = "target.profile_process"
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:int":
        return c.number(node, key, ge=1, integer=True)
    value = c.string(node, key)
    if value is None:
        return None
    if value == "started" and not started:
        c.problem(
            node, key, "'started' needs target.start (or give a pid or a command-name substring)"
        )
        return None
    if not value.strip():
        c.problem(node, key, "must be 'started', a pid or a command-name substring, got ''")
        return None
    return value


# -- request, job, redis_store ---------------------------------------------------------


def _request(b: _Build, node: Node, at: int) -> RequestSpec | None:
    c = b.c
    m = c.mapping(node, "request", REQUEST_KEYS)
    if m is None:
        return None
    bad = False
    method = "GET"
    if "method" in m:
        raw = c.string(m["method"][1], "request.method")
        if raw is not None and raw.upper() not in METHODS:
            c.problem(
                m["method"][1],
                "request.method",
                f"must be one of {', '.join(METHODS)}, got {raw!r}",
            )
            raw = None
        bad |= raw is None
        method = (raw or "GET").upper()
    path = None
    if "path" not in m:
        c.problem(at, "request.path", "required (e.g. /health)")
    else:
        pn = m["path"][1]
        path = c.string(pn, "request.path")
        if path is not None:
            if not path.startswith("/"):
                c.problem(pn, "request.path", f"must start with /, got {path!r}")
            elif re.search(r"\s", PLACEHOLDER.sub("", path)):
                c.problem(
                    pn,
                    "request.path",
                    f"must not contain whitespace (percent-encode it), got {path!r}",
                )
            b.templated(pn, "request.path", path)
    headers = _headers(b, m["headers"][1]) if "headers" in m else ()

    given = [k for k in BODY_KEYS if k in m]
    for k in given[1:]:
        c.problem(
            m[k][0],
            f"request.{k}",
            f"json, body and body_file are mutually exclusive (request.{given[0]} is already given)",
        )
    json_value: Any = None
    body = None
    body_file = None
    if "json" in m:
        jn = m["json"][1]
        if not isinstance(jn, MappingNode | SequenceNode):
            c.problem(
                jn,
                "request.json",
                f"must be a mapping or a list (the JSON body), got {kind_name(jn)}",
            )
            bad = True
        else:
            json_value = c.plain(jn, "request.json")
            b.templated_tree(jn, "request.json")
    if "body" in m:
        body = c.string(m["body"][1], "request.body")
        if body is not None:
            b.templated(m["body"][1], "request.body", body)
        bad |= body is None
    if "body_file" in m:
        text = c.string(m["body_file"][1], "request.body_file")
        if text is not None:
            body_file = (b.base_dir / text).resolve()
            if not body_file.is_file():
                c.problem(
                    m["body_file"][1],
                    "request.body_file",
                    f"no such file: {text} (relative to the scenario file: {body_file})",
                )
            else:
                # binary bodies are sent as they are (no placeholders)
                with contextlib.suppress(UnicodeDecodeError):
                    content = body_file.read_text(encoding="utf-8")
                    b.templated(m["body_file"][1], "request.body_file", content, f"in {text}: ")
        bad |= text is None
    expect = _expect_status(b, m["expect_status"][1]) if "expect_status" in m else None
    if bad or path is None or headers is None or ("expect_status" in m and expect is None):
        return None
    return RequestSpec(method, path, headers, json_value, body, body_file, expect)


def _headers(b: _Build, node: Node) -> tuple[tuple[str, str], ...] | None:
    c = b.c
    if not isinstance(node, MappingNode):
        c.problem(
            node,
            "request.headers",
            f"must be a mapping of header name to value, got {kind_name(node)}",
        )
        return None
    out = []
    seen: set[str] = set()
    for k, v in node.value:
        name = str(k.value)
        key = f"request.headers.{name}"
        if not isinstance(k, ScalarNode) or not re.fullmatch(_HEADER_NAME, name):
            c.problem(k, key, "not a valid header name")
            continue
        if name.lower() in _COMPUTED_HEADERS:
            c.problem(k, key, "set by the load generator; remove it")
            continue
        if name.lower() in seen:
            c.problem(k, key, "duplicate header")
            continue
        seen.add(name.lower())
        c.lines[key] = line(k)
        if not (
            isinstance(v, ScalarNode)
            and v.tag
            in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ):
            c.problem(v, key, f"must be a string, got {kind_name(v)}")
            continue
        value = str(v.value)
        if "\r" in value or "\n" in value:
            c.problem(v, key, "must not contain line breaks")
            continue
        b.templated(v, key, value)
        out.append((name, value))
    return tuple(out)


def _expect_status(b: _Build, node: Node) -> tuple[int, ...] | None:
    items = node.value if isinstance(node, SequenceNode) else [node]
    out = []
    for i, item in enumerate(items):
        key = "request.expect_status" + (f"[{i}]" if isinstance(node, SequenceNode) else "")
        status = b.c.number(item, key, ge=100, le=599, integer=True)
        if status is None:
            return None
        out.append(status)
    if not out:
        b.c.problem(
            node, "request.expect_status", "must list at least one status (or be left out: any 2xx)"
        )
        return None
    return tuple(out)


def _job(b: _Build, node: Node, at: int) -> JobSpec | None:
    c = b.c
    m = c.mapping(node, "job", ("update",))
    if m is None:
        return None
    if "update" not in m:
        c.problem(at, "job.update", "required: the Telegram update enqueued per job")
        return None
    un = m["update"][1]
    if not isinstance(un, MappingNode):
        c.problem(un, "job.update", f"must be a mapping (a Telegram update), got {kind_name(un)}")
        return None
    b.templated_tree(un, "job.update")
    return JobSpec(c.plain(un, "job.update"))


def _redis_store(b: _Build, node: Node) -> RedisStoreSpec | None:
    c = b.c
    m = c.mapping(node, "redis_store", ("operations", "payload_bytes"))
    if m is None:
        return None
    ops: tuple[str, ...] | None = REDIS_OPERATIONS
    if "operations" in m:
        ops = c.string_list(m["operations"][1], "redis_store.operations", REDIS_OPERATIONS)
        if ops is not None and not ops:
            c.problem(
                m["operations"][1],
                "redis_store.operations",
                f"must list at least one of {', '.join(REDIS_OPERATIONS)}",
            )
            ops = None
        elif ops is not None and len(set(ops)) != len(ops):
            c.problem(m["operations"][1], "redis_store.operations", "lists an operation twice")
            ops = None
    size = (
        c.number(
            m["payload_bytes"][1], "redis_store.payload_bytes", ge=16, le=1_000_000, integer=True
        )
        if "payload_bytes" in m
        else 150
    )
    if ops is None or size is None:
        return None
    return RedisStoreSpec(ops, size)


# -- load and timing -------------------------------------------------------------------


def _load(b: _Build, node: Node | None, at: int) -> LoadSpec | None:
    c = b.c
    assert node is not None
    m = c.mapping(node, "load", LOAD_KEYS)
    if m is None:
        return None
    model = c.choice(m["model"][1], "load.model", ("open", "closed")) if "model" in m else "open"
    if model is None:
        return None
    good = True

    def val(key: str, read: Any) -> Any:
        nonlocal good
        if key not in m:
            return None
        v = read(m[key][1], f"load.{key}")
        good &= v is not None
        return v

    processes = val("processes", lambda n, k: _processes(b, n)) or 1
    if model == "open":
        for key in ("users", "think_time"):
            if key in m:
                c.problem(
                    m[key][0],
                    f"load.{key}",
                    "only for model: closed (the open model uses rate or stages)",
                )
                good = False
        if "rate" in m and "stages" in m:
            c.problem(
                m["stages"][0],
                "load.stages",
                "rate and stages are mutually exclusive (constant rate or a ramp)",
            )
            good = False
        elif "rate" not in m and "stages" not in m:
            c.problem(at, "load.rate", "required for model: open (or give stages)")
            good = False
        rate = val("rate", lambda n, k: c.number(n, k, gt=0))
        stages = val("stages", lambda n, k: _stages(b, n))
        max_conn = val("max_connections", lambda n, k: c.number(n, k, ge=1, integer=True)) or 256
        if not good:
            return None
        return LoadSpec(
            "open",
            None if rate is None else float(rate),
            stages or (),
            None,
            0.0,
            max_conn,
            processes,
        )

    for key in ("rate", "stages", "max_connections"):
        if key in m:
            c.problem(
                m[key][0], f"load.{key}", "only for model: open (the closed model uses users)"
            )
            good = False
    users = val("users", lambda n, k: c.number(n, k, ge=1, integer=True))
    if "users" not in m:
        c.problem(at, "load.users", "required for model: closed")
        good = False
    elif users is not None and users < processes:
        c.problem(
            m["users"][1],
            "load.users",
            f"must be >= load.processes ({processes}): each generator process needs a user",
        )
        good = False
    think = val("think_time", lambda n, k: _think_time(b, n)) or 0.0
    if not good:
        return None
    return LoadSpec("closed", None, (), users, think, 256, processes)


def _processes(b: _Build, node: Node) -> int | None:
    n = b.c.number(node, "load.processes", ge=1, integer=True)
    if n is not None and n > cpu_count():
        b.c.problem(
            node, "load.processes", f"must be <= the number of CPUs ({cpu_count()}), got {n}"
        )
        return None
    return n


def _stages(b: _Build, node: Node) -> tuple[tuple[float, float], ...] | None:
    c = b.c
    if not isinstance(node, SequenceNode) or not node.value:
        c.problem(
            node,
            "load.stages",
            f"must be a non-empty list of {{duration, target}}, got {kind_name(node)}",
        )
        return None
    out = []
    for i, item in enumerate(node.value):
        key = f"load.stages[{i}]"
        m = c.mapping(item, key, ("duration", "target"))
        if m is None:
            return None
        for k in ("duration", "target"):
            if k not in m:
                c.problem(item, f"{key}.{k}", "required")
        d = (
            c.duration(m["duration"][1], f"{key}.duration", positive=True)
            if "duration" in m
            else None
        )
        t = c.number(m["target"][1], f"{key}.target", ge=0) if "target" in m else None
        if d is None or t is None:
            return None
        out.append((d, float(t)))
    if not any(t > 0 for _, t in out):
        c.problem(node, "load.stages", "at least one stage needs a target > 0")
        return None
    return tuple(out)


def _think_time(b: _Build, node: Node) -> float | tuple[float, float] | None:
    c = b.c
    if isinstance(node, SequenceNode):
        if len(node.value) != 2:
            c.problem(node, "load.think_time", "a range must be [low, high], e.g. [10ms, 50ms]")
            return None
        lo = c.duration(node.value[0], "load.think_time[0]")
        hi = c.duration(node.value[1], "load.think_time[1]")
        if lo is None or hi is None:
            return None
        if lo > hi:
            c.problem(node, "load.think_time", "the range's low end is above its high end")
            return None
        return (lo, hi)
    return c.duration(node, "load.think_time")


def _duration(b: _Build, node: Node | None, load: LoadSpec | None, top_line: int) -> float | None:
    c = b.c
    value = None if node is None else c.duration(node, "duration", positive=True)
    if load is None:
        return value
    if load.stages:
        total = sum(d for d, _ in load.stages)
        if (
            node is not None
            and value is not None
            and not math.isclose(value, total, rel_tol=1e-9, abs_tol=1e-9)
        ):
            c.problem(
                node,
                "duration",
                f"must equal the sum of load.stages durations ({total:g}s) or be left out, got {value:g}s",
            )
            return None
        return total
    if node is None:
        c.problem(top_line, "duration", f"required for the {load.model} model (e.g. duration: 10s)")
    return value


# -- thresholds, prepare, cross checks -------------------------------------------------


def _thresholds(b: _Build, node: Node | None, kind: str | None) -> Thresholds:
    c = b.c
    assert node is not None
    m = c.mapping(node, "thresholds", THRESHOLD_KEYS)
    if m is None:
        return Thresholds()
    values: dict[str, float] = {}
    for key, (kn, vn) in m.items():
        kinds = THRESHOLD_KEYS[key]
        if kind is not None and kind not in kinds:
            c.problem(
                kn,
                f"thresholds.{key}",
                f"only for kind {' or '.join(kinds)} (this scenario is kind {kind})",
            )
            continue
        if key == "error_rate":
            v = c.number(vn, "thresholds.error_rate", ge=0, le=1)
        elif threshold_keys()[key][0].scale == "abs":  # counts per request: 0 is a limit
            v = c.number(vn, f"thresholds.{key}", ge=0)
        else:
            v = c.number(vn, f"thresholds.{key}", gt=0)
        if v is not None:
            values[key] = float(v)
    named = {k: v for k, v in values.items() if k in Thresholds.__dataclass_fields__}
    extra = tuple((k, v) for k, v in values.items() if k not in named)
    return Thresholds(**named, extra=extra)


def _prepare(b: _Build, node: Node | None) -> Prepare:
    c = b.c
    assert node is not None
    m = c.mapping(node, "prepare", ("pending_callbacks",))
    if m is None or "pending_callbacks" not in m:
        return Prepare()
    return Prepare(bool(c.boolean(m["pending_callbacks"][1], "prepare.pending_callbacks")))


def _profile(b: _Build, node: Node | None) -> tuple[ProfileSpec, ...]:
    """``profile: py-spy``, ``[py-spy, "memray:method=run"]`` (the ``--profile`` syntax) or
    ``{py-spy: {idle: true}, memray: {}}``."""
    c = b.c
    assert node is not None
    if isinstance(node, ScalarNode | SequenceNode):
        items = c.string_list(node, "profile") or ()
        try:
            return parse_cli(list(items)) or ()
        except ProfileSpecError as exc:
            c.problem(node, "profile", str(exc).removeprefix("--profile: "))
            return ()
    m = c.mapping(node, "profile", PROFILE_OPTIONS)
    specs = []
    for name, (kn, vn) in (m or {}).items():
        key = f"profile.{name}"
        if isinstance(vn, ScalarNode) and vn.tag in ("tag:yaml.org,2002:null",
                                                     "tag:yaml.org,2002:bool"):  # fmt: skip
            if vn.value.lower() not in ("false", "no", "off"):
                specs.append(make_spec(name))
            continue
        options = c.mapping(vn, key, PROFILE_OPTIONS[name])
        if options is None:
            continue
        values: dict[str, Any] = {}
        for opt, (_, on) in options.items():
            spec = PROFILE_OPTIONS[name][opt]
            okey = f"{key}.{opt}"
            if spec.kind == "bool":
                v = c.boolean(on, okey)
            elif spec.kind == "choice":
                v = c.choice(on, okey, spec.choices)
            else:
                v = c.number(on, okey, ge=spec.low, le=spec.high, integer=spec.kind == "int")
            if v is not None:
                values[opt] = v
        try:
            specs.append(make_spec(name, values))
        except ProfileSpecError as exc:
            c.problem(kn, key, str(exc))
    return tuple(specs)


def _measure(b: _Build, node: Node | None) -> tuple[str, ...]:
    """``measure: instructions`` or ``[latency, instructions]``."""
    c = b.c
    assert node is not None
    items = c.string_list(node, "measure", MEASURES) or ()
    if not items:
        c.problem(node, "measure", f"must name at least one of {', '.join(MEASURES)}")
        return ("latency",)
    return tuple(dict.fromkeys(items))


def _cost(b: _Build, node: Node | None) -> CostSpec:
    c = b.c
    assert node is not None
    keys = ("requests", "warmup_requests", "windows", "idle", "python_calls", "settle")
    m = c.mapping(node, "cost", keys)
    if m is None:
        return CostSpec()
    values: dict[str, Any] = {}
    for key, field_name, lo, hi in (("requests", "requests", 2, 100_000),
                                    ("warmup_requests", "warmup_requests", 0, 100_000),
                                    ("windows", "windows", 2, 100)):  # fmt: skip
        if key in m:
            v = c.number(m[key][1], f"cost.{key}", ge=lo, le=hi, integer=True)
            if v is not None:
                values[field_name] = int(v)
    for key, field_name in (("idle", "idle_s"), ("settle", "settle_s")):
        if key in m:
            v = c.duration(m[key][1], f"cost.{key}")
            if v is not None:
                values[field_name] = v
    if "python_calls" in m:
        v = c.boolean(m["python_calls"][1], "cost.python_calls")
        if v is not None:
            values["python_calls"] = bool(v)
    spec = CostSpec(**values)
    if spec.windows > spec.requests:
        c.problem(m.get("windows", m.get("requests"))[1], "cost.windows",
                  f"must not exceed cost.requests ({spec.requests})")  # fmt: skip
    return spec


def _check_unique_update(b: _Build, kind: str, top: dict[str, tuple[ScalarNode, Node]]) -> None:
    """Jobs and flows need a fresh update_id per request: the service drops an update_id it
    has seen in the last hour, so a fixed one would measure nothing after the first."""
    c = b.c
    section, key = ("job", "job.update") if kind == "job" else ("request", "request.json")
    if section not in top:
        return
    sub = top[section][1]
    body = _child(sub, "update" if kind == "job" else "json")
    if body is not None and not isinstance(body, MappingNode):
        return  # already reported: must be a mapping
    if body is None:
        if kind == "flow" and isinstance(sub, MappingNode):
            c.problem(
                top[section][0], key, "kind flow needs a JSON Telegram update body (request.json)"
            )
        return
    uid = _child(body, "update_id")
    ok = (
        isinstance(uid, ScalarNode)
        and uid.tag == "tag:yaml.org,2002:str"
        and whole_placeholder(uid.value) in ("update_id", "seq")
    )
    if not ok:
        where: Node = uid if uid is not None else body
        c.problem(
            where,
            f"{key}.update_id",
            'must be "{{ update_id }}": the service ignores an update_id it has seen in the last hour',
        )
    if kind == "flow" and not any(u.name == "chat_id" and u.key.startswith(key) for u in b.uses):
        c.problem(
            body, key, "kind flow needs {{ chat_id }} in the update (replies are matched by chat)"
        )


def _child(node: Node, name: str) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == name:
                return v
    return None
