"""pyinstrument: in-process, through the ASGI hook (:mod:`perfaudit.profile.asgi`), started
and stopped over HTTP on the steady window.

The target gets a start of its own with ``PERFAUDIT_PYINSTRUMENT=1`` (the hook's switch) and
``PERFAUDIT_LOOP=asyncio``: pyinstrument loses await attribution under uvloop (measured), so
its figures come from the asyncio loop and the result says so. The hook returns the session;
perfaudit keeps it (``.pyisession``) and renders the HTML and JSON from it here, so the service
only serializes. Measured here: ~0.45 of unprofiled throughput (whole process).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from perfaudit.profile import hotspots
from perfaudit.profile.asgi import ENV_VAR, LOOP_ENV_VAR, PREFIX
from perfaudit.profile.base import Capture, CaptureContext, Clock, Launch, Problem, result
from perfaudit.profile.loopthread import SourceReader, driver_index, read_source
from perfaudit.profile.preflight import module_problem
from perfaudit.profile.pyspy import classifier_for
from perfaudit.profile.spec import ProfileSpec

if TYPE_CHECKING:
    from perfaudit.profile.session import TargetSessionLike

NAME = "pyinstrument"
STOP_TIMEOUT_S = 120.0
HOOK_FIX = (
    "wrap the ASGI app with perfaudit.profile.asgi.wrap(app) (it is on when "
    f"{ENV_VAR}=1, which perfaudit sets when it starts the service); see the README, Profiling"
)


def preflight(spec: ProfileSpec) -> list[Problem]:
    return module_problem(NAME, "pyinstrument")


def parse_identifier(info: str) -> hotspots.Frame:
    """pyinstrument's frame info ``name\\0file\\0firstline[\\1cClass][\\1lLine]...``."""
    ident, _, attrs = info.partition("\x01")
    parts = ident.split("\x00")
    if len(parts) < 3:
        return hotspots.Frame(parts[0])
    name, file, first = parts[0], parts[1], parts[2]
    line = int(first) if first.isdigit() else None
    for attr in attrs.split("\x01") if attrs else ():
        if attr.startswith("c") and attr[1:]:
            name = f"{attr[1:]}.{name}"
        elif attr.startswith("l") and attr[1:].isdigit():
            line = int(attr[1:])
    return hotspots.Frame(name, file, line)


def stacks_of(session_json: dict[str, Any]) -> list[tuple[hotspots.Stack, float]]:
    return [
        (tuple(parse_identifier(f) for f in stack), float(t))
        for stack, t in session_json.get("frame_records") or []
    ]


AWAIT_FRAME = "[await]"  # pyinstrument's leaf for time a request's task spent awaiting
TOP_AWAITS = 20
_MERGED = re.compile(r"(\d+) requests merged")


def awaits_of(
    session_json: dict[str, Any],
    classifier: hotspots.Classifier,
    *,
    top: int = TOP_AWAITS,
    source: SourceReader = read_source,
) -> dict[str, Any]:
    """Await time per own-code line (``awaits``), from a requests-mode session.

    In requests mode pyinstrument ends a stack with ``[await]`` while the request's task
    waits, under the coroutine frames that awaited. Every own frame on such a stack gets the
    time at its current line, not only the innermost: ``await a(); await b()`` in a handler
    whose ``a`` and ``b`` await the network shows as two lines of the handler, which is what
    sequential-awaits looks for. ``share`` is of the summed request time (the session's
    duration in requests mode), the same basis for every line."""
    per_line: dict[tuple[str, str, int], float] = defaultdict(float)
    # What each line's awaits went into (the package of the callee): an HTTP client there
    # tells an upstream's time from Redis's or a sleep's.
    into: dict[tuple[str, str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for stack, t in session_json.get("frame_records") or []:
        if not stack or stack[-1] != AWAIT_FRAME:
            continue
        frames = [parse_identifier(info) for info in stack[:-1]]
        # Only what runs on the loop: the frames below it (a main() calling uvicorn.run, the
        # module) would get every await of every request.
        d = driver_index(tuple(frames))
        seen: set[tuple[str, str, int]] = set()  # a recursive stack counts a line once
        on_loop = frames[d + 1 :] if d is not None else frames
        for i, f in enumerate(on_loop):
            if f.line is None or classifier.category(f) != "own":
                continue
            key = (f.function, f.file, f.line)
            if key not in seen:
                seen.add(key)
                per_line[key] += float(t)
                callee = on_loop[i + 1] if i + 1 < len(on_loop) else None
                into[key][_package(callee, classifier)] += float(t)
    total = float(session_json.get("duration") or 0.0)
    m = _MERGED.search(str(session_json.get("target_description") or ""))
    ranked = sorted(per_line.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "requests": int(m.group(1)) if m else None,
        "request_seconds": round(total, 4),
        "sites": [
            {
                "function": fn,
                "file": file,
                "line": line,
                "code": source(file, line),
                "seconds": round(t, 4),
                "share": round(t / total, 4) if total else 0.0,
                "into": [
                    {"package": pkg, "seconds": round(sec, 4)}
                    for pkg, sec in sorted(into[(fn, file, line)].items(), key=lambda kv: -kv[1])[
                        :3
                    ]
                ],
            }
            for (fn, file, line), t in ranked
        ],  # fmt: skip
    }


def _package(frame: hotspots.Frame | None, classifier: hotspots.Classifier) -> str:
    """``httpx``, ``redis``, ``asyncio`` … for a callee frame; ``own`` for the service's code."""
    if frame is None:
        return "?"
    if classifier.category(frame) == "own":
        return "own"
    path = frame.file.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-2].startswith("python3"):
        return parts[-1].removesuffix(".py")  # a standard-library module
    return parts[-2] if len(parts) >= 2 else (parts[-1] if parts else frame.function)


class PyinstrumentCapture(Capture):
    def __init__(self, spec: ProfileSpec, ctx: CaptureContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.clock = Clock()
        self.lead_s = 0.0
        self.min_warmup_s = 0.0
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.started: dict[str, Any] = {}
        self.session: dict[str, Any] | None = None
        self.base_url = ""
        target = ctx.target
        if target.is_reference or target.start:
            self.launch: Launch | None = Launch(env={ENV_VAR: "1", LOOP_ENV_VAR: "asyncio"})
        else:
            self.launch = None  # a service perfaudit does not start: the hook must be on already
            self.notes.append(
                f"the target is not started by perfaudit: it must run with {ENV_VAR}=1 "
                f"(and {LOOP_ENV_VAR}=asyncio) for the hook to answer"
            )

    def start(self, session: TargetSessionLike) -> None:
        self.clock.window()
        self.base_url = session.base_url.rstrip("/")
        body = {"mode": self.spec.get("mode"), "interval": self.spec.get("interval")}
        try:
            r = httpx.post(f"{self.base_url}{PREFIX}/start", json=body, timeout=10)
        except httpx.HTTPError as exc:
            self.errors.append(f"the pyinstrument hook did not answer: {exc}")
            return
        if r.status_code == 404:
            self.errors.append(f"the service has no pyinstrument hook at {PREFIX}: {HOOK_FIX}")
            return
        if r.status_code != 200:
            self.errors.append(f"the pyinstrument hook refused to start: {r.status_code} {r.text}")
            return
        self.started = r.json()
        self.clock.mark_started()

    def stop(self) -> None:
        self.clock.mark_stopped()
        if not self.started:
            return
        try:
            r = httpx.post(f"{self.base_url}{PREFIX}/stop", timeout=STOP_TIMEOUT_S)
            r.raise_for_status()
            self.session = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.errors.append(f"the pyinstrument hook did not return the session: {exc}")

    def abort(self) -> None:
        self.started = {}

    def collect(self) -> dict[str, Any]:
        loop = self.started.get("loop")
        if loop == "asyncio":
            self.notes.append(
                "the service ran on the asyncio event loop while pyinstrument was on "
                "(pyinstrument loses await attribution under uvloop); its latency and "
                "throughput are those of the asyncio loop plus the profiler"
            )
        elif loop:
            self.notes.append(
                f"the service ran on {loop}: pyinstrument's await attribution is lost there; "
                f"start it on the asyncio loop ({LOOP_ENV_VAR}=asyncio)"
            )
        if self.session is None:
            return result(self.spec, "failed", self.ctx, [], window=self.clock.to_dict(),
                          errors=self.errors, notes=self.notes)  # fmt: skip
        out = self.ctx.out_dir
        out.mkdir(parents=True, exist_ok=True)
        raw = out / "pyinstrument.pyisession"
        raw.write_text(json.dumps(self.session))
        files = [raw, *self._render(out)]
        stacks = stacks_of(self.session)
        info: dict[str, Any] = {
            "pid": self.started.get("pid"),
            "loop": loop,
            "mode": self.started.get("mode"),
            "samples": self.session.get("sample_count"),
            "profiled_seconds": round(float(self.session.get("duration") or 0.0), 3),
            "cpu_seconds": round(float(self.session.get("cpu_time") or 0.0), 3),
            "artifacts": [str(p.relative_to(self.ctx.run_dir)) for p in files if p.exists()],
        }
        classifier = classifier_for(self.ctx.target)
        if stacks:
            info["hotspots"] = hotspots.hotspots(stacks, classifier)
            if self.started.get("mode") == "requests":
                info["awaits"] = awaits_of(self.session, classifier)
        else:
            self.errors.append("the session holds no samples (did any request arrive?)")
        if self.started.get("mode") == "requests":
            self.notes.append(
                "mode requests: shares are of the time requests took (awaits included), "
                "summed over concurrent requests"
            )
        return result(
            self.spec, "ok" if stacks else "failed", self.ctx, files,
            window=self.clock.to_dict(), processes={"service": info},
            hotspots={"process": "service", **info.get("hotspots", {})},
            errors=self.errors, notes=self.notes,
        )  # fmt: skip

    def _render(self, out: Path) -> list[Path]:
        from pyinstrument.renderers import HTMLRenderer, JSONRenderer
        from pyinstrument.session import Session

        assert self.session is not None
        html, js = out / "pyinstrument.html", out / "pyinstrument.json"
        try:
            session = Session.from_json(self.session)
            html.write_text(HTMLRenderer().render(session))
            js.write_text(JSONRenderer().render(session))
        except Exception as exc:  # noqa: BLE001 - the raw session is kept either way
            self.errors.append(f"rendering the pyinstrument session failed: {exc}")
        return [html, js]


def prepare(spec: ProfileSpec, ctx: CaptureContext) -> PyinstrumentCapture:
    return PyinstrumentCapture(spec, ctx)
