"""`perfaudit run --profile` end to end: real profilers on real processes.

The small app in tests/apps/hot_app.py has a known hot function (``burn_cpu_hot``, per
request) and a function that only runs at start-up (``startup_only_work``, ~0.5 s): a profile
of the steady window must name the first, with its file, and never show the second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from perfaudit import results
from perfaudit.stack.net import free_port

PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]
HOT_APP = Path(__file__).parent / "apps" / "hot_app.py"


def hot_scenario(tmp: Path, extra: str = "") -> Path:
    port = free_port()
    f = tmp / "hot.yaml"
    f.write_text(
        f"""name: hot
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} {HOT_APP} --port {port}"
  ready_path: /health
request:
  path: /hot
load:
  rate: 100
warmup: 1s
duration: 2s
{extra}"""
    )
    return f


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 150) -> Any:
    return subprocess.run(
        [*PERFAUDIT, "run", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def entry_of(stdout: str) -> tuple[dict[str, Any], Path]:
    path = Path(json.loads(stdout)["results"])
    [entry] = results.read(path).scenarios
    return entry, path.parent


def assert_artifacts(profile: dict[str, Any], run_dir: Path) -> None:
    assert profile["artifacts"], profile
    for rel in profile["artifacts"]:
        assert rel.startswith("profiles/hot/") or rel.startswith("profiles/webhook-text/"), rel
        assert (run_dir / rel).stat().st_size > 0, rel


def names(hotspots: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["function"]: e for e in (*hotspots["self"], *hotspots["cumulative"])}


def test_each_profiler_finds_the_hot_function_in_the_steady_window(tmp_path: Path) -> None:
    scenario = hot_scenario(tmp_path)
    r = run(str(scenario), "--profile", "py-spy,pyinstrument,memray", "--out",
            str(tmp_path / "reports"), "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    entry, run_dir = entry_of(r.stdout)
    profiles = entry["profiles"]
    assert {k: v["status"] for k, v in profiles.items()} == dict.fromkeys(
        ("py-spy", "pyinstrument", "memray"), "ok"
    ), json.dumps(profiles, indent=1)[:3000]

    spy = profiles["py-spy"]
    assert_artifacts(spy, run_dir)
    assert {Path(a).suffix for a in spy["artifacts"]} == {".svg", ".json", ".txt"}
    [(proc_name, proc)] = spy["processes"].items()
    assert proc_name == "service" and proc["pid"] == entry["profiled_runs"]["py-spy"]["target"][
        "pids"]["service"]  # fmt: skip
    hot = names(proc["hotspots"])["burn_cpu_hot"]
    assert hot["file"] == str(HOT_APP) and hot["line"] and hot["category"] == "own"
    assert proc["hotspots"]["self"][0]["function"] == "burn_cpu_hot"
    collapsed = next(run_dir / a for a in spy["artifacts"] if a.endswith(".collapsed.txt"))
    assert "burn_cpu_hot" in collapsed.read_text()
    assert "startup_only_work" not in collapsed.read_text()  # start-up is outside the window

    pyi = profiles["pyinstrument"]
    assert_artifacts(pyi, run_dir)
    assert {Path(a).name for a in pyi["artifacts"]} == {
        "pyinstrument.html", "pyinstrument.json", "pyinstrument.pyisession",
    }  # fmt: skip
    service = pyi["processes"]["service"]
    assert service["loop"] == "asyncio"  # PERFAUDIT_LOOP reached the app
    assert any("asyncio event loop" in n for n in pyi["notes"])
    assert names(service["hotspots"])["burn_cpu_hot"]["file"] == str(HOT_APP)
    session = (run_dir / "profiles/hot/pyinstrument.pyisession").read_text()
    assert "burn_cpu_hot" in session and "startup_only_work" not in session

    mem = profiles["memray"]
    assert_artifacts(mem, run_dir)
    assert {Path(a).name for a in mem["artifacts"]} >= {
        "memray.service.bin", "memray.service.stats.json", "memray.service.flamegraph.html",
        "memray.service.leaks.html",
    }  # fmt: skip
    stats = mem["processes"]["service"]
    assert stats["peak_mb"] > 0 and stats["total_allocated_mb"] > 0
    top = stats["top_allocators"][0]  # the hot function's 256 KB buffer, per request
    assert (top["function"], top["file"], top["category"]) == ("burn_cpu_hot", str(HOT_APP), "own")
    assert mem["top_allocators"] == stats["top_allocators"]  # the busiest process, on top

    # Overhead: every profiled run against the unprofiled one; the entry's own figures and
    # verdict are the unprofiled run's, and the profiled figures are marked as such.
    for name in profiles:
        cost = entry["overhead"][name]
        assert {"rps_ratio", "p50_ratio", "p99_ratio"} <= set(cost) and cost["rps_ratio"] > 0.5
        assert cost["unprofiled"]["p50_ms"] == entry["summary"]["p50_ms"]
        run_ = entry["profiled_runs"][name]
        assert run_["profiled"] is True and "checks" not in run_ and "verdict" not in run_
        assert cost["profiled"]["p50_ms"] == run_["summary"]["p50_ms"]
    assert not entry["profiled_runs"]["py-spy"]["own_target"]  # attached to the shared target
    assert entry["profiled_runs"]["pyinstrument"]["own_target"]
    assert entry["verdict"] == "pass" and "profiles" not in entry["summary"]


def test_missing_profiler_warns_and_the_run_goes_on(tmp_path: Path) -> None:
    """py-spy hidden (its binary at a path that does not exist); memray still runs, here
    through `memray run`, chosen in the scenario's profile: key."""
    scenario = hot_scenario(tmp_path, "profile:\n  py-spy: {}\n  memray: {method: run}\n")
    r = run(str(scenario), "--out", str(tmp_path / "reports"),
            env={"PERFAUDIT_PY_SPY": "/nonexistent/py-spy", "COLUMNS": "160"})  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: py-spy (skipped): the py-spy binary was not found" in r.stderr
    assert "Traceback" not in r.stderr
    assert "py-spy skipped" in r.stdout  # the terminal summary says so too
    assert "memray · service" in r.stdout and "peak" in r.stdout
    [path] = (tmp_path / "reports").glob("*/results.json")
    [entry] = results.read(path).scenarios
    spy = entry["profiles"]["py-spy"]
    assert spy["status"] == "skipped" and "PERFAUDIT_PY_SPY" in spy["problems"][0]["fix"]
    assert "py-spy" not in entry["profiled_runs"]
    mem = entry["profiles"]["memray"]
    assert mem["status"] == "ok" and mem["method"] == "run"
    assert mem["window"]["covers_startup"] is True  # memray run cannot exclude start-up
    assert any("start-up and warm-up included" in n for n in mem["notes"])
    assert_artifacts(mem, path.parent)


def test_bad_profile_option_is_a_usage_error(tmp_path: Path) -> None:
    r = run(str(hot_scenario(tmp_path)), "--profile", "py-spy:rate=fast", "--out",
            str(tmp_path / "reports"))  # fmt: skip
    assert r.returncode == 2 and "rate must be an integer" in r.stderr
    assert not (tmp_path / "reports").exists()


def test_reference_service_and_worker_are_both_attached(tmp_path: Path) -> None:
    r = run("-s", "webhook-text", "--duration", "2", "--warmup", "0.5", "--profile", "py-spy",
            "--out", str(tmp_path / "reports"), "--json")  # fmt: skip
    assert r.returncode in (0, 1), r.stdout + r.stderr
    entry, run_dir = entry_of(r.stdout)
    spy = entry["profiles"]["py-spy"]
    assert spy["status"] == "ok", spy
    assert_artifacts(spy, run_dir)
    pids = entry["profiled_runs"]["py-spy"]["target"]["pids"]
    assert set(spy["processes"]) == {"service", "worker"}
    for name, proc in spy["processes"].items():
        assert proc["pid"] == pids[name] and proc["samples"] > 0, (name, proc)
        assert proc["hotspots"]["total"] > 0
        assert (run_dir / f"profiles/webhook-text/py-spy.{name}.svg").stat().st_size > 0
    # The webhook's path through the service's own code shows up in its stacks.
    service = spy["processes"]["service"]["hotspots"]
    assert any("perfaudit/refservice/" in e["file"] for e in service["cumulative"])
