"""``{{ placeholder }}`` templates compiled once into byte segments with slots.

The load generator renders up to ~20k requests/s on one core, so nothing is parsed or
serialised per request: compiling resolves the static placeholders (secrets, env), dumps
a JSON body once with unique markers where per-request values go and splits on them.
Rendering one request is then a few ``b"%d" %`` formats and one ``b"".join``.

Per-request values come from a :class:`RequestContext`, one per generator process:
request ``k`` of process ``i`` out of ``n`` has ``seq = i + k * n``, so processes never
share an id, and every id derives from ``seq`` plus run-wide bases (:class:`RunIds`) that
all processes share.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets as _secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from perfaudit.scenario.errors import ScenarioError
from perfaudit.scenario.model import RequestSpec, Scenario
from perfaudit.suggest import suggest

# Per-request placeholders; the numeric ones render as JSON numbers when they are a whole
# JSON string value ("{{ update_id }}" -> 123, not "123").
DYNAMIC: tuple[str, ...] = (
    "seq",
    "uuid",
    "chat_id",
    "update_id",
    "request_id",
    "pending_id",
    "now",
)
NUMERIC: frozenset[str] = frozenset({"seq", "chat_id", "update_id", "now"})
SECRETS: tuple[str, ...] = (
    "webhook_secret",
    "telegram_webhook_secret",
    "telegram_bot_token",
    "elevenlabs_api_key",
)
KNOWN: tuple[str, ...] = (*DYNAMIC, *(f"secrets.{s}" for s in SECRETS), "env.NAME")

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- checking (at load time) -----------------------------------------------------------


def scan(text: str) -> tuple[list[str], list[str]]:
    """The placeholder names in ``text`` and what is wrong with them."""
    names: list[str] = []
    errors: list[str] = []
    for m in PLACEHOLDER.finditer(text):
        name = m.group(1)
        names.append(name)
        if name in DYNAMIC:
            continue
        if name.startswith("secrets."):
            if name[8:] not in SECRETS:
                errors.append(
                    f"unknown placeholder {{{{ {name} }}}}"
                    + (
                        suggest(name, [f"secrets.{s}" for s in SECRETS])
                        or f" (secrets: {', '.join(SECRETS)})"
                    )
                )
        elif name.startswith("env."):
            if not _ENV_NAME.fullmatch(name[4:]):
                errors.append(f"bad environment variable name in {{{{ {name} }}}}")
        else:
            errors.append(
                f"unknown placeholder {{{{ {name} }}}}"
                + (suggest(name, KNOWN[:-1]) or f" (known: {', '.join(KNOWN)})")
            )
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        errors.append("malformed placeholder: expected {{ name }}")
    return names, errors


def whole_placeholder(text: str) -> str | None:
    """The name when ``text`` is exactly one placeholder (surrounding spaces allowed)."""
    m = PLACEHOLDER.fullmatch(text.strip())
    return m.group(1) if m else None


# -- run-wide ids and per-request values -----------------------------------------------

_M32 = 0xFFFFFFFF
_M128 = (1 << 128) - 1


@dataclass(frozen=True)
class RunIds:
    """Bases shared by all generator processes of one run.

    ``id_base`` is the run's start in microseconds, so update ids (which the service
    de-duplicates for an hour) never repeat across runs started at least a second apart.
    """

    id_base: int
    salt: int
    uuid_base: int
    unix: int

    @classmethod
    def new(cls) -> RunIds:
        return cls(
            id_base=time.time_ns() // 1000,
            salt=_secrets.randbits(32),
            uuid_base=_secrets.randbits(128),
            unix=int(time.time()),
        )

    @classmethod
    def fixed(cls, index: int = 0) -> RunIds:
        """The same ids every time (the instructions measure: a different id is a different
        string to hash and compare); ``index`` keeps scenarios on one target apart."""
        return cls(
            id_base=1_700_000_000_000_000 + index * 10_000_000,
            salt=0x5EED0000 + index * 0x10000,
            uuid_base=0x0123456789ABCDEF0123456789ABCDEF + index * 10_000_000,
            unix=1_700_000_000,
        )

    def pending_id(self, seq: int) -> str:
        """The ``{{ pending_id }}`` of request ``seq``: seed exactly these before the run."""
        return f"telegram-{self.unix}-{(self.salt + 0x80000000 + seq) & _M32:08x}"


def _seq(run: RunIds, seq: int) -> bytes:
    return b"%d" % seq


def _unique_int(run: RunIds, seq: int) -> bytes:
    return b"%d" % (run.id_base + seq)


def _now(run: RunIds, seq: int) -> bytes:
    return b"%d" % time.time()


def _uuid(run: RunIds, seq: int) -> bytes:
    # A version-4-shaped UUID unique per seq; uuid.uuid4() would cost ~2 µs per request.
    h = b"%032x" % ((run.uuid_base + seq) & _M128)
    return b"%s-%s-4%s-%c%s-%s" % (h[:8], h[8:12], h[13:16], b"89ab"[h[16] & 3], h[17:20], h[20:])


def _request_id(run: RunIds, seq: int) -> bytes:
    return b"telegram-%d-%08x" % (time.time(), (run.salt + seq) & _M32)


def _pending_id(run: RunIds, seq: int) -> bytes:
    return run.pending_id(seq).encode()


PRODUCERS: dict[str, Callable[[RunIds, int], bytes]] = {
    "seq": _seq,
    "uuid": _uuid,
    "chat_id": _unique_int,
    "update_id": _unique_int,
    "request_id": _request_id,
    "pending_id": _pending_id,
    "now": _now,
}


class RequestContext:
    """Per-process source of per-request values. Call :meth:`next` once per request, then
    render every template of that request with this context (values stay consistent)."""

    __slots__ = ("run", "process_index", "processes", "seq", "values", "_k", "_producers")

    def __init__(
        self,
        process_index: int = 0,
        processes: int = 1,
        run: RunIds | None = None,
        needs: Iterable[str] | None = None,
    ) -> None:
        if not 0 <= process_index < processes:
            raise ValueError(f"process_index {process_index} not in 0..{processes - 1}")
        self.run = run or RunIds.new()
        self.process_index = process_index
        self.processes = processes
        self.seq = -1
        self.values: dict[str, bytes] = {}
        self._k = 0
        names = DYNAMIC if needs is None else [n for n in DYNAMIC if n in set(needs)]
        self._producers = tuple((n, PRODUCERS[n]) for n in names)

    def next(self) -> dict[str, bytes]:
        """Advance to the next request; returns (and keeps in ``values``) its values."""
        seq = self.process_index + self._k * self.processes
        self._k += 1
        self.seq = seq
        run = self.run
        self.values = {name: fn(run, seq) for name, fn in self._producers}
        return self.values


# -- compiled templates ----------------------------------------------------------------


class Template:
    """Bytes with slots: ``render(values)`` joins the static parts and the slot values."""

    __slots__ = ("parts", "slots", "needs")

    def __init__(self, pieces: Iterable[bytes | tuple[str]]) -> None:
        parts: list[bytes] = []
        slots: list[tuple[int, str]] = []
        for p in pieces:
            if isinstance(p, tuple):
                slots.append((len(parts), p[0]))
                parts.append(b"")
            elif parts and (not slots or slots[-1][0] != len(parts) - 1):
                parts[-1] += p  # merge adjacent static pieces
            else:
                parts.append(p)
        self.parts: tuple[bytes, ...] = tuple(parts)
        self.slots: tuple[tuple[int, str], ...] = tuple(slots)
        self.needs: frozenset[str] = frozenset(n for _, n in slots)

    def render(self, values: Mapping[str, bytes]) -> bytes:
        if not self.slots:
            return self.parts[0] if self.parts else b""
        parts = list(self.parts)
        for i, name in self.slots:
            parts[i] = values[name]
        return b"".join(parts)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.parts, self.slots, self.needs)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.parts, self.slots, self.needs = state


class _Statics:
    """Resolves secrets.* and env.* once; a missing one is a ScenarioError at its place."""

    def __init__(self, scenario: Scenario, secrets: Any, environ: Mapping[str, str]) -> None:
        self.scenario = scenario
        self.secrets = _as_mapping(secrets)
        self.environ = environ

    def fail(self, key: str, message: str) -> NoReturn:
        sc = self.scenario
        raise ScenarioError.single(sc.display_path, _line(sc, key), key, message)

    def value(self, name: str, key: str) -> str:
        if name.startswith("env."):
            var = name[4:]
            if var not in self.environ:
                self.fail(key, f"environment variable {var} is not set")
            return self.environ[var]
        secret = name[8:]
        if secret not in self.secrets:
            self.fail(key, f"secret {secret} is not available for this target")
        return str(self.secrets[secret])


def _as_mapping(secrets: Any) -> Mapping[str, Any]:
    if secrets is None:
        return {}
    if isinstance(secrets, Mapping):
        return secrets
    if dataclasses.is_dataclass(secrets) and not isinstance(secrets, type):
        return dataclasses.asdict(secrets)
    return {s: getattr(secrets, s) for s in SECRETS if hasattr(secrets, s)}


def _line(sc: Scenario, key: str) -> int | None:
    # The key itself, else its nearest recorded parent.
    while key:
        if key in sc.source_lines:
            return sc.source_lines[key]
        key = key.rsplit(".", 1)[0] if "." in key else (key.rsplit("[", 1)[0] if "[" in key else "")
    return None


def compile_text(text: str, key: str, statics: _Statics, forbid: str | None = None) -> Template:
    """``forbid``: a regex no resolved static value may match (line breaks in a header)."""
    pieces: list[bytes | tuple[str]] = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        pieces.append(text[pos : m.start()].encode())
        name = m.group(1)
        if name in PRODUCERS:
            pieces.append((name,))
        else:
            value = statics.value(name, key)
            if forbid and re.search(forbid, value):
                statics.fail(
                    key, f"{{{{ {name} }}}} resolves to a value with whitespace or line breaks"
                )
            pieces.append(value.encode())
        pos = m.end()
    pieces.append(text[pos:].encode())
    return Template([p for p in pieces if p != b""])


_MARK = re.compile('"\ue000N(\\d+)\ue001"|\ue000S(\\d+)\ue001')


def compile_json(value: Any, key: str, statics: _Statics) -> Template:
    """Dump ``value`` once with markers for the dynamic placeholders, then split."""
    names: list[str] = []

    def mark(kind: str, name: str) -> str:
        names.append(name)
        return f"\ue000{kind}{len(names) - 1}\ue001"

    def walk(v: Any, k: str) -> Any:
        if isinstance(v, dict):
            return {kk: walk(vv, f"{k}.{kk}") for kk, vv in v.items()}
        if isinstance(v, list):
            return [walk(vv, f"{k}[{i}]") for i, vv in enumerate(v)]
        if not isinstance(v, str) or "{{" not in v:
            return v
        whole = whole_placeholder(v)
        if whole in NUMERIC:
            return mark("N", whole)
        out = []
        pos = 0
        for m in PLACEHOLDER.finditer(v):
            out.append(v[pos : m.start()])
            name = m.group(1)
            out.append(mark("S", name) if name in PRODUCERS else statics.value(name, k))
            pos = m.end()
        out.append(v[pos:])
        return "".join(out)

    text = json.dumps(walk(value, key), ensure_ascii=False, separators=(",", ":"))
    pieces: list[bytes | tuple[str]] = []
    pos = 0
    for m in _MARK.finditer(text):
        pieces.append(text[pos : m.start()].encode())
        pieces.append((names[int(m.group(1) or m.group(2))],))
        pos = m.end()
    pieces.append(text[pos:].encode())
    return Template([p for p in pieces if p != b""])


# -- requests --------------------------------------------------------------------------


class CompiledRequest:
    """A scenario's request, compiled. ``render(ctx)`` gives path, headers and body;
    ``wire(ctx)`` the whole HTTP/1.1 request (needs ``host``)."""

    __slots__ = ("method", "path", "headers", "body", "needs", "host", "_head")

    def __init__(
        self,
        method: str,
        path: Template,
        headers: tuple[tuple[bytes, Template], ...],
        body: Template,
        host: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.needs: frozenset[str] = path.needs.union(body.needs, *(t.needs for _, t in headers))
        self.host = host
        self._head: Template | None = None
        if host is not None:
            pieces: list[bytes | tuple[str]] = [method.encode() + b" "]
            pieces += _pieces_of(path)
            pieces.append(b" HTTP/1.1\r\n")
            if not any(n.lower() == b"host" for n, _ in headers):
                pieces.append(b"Host: " + host.encode("idna") + b"\r\n")
            for name, value in headers:
                pieces.append(name + b": ")
                pieces += _pieces_of(value)
                pieces.append(b"\r\n")
            pieces.append(b"Content-Length: ")
            self._head = Template(pieces)

    @property
    def dynamic(self) -> bool:
        """False when every request is the same bytes."""
        return bool(self.needs)

    def context(
        self, process_index: int = 0, processes: int = 1, run: RunIds | None = None
    ) -> RequestContext:
        return RequestContext(process_index, processes, run, self.needs)

    def render(self, ctx: RequestContext) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        v = ctx.values
        return (
            self.path.render(v),
            [(n, t.render(v)) for n, t in self.headers],
            self.body.render(v),
        )

    def wire(self, ctx: RequestContext) -> bytes:
        if self._head is None:
            raise ValueError("compile the request with host=... to render wire bytes")
        v = ctx.values
        body = self.body.render(v)
        return b"".join((self._head.render(v), b"%d\r\n\r\n" % len(body), body))

    def request_factory(self, run: RunIds | None = None) -> RequestFactory:
        """``factory(process_index, processes)`` for ``perfaudit.load`` (``LoadConfig.request_factory``)."""
        return RequestFactory(self, run or RunIds.new())


def _pieces_of(t: Template) -> list[bytes | tuple[str]]:
    slot_at = dict(t.slots)
    return [(slot_at[i],) if i in slot_at else p for i, p in enumerate(t.parts)]


class RequestFactory:
    """Picklable; called in each generator process. Returns fixed bytes when the request
    never changes, else a callable giving the next request's bytes."""

    def __init__(self, request: CompiledRequest, run: RunIds) -> None:
        self.request = request
        self.run = run

    def __getstate__(self) -> dict[str, Any]:
        r = self.request
        return {"run": self.run, "args": (r.method, r.path, r.headers, r.body, r.host)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.run = state["run"]
        self.request = CompiledRequest(*state["args"])

    def __call__(self, process_index: int, processes: int) -> bytes | Callable[[], bytes]:
        req = self.request
        ctx = req.context(process_index, processes, self.run)
        if not req.dynamic:
            ctx.next()
            return req.wire(ctx)
        nxt, wire = ctx.next, req.wire

        def next_request() -> bytes:
            nxt()
            return wire(ctx)

        return next_request


def compile_request(
    scenario: Scenario,
    secrets: Any = None,
    *,
    host: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CompiledRequest:
    """Compile ``scenario.request``. ``secrets``: a mapping or an object with the
    ``secrets.*`` names as attributes (the stack's ``Secrets``); ``host``: the Host header
    value (``127.0.0.1:8000``) needed by :meth:`CompiledRequest.wire`. A missing env
    variable or secret raises ScenarioError naming the file, line and key."""
    spec = scenario.request
    if spec is None:
        raise ValueError(f"scenario {scenario.name!r} (kind {scenario.kind}) has no request")
    st = _Statics(scenario, secrets, os.environ if environ is None else environ)
    path = compile_text(spec.path, "request.path", st, forbid=r"\s")
    headers = tuple(
        (
            name.encode("latin-1"),
            compile_text(value, f"request.headers.{name}", st, forbid=r"[\r\n]"),
        )
        for name, value in _headers(spec)
    )
    return CompiledRequest(spec.method, path, headers, _body(spec, st), host)


def _headers(spec: RequestSpec) -> list[tuple[str, str]]:
    names = {n.lower() for n, _ in spec.headers}
    extra = []
    if spec.json is not None and "content-type" not in names:
        extra.append(("Content-Type", "application/json"))
    elif spec.body_file is not None and "content-type" not in names:
        import mimetypes

        ctype = mimetypes.guess_type(spec.body_file.name)[0]
        if ctype:
            extra.append(("Content-Type", ctype))
    return [*spec.headers, *extra]


def _body(spec: RequestSpec, st: _Statics) -> Template:
    if spec.json is not None:
        return compile_json(spec.json, "request.json", st)
    if spec.body is not None:
        return compile_text(spec.body, "request.body", st)
    if spec.body_file is not None:
        data = spec.body_file.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return Template([data])  # binary: sent as is
        return compile_text(text, "request.body_file", st)
    return Template([])


def compile_job(
    scenario: Scenario, secrets: Any = None, *, environ: Mapping[str, str] | None = None
) -> Template:
    """Compile the job kind's update: ``render(ctx.values)`` gives its JSON bytes."""
    if scenario.job is None:
        raise ValueError(f"scenario {scenario.name!r} (kind {scenario.kind}) has no job")
    st = _Statics(scenario, secrets, os.environ if environ is None else environ)
    return compile_json(dict(scenario.job.update), "job.update", st)
