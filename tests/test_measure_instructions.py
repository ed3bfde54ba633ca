"""`perfaudit run --measure instructions` end to end: real valgrind on a real service.

tests/apps/cost_app.py does a known amount of work per request (``/work?n=N``: N identical
loop iterations that allocate nothing); its variants add background work on a timer
(cost_app_tick.py) or a planted function per request (cost_app_planted.py). One run
(the ``measured`` fixture, shared) counts five scenarios on three started targets:

- n = 10k, 20k and 30k on cost_app: the count grows by the same amount per 10k iterations;
- n = 10k on cost_app_tick: background work is subtracted, the count is cost_app's;
- n = 10k on cost_app_planted: the differential names the planted function.

A second run of the n = 10k scenario (fresh processes) must repeat its count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from perfaudit import results
from perfaudit.analysis import costdiff
from perfaudit.measure import callgrind
from perfaudit.stack.net import free_port

needs_valgrind = pytest.mark.skipif(
    bool(callgrind.missing()), reason="valgrind is not installed (`make setup` installs it)"
)

APPS = Path(__file__).parent / "apps"
PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]
RUN_TIMEOUT_S = 300.0  # one target under callgrind: ~30 s; a hang fails instead of blocking
COST = "{requests: 40, warmup_requests: 20, windows: 4, idle: 1s}"
N = 10_000  # iterations of cost_app.work_loop per request in the base scenario
TICK_RATE = 20  # cost_app_tick: one tick per 50 ms ...
TICK_ITERATIONS = 300  # ... of this many iterations (the values in cost_app_tick.py)


def scenario_file(folder: Path, name: str, app: str, port: int, n: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""name: {name}
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} -m uvicorn {app}:app --port {port} --loop uvloop --http httptools --no-access-log"
  cwd: {APPS}
  ready_path: /health
request:
  path: "/work?n={n}"
measure: [instructions]
cost: {COST}
load: {{rate: 10}}
duration: 1s
"""
    )
    return path


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        if (p := free_port()) not in ports:
            ports.append(p)
    return ports


def perfaudit_run(
    *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``perfaudit run ARGS`` as a subprocess; on a timeout it is stopped (SIGTERM first:
    it stops its targets) and the test fails."""
    proc = subprocess.Popen(
        [*PERFAUDIT, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "400", **(env or {})}, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"perfaudit run {' '.join(args)}: no end in {timeout:.0f} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def our_processes(markers: list[str]) -> list[psutil.Process]:
    """Live processes started for this test: valgrind (its out-file is under our folder)
    and the targets (their command line names our ports)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if ("callgrind" in cmd or "uvicorn" in cmd) and any(re.search(m, cmd) for m in markers):
            found.append(p)
    return found


def assert_nothing_left(folder: Path, ports: list[int]) -> None:
    markers = [re.escape(str(folder))] + [rf"cost_app\S*:app --port {p}\b" for p in ports]
    deadline = time.monotonic() + 10.0
    while (left := our_processes(markers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        lines = [f"{p.pid}: {' '.join(p.cmdline())}" for p in left]
        for p in left:  # ours: do not leave them to the next test
            p.kill()
        pytest.fail("processes left running after the run:\n" + "\n".join(lines))


def entries_of(r: subprocess.CompletedProcess[str]) -> tuple[dict[str, dict[str, Any]], Path]:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    path = Path(json.loads(r.stdout)["results"])
    return {e["name"]: e for e in results.read(path).scenarios}, path.parent


def cost(entry: dict[str, Any]) -> dict[str, Any]:
    return entry["cost"]["instructions"]


def service(entry: dict[str, Any]) -> dict[str, Any]:
    return cost(entry)["processes"]["service"]


def calls(entry: dict[str, Any]) -> dict[str, float]:
    pc = cost(entry)["python_calls"]
    assert pc["status"] == "ok", pc
    return pc["processes"]["service"]["functions"]


def calls_of(entry: dict[str, Any], qualname: str, module: str) -> float | None:
    """Calls per request of ``qualname`` in tests/apps/<module>.py (None: not called)."""
    where = f"({APPS / module}.py:"
    found = [v for k, v in calls(entry).items() if k.startswith(f"{qualname} ") and where in k]
    assert len(found) <= 1, found
    return found[0] if found else None


@dataclass
class Measured:
    entries: dict[str, dict[str, Any]]
    run_dir: Path
    files: dict[str, Path]
    seconds: float


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    folder = tmp_path_factory.mktemp("instructions")
    plain, tick, planted = free_ports(3)
    files = {
        "plain-10k": scenario_file(folder, "plain-10k", "cost_app", plain, N),
        "plain-20k": scenario_file(folder, "plain-20k", "cost_app", plain, 2 * N),
        "plain-30k": scenario_file(folder, "plain-30k", "cost_app", plain, 3 * N),
        "tick-10k": scenario_file(folder, "tick-10k", "cost_app_tick", tick, N),
        "planted-10k": scenario_file(folder, "planted-10k", "cost_app_planted", planted, N),
    }
    t0 = time.monotonic()
    r = perfaudit_run(*map(str, files.values()), "--out", str(folder / "reports"), "--json",
                      timeout=2 * RUN_TIMEOUT_S)  # fmt: skip
    seconds = time.monotonic() - t0
    assert_nothing_left(folder, [plain, tick, planted])
    entries, run_dir = entries_of(r)
    assert sorted(entries) == sorted(files)
    yield Measured(entries, run_dir, files, seconds)


def assert_measured(entry: dict[str, Any]) -> None:
    c = cost(entry)
    assert c["status"] == "ok", json.dumps(c, indent=1)[:3000]
    assert c["sent"]["requests"] == c["sent"]["ok"] == 40, c["sent"]
    assert c["sent"]["statuses"] == {"200": 40}
    assert len(c["windows"]) == 4 and c["per_request"] == service(entry)["per_request"]
    assert service(entry)["busy"] and service(entry)["idle"]["unit"] == "s"
    assert entry["verdict"] == "pass" and entry["measures"] == ["instructions"]
    assert c["python_calls"]["status"] == "ok", c["python_calls"]


def per_iteration(m: Measured) -> float:
    e = m.entries
    return (service(e["plain-20k"])["per_request"] - service(e["plain-10k"])["per_request"]) / N


# -- 1. known work per request -----------------------------------------------------------
@needs_valgrind
def test_the_count_grows_by_the_known_work_per_request(measured: Measured) -> None:
    e = measured.entries
    for entry in e.values():
        assert_measured(entry)
    c10, c20, c30 = (service(e[f"plain-{k}0k"])["per_request"] for k in (1, 2, 3))
    step1, step2 = c20 - c10, c30 - c20
    # Linear in n: each 10k iterations cost the same.
    assert abs(step2 - step1) <= 0.05 * step1, (c10, c20, c30)
    per_iter = step1 / N
    assert abs((c30 - c10) - 2 * N * per_iter) <= 0.10 * 2 * N * per_iter
    assert 20 < per_iter < 5000, per_iter  # a few bytecodes
    assert c10 - N * per_iter > 50_000, "handling a request costs something of its own"
    # The sub-windows agree: the count is the same for every 10 requests.
    for k in (1, 2, 3):
        windows = cost(e[f"plain-{k}0k"])["windows"]
        assert max(windows) - min(windows) <= 0.01 * min(windows), windows

    # Python calls: the loop function, once per request, with its file and line.
    for name in ("plain-10k", "plain-20k", "plain-30k", "tick-10k", "planted-10k"):
        assert calls_of(e[name], "work_loop", "cost_app") == pytest.approx(1, abs=0.02)
        assert calls_of(e[name], "make_app.<locals>.work", "cost_app") == pytest.approx(1, abs=0.02)


def artifact(run_dir: Path, rel: str) -> Path:
    """A dump named in ``artifacts`` (relative to the run folder or to its target's)."""
    direct = run_dir / rel
    if direct.is_file():
        return direct
    [found] = [p for p in run_dir.glob(f"*/{rel}") if p.is_file()]
    return found


@needs_valgrind
def test_the_dumps_are_kept_and_parse_to_their_totals(measured: Measured) -> None:
    entry = measured.entries["plain-10k"]
    dumps = [artifact(measured.run_dir, rel) for rel in cost(entry)["artifacts"]]
    assert len(dumps) == 6  # 4 windows, 2 idle
    for path in dumps:
        text = path.read_text()
        [totals] = re.findall(r"^totals: (\d+)$", text, re.M)
        d = callgrind.parse(path)
        assert sum(d.self_cost.values()) == int(totals), path  # every cost line, once
        assert d.summary > 0


# -- 2. determinism ------------------------------------------------------------------------
@needs_valgrind
def test_a_second_run_repeats_the_count(measured: Measured, tmp_path: Path) -> None:
    again = measured.files["plain-10k"]
    port = int(re.search(r"--port (\d+)", again.read_text()).group(1))  # type: ignore[union-attr]
    r = perfaudit_run(str(again), "--out", str(tmp_path / "reports"), "--json")
    assert_nothing_left(tmp_path, [port])
    entries, _ = entries_of(r)
    second = entries["plain-10k"]
    assert_measured(second)
    first = measured.entries["plain-10k"]
    a, b = service(first)["per_request"], service(second)["per_request"]
    assert abs(b - a) <= 0.005 * a, f"{a:.0f} then {b:.0f}: {100 * (b - a) / a:+.3f} %"
    assert cost(first)["environment"] == cost(second)["environment"]
    assert calls_of(second, "work_loop", "cost_app") == pytest.approx(1, abs=0.02)


# -- 3. background work is subtracted ----------------------------------------------------
@needs_valgrind
def test_background_work_is_subtracted(measured: Measured) -> None:
    plain, tick = service(measured.entries["plain-10k"]), service(measured.entries["tick-10k"])
    assert abs(tick["per_request"] - plain["per_request"]) <= 0.01 * plain["per_request"], (
        plain["per_request"], tick["per_request"], tick["idle"],
    )  # fmt: skip
    # The ticks were really there: in the raw count, and at the rate they were made at.
    assert tick["raw_per_request"] - plain["raw_per_request"] >= 0.03 * plain["per_request"]
    background = tick["idle"]["rate"] - plain["idle"]["rate"]  # Ir per second
    expected = TICK_RATE * TICK_ITERATIONS * per_iteration(measured)
    assert background >= 0.8 * expected, (background, expected)
    # Python calls too: the ticks, counted per second while idle, leave ~0 per request
    # (below 0.005 calls per request a function is not kept at all).
    ticks = calls_of(measured.entries["tick-10k"], "tick_work", "cost_app_tick")
    assert ticks is None or abs(ticks) < 0.25, ticks


# -- 4. the differential names the planted function -------------------------------------
@needs_valgrind
def test_the_differential_names_the_planted_function(measured: Measured) -> None:
    plain, planted = measured.entries["plain-10k"], measured.entries["planted-10k"]
    assert service(planted)["per_request"] > service(plain)["per_request"] + 10_000

    # Python level: planted_extra, once per request, only in the planted run; json.dumps
    # five times in it.
    assert calls_of(planted, "planted_extra", "cost_app_planted") == pytest.approx(1, abs=0.02)
    assert not any("planted_extra" in k for k in calls(plain))
    moved = {m.name: m for m in costdiff.diff([plain], [planted], "service", "python", n=50)}
    [extra] = [m for name, m in moved.items() if name.startswith("planted_extra ")]
    assert extra.delta == pytest.approx(1, abs=0.02)
    [dumps] = [m for name, m in moved.items() if re.match(r"dumps \(.*json/__init__\.py:", name)]
    assert dumps.delta == pytest.approx(5, abs=0.05)

    # C level: json's C encoder gains instructions per request, plain has none of it.
    c_moved = costdiff.diff([plain], [planted], "service", "c", n=callgrind_keep())
    encoder = {m.name: m.delta for m in c_moved if "[_json." in m.name}
    assert any("encode" in name and d >= 1000 for name, d in encoder.items()), encoder
    assert sum(encoder.values()) >= 5 * 1000, encoder  # 5 dumps per request
    assert not [k for k in service(plain)["functions"] if "[_json." in k]


def callgrind_keep() -> int:
    from perfaudit.run.instructions import KEEP_FUNCTIONS

    return KEEP_FUNCTIONS


# -- 5. without valgrind ---------------------------------------------------------------------
def test_without_valgrind_the_measure_is_skipped_with_a_fix(tmp_path: Path) -> None:
    [port] = free_ports(1)
    f = scenario_file(tmp_path, "plain-10k", "cost_app", port, N)
    r = perfaudit_run(str(f), "--out", str(tmp_path / "reports"), "--json",
                      env={callgrind.VALGRIND_ENV: ""}, timeout=120)  # fmt: skip
    assert_nothing_left(tmp_path, [port])
    assert r.returncode == 3, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert "warning: instructions (skipped): valgrind is not installed" in err, r.stderr
    assert "apt-get install -y valgrind" in err
    assert "Traceback" not in r.stdout + r.stderr
    summary = json.loads(r.stdout)
    assert summary["exit_code"] == 3
    [entry] = results.read(Path(summary["results"])).scenarios
    c = cost(entry)
    assert c["status"] == "skipped" and "valgrind is not installed" in c["errors"][0]
    assert entry["verdict"] == "invalid"
    assert any("instructions skipped" in reason for reason in entry["validity"]["reasons"])


# -- 6. bad input ----------------------------------------------------------------------------
def test_an_unknown_measure_is_a_usage_error(tmp_path: Path) -> None:
    [port] = free_ports(1)
    f = scenario_file(tmp_path, "plain-10k", "cost_app", port, N)
    r = perfaudit_run(str(f), "--measure", "bogus", "--out", str(tmp_path / "r"), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "--measure" in line and "'bogus'" in line and "instructions" in line, line
    assert not (tmp_path / "r").exists()


def test_instructions_of_a_service_perfaudit_does_not_start_is_a_usage_error(
    tmp_path: Path,
) -> None:
    [port] = free_ports(1)
    f = scenario_file(tmp_path, "no-start", "cost_app", port, N)
    f.write_text(re.sub(r"(?m)^  start: .*\n", "", f.read_text()))
    r = perfaudit_run(str(f), "--out", str(tmp_path / "r"), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert f"{f}:" in err and "measure" in err and "target.start" in err, r.stderr
    assert "Traceback" not in r.stderr

    # The same through --measure, with no measure: key in the file.
    f.write_text(re.sub(r"(?m)^measure: .*\n", "", f.read_text()))
    r = perfaudit_run(str(f), "--measure", "instructions", "--out", str(tmp_path / "r"), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert str(f) in err and "target.start" in err, r.stderr
    assert not (tmp_path / "r").exists()
