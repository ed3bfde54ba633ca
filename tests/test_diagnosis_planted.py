"""Diagnosis on a service perfaudit has never seen: each planted pattern gives its finding,
at the planted place; the clean route gives none.

tests/apps/planted_app.py runs as an external target that perfaudit starts, with its own
real Redis (``target.env`` and ``target.redis_url``), the loop-lag probe a user wires in, and
the profilers ``perfaudit run --diagnose`` turns on. One ``perfaudit run`` drives every route.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perfaudit import results
from perfaudit.stack.net import free_port
from perfaudit.stack.redis_server import redis_process

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "planted_app.py"
PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]

# route -> (offered rate, the rule that must find it, the function it must point at)
PLANTED: dict[str, tuple[int, str | None, str | None]] = {
    "clean": (50, None, None),
    "blocking": (20, "loop-blocked", "blocking"),
    "n-plus-one": (40, "redis-round-trips", "n_plus_one"),
    "churn": (60, "connection-churn", "churn"),
    "leak": (40, "memory-growth", "leak"),
    "cpu": (40, "dominant-function", "checksum"),
    "logging": (40, "logging-overhead", "logging_heavy"),
    "upstream": (20, "upstream-dominates", "upstream"),
    "sequential": (20, "sequential-awaits", "sequential"),
    "queue": (100, "unbounded-queue", None),
}
# py-spy as `perfaudit run --diagnose` runs it; the async-aware tree (pyinstrument) is what
# sees awaits, memray what still holds memory.
PYSPY = '"py-spy:idle,rate=250"'
PROFILES = {
    "upstream": f"[{PYSPY}, pyinstrument]",
    "sequential": f"[{PYSPY}, pyinstrument]",
    "leak": f"[{PYSPY}, memray]",
}


# A queue that grows is told from a slow route by the trend of latency over the window.
DURATION_S = {"queue": 5.0}


def _scenario(folder: Path, route: str, rate: int, port: int, redis_url: str) -> Path:
    profile = PROFILES.get(route, f"[{PYSPY}]")
    f = folder / f"planted-{route}.yaml"
    f.write_text(
        f"""name: planted-{route}
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} -m uvicorn tests.apps.planted_app:app --port {port} --no-access-log"
  cwd: {ROOT}
  ready_path: /clean
  env:
    REDIS_URL: {redis_url}
  redis_url: {redis_url}
request:
  path: /{route}
load:
  rate: {rate}
warmup: 0.5s
duration: {DURATION_S.get(route, 2.5)}s
profile: {profile}
"""
    )
    return f


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("planted")
    redis, url = redis_process(tmp / "redis")
    redis.start()
    try:
        redis.wait_ready(15)
        port = free_port()
        files = [str(_scenario(tmp, r, rate, port, url)) for r, (rate, _, _) in PLANTED.items()]
        out = tmp / "reports"
        r = subprocess.run(
            [*PERFAUDIT, "run", *files, "--out", str(out), "--json"],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert r.returncode in (0, 1), r.stderr[-3000:]
        record = results.read(Path(json.loads(r.stdout)["results"]))
        yield {e["name"].removeprefix("planted-"): e for e in record.scenarios}
    finally:
        redis.stop()


def _rules(entry: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for f in entry["diagnosis"]["findings"]:
        found.setdefault(f["rule"], []).append(f)
    return found


def test_the_clean_route_gives_no_findings(diagnosed: dict[str, dict[str, Any]]) -> None:
    entry = diagnosed["clean"]
    assert entry["validity"]["valid"], entry["validity"]
    assert entry["diagnosis"]["findings"] == []


@pytest.mark.parametrize("route", [r for r, (_, rule, _) in PLANTED.items() if rule])
def test_each_planted_pattern_is_found_where_it_was_planted(
    diagnosed: dict[str, dict[str, Any]], route: str
) -> None:
    _, rule, function = PLANTED[route]
    entry = diagnosed[route]
    found = _rules(entry)
    assert rule in found, (route, sorted(found), entry["diagnosis"]["not_checked"])
    finding = found[rule][0]
    assert finding["fix"] and finding["confirm"] and finding["evidence"]
    assert finding["switches"] == []  # an external target has no optimization switches
    if function is not None:
        places = [(Path(w["file"]).name, w["function"]) for w in finding["where"]]
        assert ("planted_app.py", function) in places, places
