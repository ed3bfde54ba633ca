"""An audit folder's results -> ``summary.json``: what every report and doc renders from.

Reads only what the measuring parts wrote (:mod:`perfaudit.audit.runner`). Every verdict is
the gate's (:func:`perfaudit.analysis.compare.compare_scenario`): a switch "improved" a
scenario only where some metric's change clears its noise floor with a CI that excludes 0.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from perfaudit.analysis.compare import GateSettings, compare_scenario
from perfaudit.analysis.metrics import BY_NAME as METRICS
from perfaudit.audit.plan import ADD_ONE, OPTIMIZED, PHASE3, TARGETS, AuditPlan
from perfaudit.audit.runner import read_record
from perfaudit.refservice import switches as sw
from perfaudit.results import ResultsError, read

SUMMARY_FILE = "summary.json"
SUMMARY_VERSION = 1

# What the ablation compares, in this order; each only where its scenario's kind has it.
LATENCY = ("p50_ms", "p95_ms", "p99_ms", "e2e_p95_ms", "queue_wait_p95_ms", "run_p95_ms")
COSTS = (
    "redis_commands_per_request", "redis_new_connections_per_request",
    "upstream_calls_per_request", "upstream_new_connections_per_call",
    "service_cpu_ms_per_request", "worker_cpu_ms_per_request",
)  # fmt: skip
MEMORY = ("service_rss_max_mb", "worker_rss_max_mb")
ABLATION_METRICS = LATENCY + COSTS + MEMORY
INSTRUCTION_METRICS = ("service_instructions_per_request", "worker_instructions_per_request")
CONCLUSIVE = ("improved", "regressed", "unchanged")
# An own-code function above this share of CPU (py-spy self samples) is an opportunity.
CPU_SHARE = 0.05


def _entries(folder: Path, part: str, key: str) -> list[dict[str, Any]]:
    try:
        return read(folder / part / key).scenarios
    except ResultsError:
        return []


def _compare(
    name: str, without: list[dict[str, Any]], with_: list[dict[str, Any]], metrics: tuple[str, ...]
) -> dict[str, Any]:
    a = [e for e in without if e["name"] == name]
    b = [e for e in with_ if e["name"] == name]
    if not a or not b:
        return {"verdict": "missing", "metrics": [], "notes": ["not measured on both sides"]}
    c = compare_scenario(name, a, b, GateSettings(), None, [m for m in metrics if m in METRICS])
    return {"verdict": c.verdict, "metrics": [m.to_dict() for m in c.metrics],
            "notes": c.notes, "repeats": [len(a), len(b)]}  # fmt: skip


def _sides(role: str, switch: str) -> tuple[str, str]:
    """(without the switch, with it) configuration keys."""
    if role == ADD_ONE:
        return PHASE3, f"add-{switch}"
    return f"drop-{switch}", OPTIMIZED


def switch_verdict(results: list[dict[str, Any]]) -> str:
    """One word per switch from every metric verdict of its comparisons."""
    verdicts = {m["verdict"] for r in results for m in r.get("metrics", [])}
    if "improved" in verdicts and "regressed" in verdicts:
        return "mixed"
    for v in ("improved", "regressed"):
        if v in verdicts:
            return v
    if verdicts and verdicts <= {"unchanged"}:
        return "unchanged"
    return "inconclusive"


def interactions(add: dict[str, Any], drop: dict[str, Any]) -> list[dict[str, Any]]:
    """(scenario, metric) pairs where add-one and drop-one both gave a verdict and the
    verdicts differ: the switch's effect depends on what else is on."""
    out = []
    for scenario, a in add.items():
        d = drop.get(scenario)
        if not d:
            continue
        by_metric = {m["metric"]: m for m in d.get("metrics", [])}
        for m in a.get("metrics", []):
            other = by_metric.get(m["metric"])
            if not other:
                continue
            va, vd = m["verdict"], other["verdict"]
            if va in CONCLUSIVE and vd in CONCLUSIVE and va != vd:
                out.append({"scenario": scenario, "metric": m["metric"], "label": m["label"],
                            "add_one": va, "drop_one": vd,
                            "add_change": m.get("change"), "drop_change": other.get("change"),
                            "add_diff": m.get("diff"), "drop_diff": other.get("diff")})  # fmt: skip
    return out


def _switch_summary(plan: AuditPlan, folder: Path, name: str) -> dict[str, Any]:
    s = sw.BY_NAME[name]
    configs = plan.ablation_of(name)
    scenarios = configs[0].scenarios if configs else ()
    out: dict[str, Any] = {
        "name": name, "finding": s.finding, "phase3": s.phase3, "optimized": s.optimized,
        "code": list(getattr(s, "code", ()) or ()), "touches": list(s.touches),
        "measured_on": list(scenarios),
    }  # fmt: skip
    every: list[dict[str, Any]] = []
    out["add_one"], out["drop_one"] = {}, {}
    for role in plan.settings.roles:
        without_key, with_key = _sides(role, name)
        without, with_ = (_entries(folder, "ablation", k) for k in (without_key, with_key))
        results = {n: _compare(n, without, with_, ABLATION_METRICS) for n in scenarios}
        out[role.replace("-", "_")] = results
        every += results.values()
    ir: dict[str, Any] = {}
    scenario = plan.instructions.get(name)
    if scenario:
        for role in plan.settings.instructions_roles:
            without_key, with_key = _sides(role, name)
            without, with_ = (_entries(folder, "instructions", k) for k in (without_key, with_key))
            result = _compare(scenario, without, with_, INSTRUCTION_METRICS)
            ir[role.replace("-", "_")] = {scenario: result}
            every.append(result)
    out["instructions"] = ir
    out["verdict"] = switch_verdict(every)
    out["interactions"] = interactions(out["add_one"], out["drop_one"])
    if ir:
        out["interactions"] += interactions(ir.get("add_one", {}), ir.get("drop_one", {}))
    out["best"] = best_effects(every)
    return out


def best_effects(results: list[dict[str, Any]], top: int = 3) -> list[dict[str, Any]]:
    """The switch's largest conclusive effects (improved or regressed), largest first."""
    found = []
    for r in results:
        for m in r.get("metrics", []):
            if m["verdict"] in ("improved", "regressed"):
                found.append(m)

    # abs-scale metrics have no relative change: rank them by baseline-relative diff.
    def size(m: dict[str, Any]) -> float:
        if m.get("change") is not None:
            return abs(m["change"])
        base = m.get("baseline") or 0
        return abs((m.get("diff") or 0) / base) if base else 0.0

    return sorted(found, key=size, reverse=True)[:top]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _valid(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if (e.get("validity") or {}).get("valid", True)]


def targets_table(folder: Path) -> list[dict[str, Any]]:
    sides = {v: _valid(_entries(folder, "ablation", v)) for v in (PHASE3, OPTIMIZED)}
    rows = []
    for title, source, scenario, metric, limit in TARGETS:
        row: dict[str, Any] = {"target": title, "source": source, "scenario": scenario,
                               "metric": metric, "limit_ms": limit}  # fmt: skip
        for v, entries in sides.items():
            es = [e for e in entries if e["name"] == scenario]
            p95 = [x for x in (METRICS[metric].value(e) for e in es) if x is not None]
            p99 = [x for x in (METRICS["p99_ms"].value(e) for e in es) if x is not None]
            if not p95:
                row[v] = None
                continue
            met = "met" if max(p95) <= limit else "missed" if min(p95) > limit else "borderline"
            row[v] = {"p95_ms": _median(p95), "p99_ms": _median(p99), "repeats": len(p95),
                      "status": met}  # fmt: skip
        if row.get(PHASE3) or row.get(OPTIMIZED):
            rows.append(row)
    return rows


def capacity_table(folder: Path) -> list[dict[str, Any]]:
    path = folder / "capacity.json"
    if not path.exists():
        return []
    from perfaudit.audit.capacity import CapacityResult, capacity_ratio

    results = json.loads(path.read_text()).get("results", [])
    by: dict[str, dict[str, Any]] = {}
    for r in results:
        if "error" in r:  # the search could not run: the row says so
            by.setdefault(r["scenario"], {}).setdefault("errors", []).append(
                f"{r['variant']}: {r['error']}"
            )
            continue
        by.setdefault(r["scenario"], {})[r["variant"]] = r
    rows = []
    for scenario, sides in by.items():
        row: dict[str, Any] = {"scenario": scenario, PHASE3: sides.get(PHASE3),
                               OPTIMIZED: sides.get(OPTIMIZED)}  # fmt: skip
        if sides.get("errors"):
            row["errors"] = sides["errors"]
        if sides.get(PHASE3) and sides.get(OPTIMIZED):
            row["ratio"] = capacity_ratio(
                CapacityResult.from_dict(sides[PHASE3]), CapacityResult.from_dict(sides[OPTIMIZED])
            )
        rows.append(row)
    return rows


def opportunities(folder: Path) -> list[dict[str, Any]]:
    """What is left in the optimized variant: own-code functions and anything above 5 % of
    CPU (py-spy self samples), and the top allocators (memray), per profiled scenario."""
    out: list[dict[str, Any]] = []
    for e in _entries(folder, "profiles", OPTIMIZED):
        profiles = e.get("profiles") or {}
        spy = profiles.get("py-spy") or {}
        for proc, info in (spy.get("processes") or {}).items():
            spots = (info.get("hotspots") or {}).get("self") or []
            for h in spots:
                if h["category"] == "waiting":
                    continue
                if h["share"] >= CPU_SHARE or (h["category"] == "own" and h["share"] >= 0.01):
                    out.append({"kind": "cpu", "scenario": e["name"], "process": proc,
                                "function": h["function"], "file": h["file"], "line": h["line"],
                                "category": h["category"], "share": h["share"]})  # fmt: skip
        mem = profiles.get("memray") or {}
        for proc, info in (mem.get("processes") or {}).items():
            for a in (info.get("top_allocators") or [])[:3]:
                out.append({"kind": "alloc", "scenario": e["name"], "process": proc,
                            "function": a.get("function"), "file": a.get("file"),
                            "line": a.get("line"), "category": a.get("category"),
                            "share": a.get("share"), "size_mb": a.get("size_mb"),
                            "total_allocated_mb": info.get("total_allocated_mb")})  # fmt: skip
    out.sort(key=lambda o: (o["kind"], -(o.get("share") or 0)))
    return out


def combined(plan: AuditPlan, folder: Path) -> dict[str, Any]:
    """phase3 -> optimized on every scenario the references ran: all switches together."""
    a, b = (_entries(folder, "ablation", k) for k in (PHASE3, OPTIMIZED))
    return {n: _compare(n, a, b, ABLATION_METRICS) for n in plan.scenarios}


def headline(switches: list[dict[str, Any]]) -> str:
    """What the gate can defend, e.g. "7 switches improved, 2 unchanged, 1 inconclusive at
    this resolution"."""
    counts: dict[str, int] = {}
    for s in switches:
        counts[s["verdict"]] = counts.get(s["verdict"], 0) + 1
    parts = []
    for v in ("improved", "mixed", "unchanged", "regressed", "inconclusive"):
        n = counts.get(v, 0)
        if n:
            word = "switch" if not parts and n == 1 else "switches" if not parts else ""
            text = f"{n} {word} {v}".replace("  ", " ") if word else f"{n} {v}"
            parts.append(text + (" at this resolution" if v == "inconclusive" else ""))
    return ", ".join(parts) if parts else "no switch measured"


def summarize(folder: Path) -> dict[str, Any]:
    record = read_record(folder)
    plan = AuditPlan.from_dict(record["plan"])
    switches = [_switch_summary(plan, folder, n) for n in plan.switches]
    return {
        "summary_version": SUMMARY_VERSION,
        "audit_id": record["audit_id"],
        "created_at": record["created_at"],
        "finished_at": record.get("finished_at"),
        "status": record["status"],
        "command": record["command"],
        "environment": record["environment"],
        "plan": record["plan"],
        "parts": record.get("parts", {}),
        "headline": headline(switches),
        "switches": switches,
        "capacity": capacity_table(folder),
        "targets": targets_table(folder),
        "combined": combined(plan, folder),
        "opportunities": opportunities(folder),
        "metrics": {
            m: {
                "label": METRICS[m].label,
                "unit": METRICS[m].unit,
                "better": METRICS[m].better,
                "scale": METRICS[m].scale,
            }
            for m in ABLATION_METRICS + INSTRUCTION_METRICS
        },  # fmt: skip
    }


def write_summary(folder: Path) -> Path:
    summary = summarize(folder)
    path = folder / SUMMARY_FILE
    tmp = folder / f".{SUMMARY_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    tmp.replace(path)
    return path
