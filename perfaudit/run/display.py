"""The live view of a run (Rich) and its final table."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from perfaudit.redact import redact
from perfaudit.scenario import Scenario

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "invalid": "bold yellow"}


class LiveDisplay:
    """Per scenario while it runs: elapsed, req/s, p99 so far, errors; then its verdict."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._note = ""
        self._live = Live(self, console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)  # type: ignore[arg-type]

    # -- RunEvents -------------------------------------------------------------------------
    def note(self, message: str) -> None:
        with self._lock:
            self._note = message

    def scenario_started(self, scenario: Scenario, index: int, total: int) -> None:
        with self._lock:
            self._note = ""
            self._current = {
                "name": scenario.name,
                "target": scenario.target.label(),
                "index": f"{index}/{total}",
                "t0": time.monotonic(),
                "warmup": scenario.warmup_s,
                "total": scenario.warmup_s + scenario.duration_s,
                "seconds": {},
            }
            self._rows.append(self._current)

    def progress(self, item: Any) -> None:
        with self._lock:
            if self._current is None:
                return
            sec = self._current["seconds"].setdefault(item.t, [0, 0, 0, 0])
            sec[0] += item.sent
            sec[1] += item.completed
            sec[2] += item.errors
            sec[3] = max(sec[3], item.p99_us)

    def scenario_finished(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._current is not None:
                self._current["entry"] = entry
            self._current = None

    # -- rendering -------------------------------------------------------------------------
    def __rich__(self) -> Group:
        with self._lock:
            table = Table(box=None, pad_edge=False)
            for col in ("", "scenario", "target", "elapsed", "req/s", "p99 so far", "errors", ""):
                table.add_column(col)
            for row in self._rows:
                table.add_row(*self._cells(row))
            parts: list[Any] = [table]
            if self._note:
                parts.append(Text(self._note, style="dim"))
            return Group(*parts)

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[str | Text]:
        entry = row.get("entry")
        if entry is not None:
            s = entry["summary"]
            verdict = entry["verdict"]
            return [
                row["index"], row["name"], row["target"], "done",
                _num(s.get("rps"), "{:.0f}"), _num(s.get("p99_ms"), "{:.1f} ms"),
                f"{s.get('errors', 0) + s.get('dropped', 0)}",
                Text(verdict.upper(), style=VERDICT_STYLE[verdict]),
            ]  # fmt: skip
        elapsed = time.monotonic() - row["t0"]
        secs = row["seconds"]
        measured = {t: v for t, v in secs.items() if t >= row["warmup"]}
        last = secs[max(secs)] if secs else [0, 0, 0, 0]
        p99 = max((v[3] for v in measured.values()), default=0) / 1000
        errors = sum(v[2] for v in measured.values())
        phase = "warm-up" if elapsed < row["warmup"] else "measuring"
        return [
            row["index"], row["name"], row["target"],
            f"{min(elapsed, row['total']):.0f}/{row['total']:.0f} s",
            f"{last[1]}", f"{p99:.1f} ms" if measured else "-", str(errors),
            Text(phase, style="cyan"),
        ]  # fmt: skip


class QuietEvents:
    """RunEvents that show nothing (for --json)."""

    def note(self, message: str) -> None: ...
    def scenario_started(self, scenario: Scenario, index: int, total: int) -> None: ...
    def progress(self, item: Any) -> None: ...
    def scenario_finished(self, entry: dict[str, Any]) -> None: ...


def final_table(entries: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("scenario", "target", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "err %",
                "per request", "verdict"):  # fmt: skip
        table.add_column(col, justify="right" if col.endswith(("ms", "/s", "%")) else "left")
    for e in entries:
        s = e["summary"]
        verdict = e["verdict"]
        rps = _num(s.get("rps"), "{:.0f}")
        if s.get("target_rps"):
            rps += f"/{s['target_rps']:.0f}"
        table.add_row(
            e["name"], e["target"]["label"], rps,
            _num(s.get("p50_ms"), "{:.2f}"), _num(s.get("p95_ms"), "{:.2f}"),
            _num(s.get("p99_ms"), "{:.2f}"), _num(s.get("max_ms"), "{:.1f}"),
            f"{100 * s['error_rate']:.2f}",
            cost_text(e), Text(verdict.upper(), style=VERDICT_STYLE[verdict]),
        )  # fmt: skip
    return table


def _num(v: Any, fmt: str) -> str:
    """A figure, or "-" where the run did not measure it (an instructions-only entry)."""
    return "-" if v is None else fmt.format(v)


def _instructions_text(entry: dict[str, Any]) -> list[str]:
    cost = ((entry.get("cost") or {}).get("instructions")) or {}
    if cost.get("status") != "ok":
        return [f"instructions {cost['status']}"] if cost.get("status") else []
    procs = cost.get("processes") or {}
    return [
        f"{name} {_ir(p['per_request'])} Ir" if p.get("busy", True) else f"{name} idle"
        for name, p in procs.items()
        if "per_request" in p
    ]


def _ir(v: float) -> str:
    return f"{v / 1e6:.4g} M" if abs(v) >= 1e6 else f"{v / 1e3:.4g} k"


def cost_text(entry: dict[str, Any]) -> str:
    d = entry.get("derived") or {}
    parts = _instructions_text(entry)
    redis = d.get("redis")
    if redis and redis.get("commands") is not None:
        parts.append(f"redis {redis['commands']:.1f} cmd")
        if redis.get("new_connections"):
            parts.append(f"{redis['new_connections']:.2f} conn")
    ups = d.get("upstreams")
    if ups and ups.get("calls"):
        parts.append(f"upstream {ups['calls']:.1f} calls")
        if ups.get("new_connections_per_call") is not None:
            parts.append(f"{ups['new_connections_per_call']:.2f} conn/call")
    s = entry["summary"]
    if "e2e_p95_ms" in s:
        parts.append(f"e2e p95 {s['e2e_p95_ms']:.0f} ms")
    if "queue_wait_p95_ms" in s:
        parts.append(f"wait p95 {s['queue_wait_p95_ms']:.0f} ms, run p95 {s['run_p95_ms']:.0f} ms")
    return ", ".join(parts)


def explain(entries: list[dict[str, Any]], console: Console) -> None:
    """One line per failed check and per reason a run is invalid."""
    for e in entries:
        for c in e["checks"]:
            if not c["passed"]:
                actual = "not measured" if c["actual"] is None else f"{c['actual']:.4g}"
                console.print(
                    f"[red]FAIL[/] {e['name']}: {c['metric']} {actual} "
                    f"(limit {c['limit']:g})", highlight=False,
                )  # fmt: skip
        for reason in e["validity"]["reasons"]:
            console.print(f"[yellow]INVALID[/] {e['name']}: {redact(reason)}", highlight=False)
