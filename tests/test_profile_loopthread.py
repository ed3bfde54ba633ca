"""What the event-loop thread was doing, from py-spy's per-thread stacks (loopthread.py).

The fixtures in tests/data/pyspy/ are real ``py-spy record --threads`` recordings (trimmed) of
tests/apps/blocking_app.py under load on /block, /offload and /clean at once: with ``--idle``
under uvloop and under asyncio, and without ``--idle`` under uvloop. ``{ROOT}`` stands for the
repository root. The last test runs `perfaudit run --profile py-spy:idle` on the real app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perfaudit import results
from perfaudit.profile.hotspots import (
    Frame,
    ThreadStack,
    external_classifier,
    parse_collapsed,
    parse_collapsed_threads,
)
from perfaudit.profile.loopthread import find_loop_thread, summarize
from perfaudit.stack.net import free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "pyspy"
APP = Path(__file__).parent / "apps" / "blocking_app.py"
SLEEP_LINE = 29  # slow_lookup's time.sleep in the recorded app


def recorded(name: str) -> str:
    return (DATA / f"threads-{name}.collapsed.txt").read_text().replace("{ROOT}", str(ROOT))


def loop_of(name: str, idle: bool = True) -> dict[str, Any]:
    stacks = parse_collapsed_threads(recorded(name))
    source = {(str(APP), SLEEP_LINE): "time.sleep(BLOCK_S)"}
    return summarize(
        stacks, external_classifier(), idle_sampled=idle, rate_hz=100, window_s=2.0,
        source=lambda f, ln: source.get((f, ln), ""),
    )  # fmt: skip


def test_thread_labels_are_kept_and_the_old_parser_still_drops_them() -> None:
    text = recorded("uvloop")
    stacks = parse_collapsed_threads(text)
    assert {(s.thread, s.name) for s in stacks} == {("12833", "MainThread"), ("12851", "uvloop_0")}
    old = parse_collapsed(text)
    assert [st for st, _ in old] == [s.stack for s in stacks]  # same frames, root first
    assert [w for _, w in old] == [s.weight for s in stacks]
    assert all(s.stack[0].function in ("<module>", "Thread._bootstrap") for s in stacks)
    # A label without a name, and a name given as its own element.
    [a] = parse_collapsed_threads("thread (0x7f01);f (a.py:1) 3\n")
    assert (a.thread, a.name, a.stack, a.weight) == ("0x7f01", None, (Frame("f", "a.py", 1),), 3)
    [b] = parse_collapsed_threads("thread (7);worker;f (a.py:1) 2\n")
    assert (b.thread, b.name) == ("7", "worker")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_idle_sampling_shows_the_loop_blocked_at_the_sleeping_line(loop: str) -> None:
    summary = loop_of(loop)
    assert summary["thread_name"] == "MainThread" and summary["found_by"] == "event loop frames"
    assert summary["idle_sampled"] is True and summary["rate_hz"] == 100
    assert summary["samples"] >= 180  # ~2 s at 100 Hz: idle samples are in
    top = summary["blocking"][0]
    assert (top["leaf"]["function"], top["leaf"]["file"], top["leaf"]["line"]) == (
        "slow_lookup", str(APP), SLEEP_LINE,
    )  # fmt: skip
    assert top["leaf"]["code"] == "time.sleep(BLOCK_S)" and top["category"] == "own"
    assert top["own"] == top["leaf"]
    # The loop thread's polling is not busy: about 3/4 of the loop's time was the sleep.
    assert 0.6 < summary["busy_share"] < 0.9
    assert top["samples"] <= summary["busy"] < summary["samples"]
    assert len(summary["blocking"]) <= 10


def test_the_thread_pool_sleeping_is_not_the_loop_blocked() -> None:
    """/offload sleeps as long in asyncio.to_thread: those samples are on the pool's thread."""
    stacks = parse_collapsed_threads(recorded("uvloop"))
    pool = sum(s.weight for s in stacks if s.name == "uvloop_0" and s.stack[-1].line == SLEEP_LINE)
    assert pool > 50
    loop_sleep = sum(
        s.weight for s in stacks if s.name == "MainThread" and s.stack[-1].line == SLEEP_LINE
    )
    assert loop_of("uvloop")["blocking"][0]["samples"] == loop_sleep


def test_library_leaf_keeps_the_own_frame_that_called_it() -> None:
    entries = loop_of("asyncio")["blocking"]
    library = [e for e in entries if e["category"] == "library"]
    assert library and all(not e["leaf"]["file"].startswith(str(APP)) for e in library)
    for e in entries:
        if e["own"] is not None:
            assert e["own"]["file"] == str(APP)  # never the module's main() below the loop
            assert e["own"]["function"] != "main"


def test_without_idle_only_cpu_busy_samples_are_seen() -> None:
    summary = loop_of("noidle", idle=False)
    assert summary["idle_sampled"] is False
    assert summary["samples"] < 50  # the loop sleeping in epoll or time.sleep is not sampled
    assert summary["busy_wall_share"] < 0.2 < loop_of("uvloop")["busy_wall_share"]


def test_loop_thread_fallbacks() -> None:
    f = (Frame("work", "/srv/app.py", 3),)
    stacks = [ThreadStack("11", "other", f, 50), ThreadStack("10", "MainThread", f, 5)]
    assert find_loop_thread(stacks) == ("10", "main thread")
    assert find_loop_thread([ThreadStack("10", None, f, 1), ThreadStack("9", None, f, 4)],
                            pid=10) == ("10", "main thread")  # fmt: skip
    assert find_loop_thread([ThreadStack("9", None, f, 4)]) == ("9", "busiest thread")
    empty = summarize([], external_classifier(), idle_sampled=False, rate_hz=100, window_s=1.0)
    assert (empty["thread"], empty["samples"], empty["busy"], empty["blocking"]) == (None, 0, 0, [])


# -- a real run -------------------------------------------------------------------------------
def scenario(tmp: Path, name: str, path: str, port: int) -> Path:
    f = tmp / f"{name}.yaml"
    f.write_text(
        f"""name: {name}
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} {APP} --port {port}"
  ready_path: /health
request:
  path: {path}
load:
  rate: 25
warmup: 1s
duration: 2s
profile:
  py-spy: {{idle: true}}
"""
    )
    return f


def test_perfaudit_run_with_idle_points_at_the_blocking_line(tmp_path: Path) -> None:
    files = [scenario(tmp_path, n, p, free_port()) for n, p in (("block", "/block"),
                                                              ("clean", "/clean"))]  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "perfaudit.cli", "run", *map(str, files), "--out",
         str(tmp_path / "reports"), "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode in (0, 1), r.stdout + r.stderr
    path = Path(json.loads(r.stdout)["results"])
    entries = {e["name"]: e for e in results.read(path).scenarios}
    loops = {}
    for name, entry in entries.items():
        spy = entry["profiles"]["py-spy"]
        assert spy["status"] == "ok", spy
        loops[name] = spy["processes"]["service"]["loop"]
    block = loops["block"]
    assert block["idle_sampled"] is True and block["samples"] > 0
    top = block["blocking"][0]
    assert (top["leaf"]["file"], top["leaf"]["line"]) == (str(APP), SLEEP_LINE), block
    assert "time.sleep" in top["leaf"]["code"] and top["category"] == "own"
    # 25 req/s x 20 ms: the loop is blocked ~half the time; the clean route barely uses it.
    assert loops["clean"]["busy_share"] < 0.15 < block["busy_share"], loops


# -- memray leak sites (memray_stats.leaks) -----------------------------------------------------
LEAKY = """
KEEP = []
def keep(n):
    KEEP.append(bytearray(n))  # still alive at the end
def drop(n):
    return len(bytearray(n))  # freed at once
for _ in range(100):
    keep(10_000)
    drop(50_000)
"""


def test_memray_leak_sites_are_what_was_still_allocated(tmp_path: Path) -> None:
    pytest.importorskip("memray")
    from perfaudit.profile.memray_stats import leaks

    script = tmp_path / "leaky.py"
    script.write_text(LEAKY)
    capture = tmp_path / "leaky.bin"
    subprocess.run([sys.executable, "-m", "memray", "run", "--quiet", "-o", str(capture),
                    str(script)], check=True, timeout=60)  # fmt: skip
    sites = leaks(capture, external_classifier())
    top = sites[0]
    assert (top["function"], top["file"], top["line"]) == ("keep", str(script), 4)
    assert top["count"] >= 100 and top["bytes"] >= 100 * 10_000
    assert top["category"] == "own" and top["own"]["function"] == "keep"
    assert "drop" not in {s["function"] for s in sites}  # freed: not a leak
    assert len(sites) <= 10


# -- per-function totals and logging (synthetic stacks) ---------------------------------------
RUN = (Frame("run_forever", "/usr/lib/python3.11/asyncio/base_events.py", 600),
       Frame("_run_once", "/usr/lib/python3.11/asyncio/base_events.py", 1900),
       Frame("_run", "/usr/lib/python3.11/asyncio/events.py", 80))  # fmt: skip
SRV = "/srv/app/app.py"
LOGGING = "/usr/lib/python3.11/logging/__init__.py"
CODE = {
    (SRV, 10): "text = re.sub(pattern, '', text)",
    (SRV, 20): "await client.get(url)",
    (SRV, 30): 'log.info("update %s", json.dumps(update))',
    (SRV, 40): 'log.info("done")',
}


def _stack(*frames: Frame, weight: int = 1) -> ThreadStack:
    return ThreadStack("1", "MainThread", RUN + frames, weight)


def test_own_totals_sum_every_leaf_and_logging_counts_its_callers() -> None:
    clean = Frame("clean", SRV, 10)
    # 14 distinct regex leaves, one sample each: none reaches blocking's top 10 on its own.
    spread = [_stack(clean, Frame(f"_parse{i}", "/usr/lib/python3.11/re/_parser.py", i))
              for i in range(14)]  # fmt: skip
    awaiting = [_stack(Frame("fetch", SRV, 20), Frame("send", "/v/site-packages/httpx/_x.py", 5),
                       weight=6)]  # fmt: skip
    dumps = _stack(Frame("webhook", SRV, 30), Frame("dumps", "/usr/lib/python3.11/json/__init__.py",
                   231), weight=3)  # fmt: skip
    emit = _stack(Frame("webhook", SRV, 40), Frame("info", LOGGING, 1489),
                  Frame("format", "/srv/app/logfmt.py", 7), weight=2)  # fmt: skip
    loop = summarize(
        [*spread, *awaiting, dumps, emit], external_classifier(), idle_sampled=True,
        rate_hz=100, window_s=1.0, source=lambda f, ln: CODE.get((f, ln), ""),
    )  # fmt: skip
    assert loop["busy"] == 14 + 6 + 3 + 2
    assert len(loop["blocking"]) == 10 and all(
        b["samples"] == 1 for b in loop["blocking"] if b["own"]["function"] == "clean"
    )
    own = {o["function"]: o for o in loop["own"]}
    assert own["clean"]["samples"] == 14 and own["clean"]["sync_samples"] == 14
    assert own["clean"]["line"] == 10 and own["clean"]["code"].startswith("text = re.sub")
    assert own["clean"]["leaf_files"][0] == {"file": "/usr/lib/python3.11/re/_parser.py",
                                             "samples": 14}  # fmt: skip
    assert own["fetch"]["samples"] == 6 and own["fetch"]["sync_samples"] == 0  # awaiting line
    # The formatter is own code below logging: its sample is logging's, called from line 40.
    assert own["format"]["logging_samples"] == 2
    assert own["webhook"]["logging_samples"] == 3  # the json.dumps argument of a log call
    assert loop["own"][0]["function"] == "clean"
    log = loop["logging"]
    assert log["samples"] == 5 and log["json_samples"] == 3
    assert [(c["line"], c["samples"]) for c in log["calls"]] == [(30, 3), (40, 2)]
    assert log["calls"][0]["code"] == CODE[(SRV, 30)]
    assert log["share"] == round(5 / 25, 4)
