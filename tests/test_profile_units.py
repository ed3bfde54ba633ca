"""The profiling pieces that need no target: option parsing, scenario keys, hotspots, flame
graphs, memray stats, preflight, process discovery and the in-process pyinstrument hook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from perfaudit.profile import ProfileSpecError, check, make_spec, parse_cli
from perfaudit.profile import preflight as preflight_mod
from perfaudit.profile.asgi import PREFIX, PerfauditProfilingMiddleware, wrap
from perfaudit.profile.flamegraph import render_svg, speedscope
from perfaudit.profile.hotspots import Classifier, Frame, hotspots, parse_collapsed, parse_frame
from perfaudit.profile.memray import rewrite_start
from perfaudit.profile.memray_stats import summarize
from perfaudit.profile.overhead import ratios
from perfaudit.profile.processes import server_processes
from perfaudit.profile.pyinstrument import parse_identifier, stacks_of
from perfaudit.scenario import ScenarioError, load_scenario

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
APP = "/srv/app/handlers.py"
COLLAPSED = f"""\
<module> ({APP}:1);main ({APP}:5);Runner.run ({STDLIB}/asyncio/runners.py:118) 30
<module> ({APP}:1);main ({APP}:5);Runner.run ({STDLIB}/asyncio/runners.py:118);handle ({SITE}/starlette/routing.py:70);burn ({APP}:20) 50
<module> ({APP}:1);main ({APP}:5);Runner.run ({STDLIB}/asyncio/runners.py:118);handle ({SITE}/starlette/routing.py:70);burn ({APP}:21) 10
<module> ({APP}:1);main ({APP}:5);Runner.run ({STDLIB}/asyncio/runners.py:118);handle ({SITE}/starlette/routing.py:71) 10
"""


# -- options ------------------------------------------------------------------------------
def test_profile_option_syntax() -> None:
    specs = parse_cli(["py-spy:idle,gil,rate=250,memray", "pyinstrument:mode=thread"])
    assert specs is not None
    assert [s.name for s in specs] == ["py-spy", "memray", "pyinstrument"]
    spy = specs[0]
    assert spy.get("idle") is True and spy.get("gil") is True and spy.get("rate") == 250
    assert spy.get("native") is False  # defaults fill in
    assert spy.label() == "py-spy:gil,idle,rate=250"
    assert specs[2].get("mode") == "thread"
    assert parse_cli(None) is None and parse_cli(["none"]) == ()
    for bad, words in (
        (["pyspy"], "did you mean 'py-spy'"),
        (["py-spy:rate=0"], "rate must be an integer from 1 to 1000"),
        (["py-spy:speed"], "unknown option 'speed'"),
        (["memray:method=gdb"], "one of auto, attach, run"),
        (["py-spy:native,nonblocking"], "native cannot be combined"),
    ):
        with pytest.raises(ProfileSpecError, match=words):
            parse_cli(bad)


def _scenario(tmp: Path, profile: str) -> Path:
    f = tmp / "s.yaml"
    f.write_text(f"name: s\nrequest: {{path: /}}\nload: {{rate: 5}}\nduration: 1s\n{profile}\n")
    return f


def test_scenario_profile_key(tmp_path: Path) -> None:
    sc = load_scenario(_scenario(tmp_path, "profile: [py-spy, 'memray:method=run']"))
    assert sc.profile == (make_spec("py-spy"), make_spec("memray", {"method": "run"}))
    sc = load_scenario(
        _scenario(tmp_path, "profile:\n  py-spy: {idle: true, rate: 200}\n  memray: false\n")
    )
    assert sc.profile == (make_spec("py-spy", {"idle": True, "rate": 200}),)
    assert sc.to_dict()["profile"] == [{"name": "py-spy", "options": {"idle": True, "rate": 200}}]
    with pytest.raises(ScenarioError) as err:
        load_scenario(_scenario(tmp_path, "profile:\n  py-spy: {rate: 5000}\n  pyinstr: {}\n"))
    text = str(err.value)
    assert "s.yaml:6: profile.py-spy.rate: must be an integer >= 1 and <= 1000" in text
    assert "s.yaml:7: profile.pyinstr: unknown key" in text


# -- hotspots, flame graphs -----------------------------------------------------------------
def test_collapsed_stacks_to_hotspots() -> None:
    assert parse_frame("burn (/a/b.py:20)") == Frame("burn", "/a/b.py", 20)
    assert parse_frame("epoll_wait") == Frame("epoll_wait")
    stacks = parse_collapsed("thread (1): MainThread;" + COLLAPSED.splitlines()[1] + "\n")
    assert stacks[0][0][0].function == "<module>" and stacks[0][1] == 50.0  # label dropped
    hs = hotspots(parse_collapsed(COLLAPSED), Classifier())
    assert hs["total"] == 100
    top = hs["self"][0]
    assert (top["function"], top["file"], top["line"]) == ("burn", APP, 20)
    assert top["share"] == 0.6 and top["category"] == "own"  # both lines of burn, most at 20
    by = {(e["function"]): e for e in hs["self"]}
    assert by["Runner.run"]["category"] == "waiting"  # the native loop, as py-spy sees it
    assert by["handle"]["category"] == "library"
    assert hs["by_category"] == {"own": 0.6, "library": 0.1, "waiting": 0.3}
    cum = {e["function"]: e for e in hs["cumulative"]}
    assert cum["main"]["share"] == 1.0 and cum["main"]["category"] == "own"
    assert cum["handle"]["share"] == 0.7 and cum["handle"]["line"] == 70
    assert cum["Runner.run"]["category"] == "library"  # only its own time is waiting


def test_await_time_is_attributed_to_the_awaiting_function() -> None:
    records = {
        "frame_records": [
            [["handler\x00/srv/app/h.py\x0010\x01l12", "[await]"], 0.3],
            [["handler\x00/srv/app/h.py\x0010\x01l11", "burn\x00/srv/app/h.py\x002"], 0.1],
        ]
    }
    assert parse_identifier("get\x00/x/y.py\x005\x01cStore\x01l9") == Frame(
        "Store.get", "/x/y.py", 9
    )
    hs = hotspots(stacks_of(records), Classifier())
    first = hs["self"][0]
    assert first["function"] == "handler [await]" and first["category"] == "waiting"
    assert hs["by_category"]["waiting"] == 0.75 and hs["by_category"]["own"] == 0.25


def test_flame_graph_and_speedscope() -> None:
    stacks = parse_collapsed(COLLAPSED)
    svg = render_svg(stacks, "demo <title>", Classifier())
    root = ET.fromstring(svg)  # well-formed, titles escaped
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("burn (/srv/app/handlers.py) — 60 samples (60.00%)") for t in titles)
    doc = speedscope(stacks, "demo")
    frames = doc["shared"]["frames"]  # type: ignore[index]
    [profile] = doc["profiles"]  # type: ignore[misc]
    assert profile["endValue"] == 100 and len(profile["samples"]) == 4
    assert {"name": "burn", "file": APP, "line": 20} in frames


def test_memray_stats_summary() -> None:
    stats = {
        "total_num_allocations": 10,
        "total_bytes_allocated": 4 * 1024 * 1024,
        "top_allocations_by_size": [
            {"location": f"send:{SITE}/uvicorn/h.py:524", "size": 3 * 1024 * 1024},
            {"location": f"hot:{APP}:55", "size": 1024 * 1024},
        ],
        "top_allocations_by_count": [{"location": f"hot:{APP}:55", "count": 7}],
        "metadata": {"peak_memory": 2 * 1024 * 1024, "start_time": "t0", "end_time": "t1"},
    }
    s = summarize(stats, Classifier())
    assert s["peak_mb"] == 2.0 and s["total_allocated_mb"] == 4.0 and s["allocations"] == 10
    first, second = s["top_allocators"]
    assert (first["function"], first["line"], first["category"], first["share"]) == (
        "send", 524, "library", 0.75,
    )  # fmt: skip
    assert second["category"] == "own" and s["top_by_count"][0]["count"] == 7


def test_start_commands_are_rewritten_for_memray_run(tmp_path: Path) -> None:
    out = tmp_path / "m.bin"
    r = rewrite_start("python3 app.py --port ${PORT:-8000}", out, native=False)
    assert r == f"python3 -m memray run --force --quiet -o {out} app.py --port ${{PORT:-8000}}"
    assert rewrite_start("python -m uvicorn app:app", out, True).endswith(
        "--native -m uvicorn app:app"
    )
    script = tmp_path / "serve"
    script.write_text(f"#!{sys.executable}\nprint('hi')\n")
    script.chmod(0o755)
    r = rewrite_start(f"{script} --workers 1", out, False)
    assert r == f"{sys.executable} -m memray run --force --quiet -o {out} {script} --workers 1"
    for cannot in ("cd app && python x.py", "python -u x.py", "/bin/sleep 5", "node x.js"):
        assert rewrite_start(cannot, out, False) is None, cannot


def test_overhead_ratios() -> None:
    base = {"rps": 100.0, "p50_ms": 2.0, "p99_ms": 10.0}
    r = ratios(base, {"rps": 96.0, "p50_ms": 3.0, "p99_ms": 0.0})
    assert (r["rps_ratio"], r["p50_ratio"], r["p99_ratio"]) == (0.96, 1.5, 0.0)
    assert ratios({"rps": 0}, {"rps": 5})["rps_ratio"] is None


# -- preflight, processes ----------------------------------------------------------------
def test_preflight_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preflight_mod.PY_SPY_ENV, "/nonexistent/py-spy")
    monkeypatch.setenv(preflight_mod.LLDB_ENV, "")
    found = check([make_spec("py-spy"), make_spec("memray", {"method": "attach"}),
                       make_spec("memray")])  # fmt: skip
    [spy], attach, auto = found.values()
    assert spy.blocking and "py-spy binary was not found" in spy.message
    assert any(p.blocking and "lldb" in p.message and "apt-get install -y lldb" in p.fix
               for p in attach)  # fmt: skip
    assert [p.blocking for p in auto] == [False] and "memray run" in auto[0].message
    # A container without SYS_PTRACE, Yama restrictions:
    monkeypatch.setattr(preflight_mod, "_cap_eff", lambda: 0)
    monkeypatch.setattr(preflight_mod, "_ptrace_scope", lambda: 1)
    [p] = preflight_mod.ptrace_problems("py-spy")
    assert p.blocking and "ptrace_scope=1" in p.message and "SYS_PTRACE" in p.fix
    monkeypatch.setattr(preflight_mod, "_ptrace_scope", lambda: None)
    monkeypatch.setattr(preflight_mod.os, "geteuid", lambda: 0)
    [p] = preflight_mod.ptrace_problems("py-spy")
    assert not p.blocking and "--cap-add SYS_PTRACE" in p.fix
    monkeypatch.setattr(preflight_mod, "_cap_eff", lambda: 1 << preflight_mod.CAP_SYS_PTRACE)
    assert preflight_mod.ptrace_problems("py-spy") == []


def test_server_workers_are_found_under_a_master() -> None:
    code = (
        "import subprocess, sys, time\n"
        "ps = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])"
        " for _ in range(2)]\n"
        "print('up', flush=True); time.sleep(30)\n"
    )
    master = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert master.stdout is not None and master.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 5
        found: dict[str, int] = {}
        while time.monotonic() < deadline and len(found) < 2:
            found = server_processes(master.pid)
            time.sleep(0.05)
        assert len(found) == 2 and master.pid not in found.values()
        assert all(name.startswith("service-") for name in found)
    finally:
        import psutil

        for child in psutil.Process(master.pid).children(recursive=True):
            child.kill()
        master.kill()
        master.wait()
    lone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert server_processes(lone.pid) == {"service": lone.pid}
    finally:
        lone.kill()
        lone.wait()


# -- the in-process pyinstrument hook ------------------------------------------------------
def burn_in_request(seconds: float = 0.003) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


async def _slow(request: object) -> JSONResponse:
    burn_in_request()
    await asyncio.sleep(0.005)
    return JSONResponse({"ok": True})


@pytest.mark.parametrize("mode", ["requests", "thread"])
def test_asgi_hook_profiles_requests_between_start_and_stop(mode: str) -> None:
    assert wrap(_slow, env={}) is _slow  # off unless PERFAUDIT_PYINSTRUMENT is set
    app = wrap(Starlette(routes=[Route("/slow", _slow)]), env={"PERFAUDIT_PYINSTRUMENT": "1"})
    assert isinstance(app, PerfauditProfilingMiddleware)

    async def main() -> dict:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/slow")  # before start: not profiled
            r = await client.post(f"{PREFIX}/start", json={"mode": mode})
            assert r.status_code == 200 and r.json()["loop"] == "asyncio"
            assert (await client.post(f"{PREFIX}/start")).status_code == 409
            await asyncio.gather(*(client.get("/slow") for _ in range(10)))
            r = await client.post(f"{PREFIX}/stop")
            assert r.status_code == 200
            return r.json()

    session = asyncio.run(main())
    hs = hotspots(stacks_of(session), Classifier(), top=200)  # the client's frames are in it too
    names = {e["function"] for e in hs["cumulative"]}
    assert "burn_in_request" in names
    if mode == "requests":
        assert "merged" in session["target_description"]
        assert any(e["function"].endswith("[await]") for e in hs["self"])  # awaits attributed
    json.dumps(session)  # what the hook sends is plain JSON
