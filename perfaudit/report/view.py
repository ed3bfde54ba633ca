"""What a report shows, gathered from the results alone (and an optional baseline).

Renderers (HTML, Markdown) only format this view; every string in it has been through
``redact`` so a secret that reached a log line or an error message never reaches a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfaudit.analysis import costdiff
from perfaudit.analysis.compare import MetricResult, ScenarioComparison
from perfaudit.analysis.metrics import BY_NAME
from perfaudit.redact import redact
from perfaudit.refservice import switches as sw
from perfaudit.report import charts
from perfaudit.report.findings_view import FindingView
from perfaudit.report.findings_view import view as finding_view
from perfaudit.report.outcome import (
    comparison_headline,
    open_text,
    scenario_headline,
    verdict_of,
)
from perfaudit.results import RunRecord

Entry = dict[str, Any]

VERDICT_TEXT = {
    "pass": "every scenario met its thresholds",
    "fail": "at least one threshold failed",
    "invalid": "at least one scenario's measurement is invalid (see the reasons)",
}
TABLE_METRICS = [
    ("p50_ms", "p50", "ms"), ("p95_ms", "p95", "ms"), ("p99_ms", "p99", "ms"),
    ("max_ms", "max", "ms"), ("rps", "throughput", "req/s"), ("error_rate", "error rate", "%"),
]  # fmt: skip


@dataclass
class Row:
    label: str
    value: str
    threshold: str = ""
    threshold_ok: bool | None = None
    baseline: str = ""
    change: str = ""
    verdict: str = ""
    detectable: str = ""  # inconclusive: withheld or not, the smallest change it could see


@dataclass
class ScenarioView:
    name: str
    kind: str
    description: str
    target: str
    verdict: str
    profiled: bool
    rows: list[Row]
    costs: list[tuple[str, str]]
    checks: list[dict[str, Any]]
    reasons: list[str]
    charts: dict[str, str]  # title -> svg
    hotspots: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (label, relative path)
    comparison_verdict: str = ""  # from the metric verdicts alone (see outcome.verdict_of)
    comparison_headline: str = ""  # that verdict and what it rests on
    notes: list[str] = field(default_factory=list)
    flamediff: str = ""  # svg: what got cheaper and dearer against the baseline
    # The diagnosis: stored by the run (or, for an older run, the rules run on its figures).
    findings: list[FindingView] = field(default_factory=list)
    not_checked: list[tuple[str, str]] = field(default_factory=list)  # (rule, reason)


@dataclass
class SwitchEffect:
    name: str
    finding: str
    phase3: str
    optimized: str
    effects: list[dict[str, str]]  # scenario, before, after, change, verdict
    note: str = ""


@dataclass
class ReportView:
    run_id: str
    created_at: str
    status: str
    verdict: str
    verdict_text: str
    environment: list[tuple[str, str]]
    scenarios: list[ScenarioView]
    baseline_label: str = ""
    comparison_verdict: str = ""
    # What the comparison defends, per scenario ("3 scenarios improved, 2 unchanged, 1
    # inconclusive at this resolution"): the report's headline against the baseline.
    comparison_headline: str = ""
    comparison_notes: list[str] = field(default_factory=list)
    optimization_log: list[SwitchEffect] = field(default_factory=list)
    findings_text: str = ""  # "2 high, 1 medium" over all scenarios, or "no findings"


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{100 * value:.2f} %"
    if unit == "req/s":
        return f"{value:.1f}"
    if unit == "Ir":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _pct(change: float | None) -> str:
    return "" if change is None else f"{100 * change:+.1f} %"


def _ci(ci: Any) -> str:
    return "" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] %"


def overall_verdict(entries: list[Entry]) -> str:
    verdicts = {e["verdict"] for e in entries if not e.get("profiled")}
    if "invalid" in verdicts:
        return "invalid"
    return "fail" if "fail" in verdicts else "pass"


def build_view(
    record: RunRecord,
    baseline: dict[str, list[Entry]] | None = None,
    baseline_label: str = "",
    comparison: dict[str, Any] | None = None,
) -> ReportView:
    entries = [e for e in record.scenarios if not e.get("profiled")]
    by_cmp = {s["name"]: s for s in (comparison or {}).get("scenarios", [])}
    scenarios = [
        _scenario_view(e, (baseline or {}).get(e["name"], []), by_cmp.get(e["name"]))
        for e in entries
    ]
    verdict = overall_verdict(entries)
    shown = {e["name"] for e in entries}
    compared = [ScenarioComparison.from_dict(c) for name, c in by_cmp.items() if name in shown]
    env = record.environment
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    targets = sorted({e["target"]["label"] for e in entries})
    switches = sorted({", ".join(e["target"].get("switches", [])) or "none" for e in entries})
    load = sorted({_load_text(e) for e in entries})
    environment = [
        ("machine", f"{env.get('cpu_model') or '?'}, {env.get('cpu_count')} CPUs, "
                    f"{env.get('memory_gb')} GiB, {env.get('platform')}"),
        ("Python", str(env.get("python"))),
        ("packages", packages),
        ("git commit", f"{env.get('git_commit') or '?'}{' (dirty)' if env.get('git_dirty') else ''}"),
        ("targets", "; ".join(targets)),
        ("switches on", "; ".join(switches)),
        ("load", "; ".join(load)),
    ]  # fmt: skip
    view = ReportView(
        run_id=record.run_id,
        created_at=record.created_at,
        status=record.status,
        verdict=verdict,
        verdict_text=VERDICT_TEXT[verdict],
        environment=[(k, redact(v)) for k, v in environment],
        scenarios=scenarios,
        baseline_label=redact(baseline_label),
        comparison_verdict=_overall(compared) if compared else "",
        comparison_headline=comparison_headline(compared) if compared else "",
        comparison_notes=[redact(n) for n in (comparison or {}).get("notes", [])],
    )
    view.optimization_log = optimization_log(entries, baseline or {}, by_cmp)
    view.findings_text = _findings_text(scenarios)
    return view


def _findings_text(scenarios: list[ScenarioView]) -> str:
    from perfaudit.analysis.findings import SEVERITIES

    every = [f.severity for s in scenarios for f in s.findings]
    parts = [f"{every.count(sev)} {sev}" for sev in SEVERITIES if sev in every]
    return ", ".join(parts) if parts else "no findings"


def _diagnosis(e: Entry) -> tuple[list[FindingView], list[tuple[str, str]]]:
    from perfaudit.analysis.findings._gather import diagnosis_of

    d = diagnosis_of(e)
    missed = [(redact(str(n["rule"])), redact(str(n["reason"]))) for n in d.get("not_checked", [])]
    return [finding_view(f) for f in d.get("findings", [])], missed


def _overall(compared: list[ScenarioComparison]) -> str:
    """One word for the whole comparison, as its scenarios' verdicts (for the colour of the
    banner): regressed > improved > unchanged (all) > inconclusive."""
    verdicts = {verdict_of(sc) for sc in compared}
    for v in ("regressed", "improved"):
        if v in verdicts:
            return v
    return "unchanged" if verdicts == {"unchanged"} else "inconclusive"


def _detectable(m: dict[str, Any] | None) -> str:
    """An inconclusive metric's "withheld" and the smallest change it could have seen."""
    return open_text(MetricResult.from_dict(m)) if m else ""


def _load_text(e: Entry) -> str:
    if "latency" not in (e.get("measures") or ["latency"]):
        cost = e["scenario"].get("cost") or {}
        return f"{e['name']}: instructions, {cost.get('requests')} sequential requests"
    ld = e["scenario"].get("load", {})
    if ld.get("model") == "closed":
        shape = f"closed {ld.get('users')} users"
    elif ld.get("stages"):
        shape = "open, stages"
    else:
        shape = f"open {ld.get('rate')}/s"
    return f"{e['name']}: {shape}, warm-up {e['scenario'].get('warmup_s')} s, " \
           f"{e['scenario'].get('duration_s')} s"  # fmt: skip


def _scenario_view(e: Entry, base: list[Entry], cmp: dict[str, Any] | None) -> ScenarioView:
    s = e["summary"]
    thresholds = {c["metric"]: c for c in e["checks"]}
    cmp_metrics = {m["metric"]: m for m in (cmp or {}).get("metrics", [])}
    base_summary = base[0]["summary"] if base else None
    sc = ScenarioComparison.from_dict(cmp) if cmp else None
    rows = []
    # The overview reads rows by position, so an instructions-only entry keeps its (n/a)
    # latency rows.
    for key, label, unit in TABLE_METRICS + _kind_metrics(s) + _instruction_metrics(e):
        check = thresholds.get(key)
        m = cmp_metrics.get(key)
        rows.append(Row(
            label=label,
            value=_fmt(_value(e, key), unit),
            threshold=_fmt(check["limit"], unit) if check else "",
            threshold_ok=check["passed"] if check else None,
            baseline=_fmt(m["baseline"] if m else (base_summary or {}).get(key), unit)
            if (m or base_summary) else "",
            change=(_pct(m.get("change")) + (f" {_ci(m.get('ci'))}" if m.get("ci") else ""))
            if m else "",
            verdict=m["verdict"] if m else "",
            detectable=_detectable(m),
        ))  # fmt: skip
    chart_map = {}
    if "latency" in (e.get("load") or {}):  # an instructions-only entry has no load run
        hists = {"this run": e["load"]["latency"]}
        loads = {"this run": e["load"]}
        timed = [b for b in base if "latency" in (b.get("load") or {})]
        if timed:
            hists = {f"baseline ({timed[0]['target']['label']})": timed[0]["load"]["latency"],
                     **hists}  # fmt: skip
            loads = {"baseline": timed[0]["load"], **loads}
        chart_map = {
            "Latency by percentile": charts.percentile_curve(hists, e["name"]),
            "Latency and throughput over time": charts.load_timeline(loads),
        }
    if e["server"].get("process", {}).get("processes"):
        chart_map["CPU, RSS and event-loop lag over the steady window"] = charts.server_timeline(
            e["server"]["process"], e["server"].get("loop_lag")
        )
    profiles = e.get("profiles") or {}
    hotspots, artifacts = _profile_bits(profiles)
    findings, not_checked = _diagnosis(e)
    return ScenarioView(
        name=redact(e["name"]),
        kind=e["kind"],
        description=redact(e.get("description") or ""),
        target=redact(e["target"]["label"]),
        verdict=e["verdict"],
        profiled=bool(profiles),
        rows=rows,
        costs=[(k, redact(v)) for k, v in _costs(e) + _instruction_costs(e, base)],
        checks=e["checks"],
        reasons=[redact(r) for r in e["validity"]["reasons"]],
        charts=chart_map,
        hotspots=hotspots,
        artifacts=artifacts,
        comparison_verdict=verdict_of(sc) if sc else "",
        comparison_headline=redact(scenario_headline(sc)) if sc else "",
        notes=[redact(n) for n in (cmp or {}).get("notes", [])],
        findings=findings,
        not_checked=not_checked,
    )


def _value(e: Entry, key: str) -> Any:
    metric = BY_NAME.get(key)
    if metric is not None and metric.trust == "instructions":
        return metric.value(e)
    return e["summary"].get(key)


def _instruction_metrics(e: Entry) -> list[tuple[str, str, str]]:
    if not costdiff.processes([e]):
        return []
    return [
        (f"{p}_instructions_per_request", f"{p} instructions / request", "Ir")
        for p in costdiff.processes([e])
        if f"{p}_instructions_per_request" in BY_NAME and costdiff.busy([e], p)
    ]


def _instruction_costs(e: Entry, base: list[Entry]) -> list[tuple[str, str]]:
    """Where the instructions went (top C functions, most-called Python functions) and,
    against a baseline that counted them too, the functions that moved most."""
    out = []
    for p in costdiff.processes([e]):
        if not costdiff.busy([e], p):
            continue
        top = costdiff.top(e, p, "c", 5)
        if top:
            out.append((f"{p}: top C functions (self Ir / request)",
                        "; ".join(f"{k} {v:,.0f}" for k, v in top)))  # fmt: skip
        calls = costdiff.top(e, p, "python", 5)
        if calls:
            out.append((f"{p}: most-called Python functions (calls / request)",
                        "; ".join(f"{costdiff.short_name(k)} {v:.3g}" for k, v in calls)))  # fmt: skip
        for level, unit in (("python", "calls"), ("c", "Ir")):
            moved = costdiff.diff(base, [e], p, level, 5) if base else []
            if moved:
                out.append((
                    f"{p}: moved most vs baseline ({unit} / request)",
                    "; ".join(f"{costdiff.short_name(m.name)} {m.delta:+,.3g}" for m in moved),
                ))  # fmt: skip
    return out


def _kind_metrics(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    extra = []
    if "e2e_p95_ms" in s:
        extra += [
            ("e2e_p50_ms", "webhook → reply p50", "ms"),
            ("e2e_p95_ms", "webhook → reply p95", "ms"),
        ]
    if "queue_wait_p95_ms" in s:
        extra += [("queue_wait_p95_ms", "queue wait p95", "ms"), ("run_p95_ms", "job run p95", "ms"),
                  ("jobs_per_s", "jobs/s", "req/s")]  # fmt: skip
    return extra


def _costs(e: Entry) -> list[tuple[str, str]]:
    d = e.get("derived") or {}
    out = []
    redis = d.get("redis")
    if redis and redis.get("commands") is not None:
        out.append(("Redis commands / request", f"{redis['commands']:.2f}"))
        out.append(("new Redis connections / request", f"{redis.get('new_connections') or 0:.2f}"))
    ups = d.get("upstreams")
    if ups and ups.get("calls") is not None:
        out.append(("upstream calls / request", f"{ups['calls']:.2f}"))
        if ups.get("new_connections_per_call") is not None:
            out.append(
                ("new upstream connections / call", f"{ups['new_connections_per_call']:.2f}")
            )
    procs = (e["server"].get("process") or {}).get("processes", {})
    sent = e["summary"].get("requests") or 0
    if not procs:
        return out
    for name in ("service", "worker"):
        p = procs.get(name)
        if p and sent:
            out.append((f"{name} CPU ms / request", f"{1000 * p['cpu_seconds'] / sent:.2f}"))
    lag = e["server"].get("loop_lag") or {}
    if lag.get("samples"):
        out.append(("event-loop lag p99 / max", f"{lag['p99_ms']:.2f} / {lag['max_ms']:.2f} ms"))
    return out


def _profile_bits(profiles: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Top self-time functions of each profiler, and every artifact path (relative)."""
    hotspots: list[dict[str, Any]] = []
    artifacts: list[tuple[str, str]] = []
    for name, p in profiles.items():
        if not isinstance(p, dict):
            continue
        for path in p.get("artifacts", []) or []:
            artifacts.append((name, redact(str(path))))
        hs = p.get("hotspots") or {}
        for row in (hs.get("self") or [])[:8]:
            if not isinstance(row, dict):
                continue
            where = str(row.get("file") or "")
            if row.get("line") is not None:
                where += f":{row['line']}"
            hotspots.append({
                "profiler": name,
                "function": redact(str(row.get("function", ""))),
                "where": redact(where),
                "share": f"{100 * float(row.get('share') or 0):.1f} %",
                "category": str(row.get("category", "")),
            })  # fmt: skip
        if p.get("peak_mb") is not None:
            hotspots.append({
                "profiler": name, "function": "peak memory",
                "where": f"total allocated {p.get('total_allocated_mb', 0):.1f} MB",
                "share": f"{float(p['peak_mb']):.1f} MB", "category": "memory",
            })  # fmt: skip
    return hotspots, artifacts


def optimization_log(
    entries: list[Entry], baseline: dict[str, list[Entry]], by_cmp: dict[str, dict[str, Any]]
) -> list[SwitchEffect]:
    """Per switch: the finding, the change, and its measured effect where this run shows it.

    An effect is measured when a scenario the switch touches ran with the switch in one
    side and not in the other (this run against its baseline). When other switches also
    differ, the change is their combined effect, and the note says so.
    """
    log = []
    for switch in sw.CATALOG:
        effects = []
        combined: set[str] = set()
        for e in entries:
            if e["name"] not in switch.touches or not baseline.get(e["name"]):
                continue
            b = baseline[e["name"]][0]
            on_now = switch.name in e["target"].get("switches", [])
            on_before = switch.name in b["target"].get("switches", [])
            if on_now == on_before:
                continue
            others = set(e["target"].get("switches", [])) ^ set(b["target"].get("switches", []))
            combined |= others - {switch.name}
            m = {x["metric"]: x for x in by_cmp.get(e["name"], {}).get("metrics", [])}.get("p95_ms")
            before = m["baseline"] if m else b["summary"].get("p95_ms")
            after = m["candidate"] if m else e["summary"].get("p95_ms")
            change = m.get("change") if m else (after / before - 1 if before else None)
            effects.append({
                "scenario": e["name"],
                "before": _fmt(before, "ms"), "after": _fmt(after, "ms"),
                "change": _pct(change) + (f" {_ci(m.get('ci'))}" if m and m.get("ci") else ""),
                "verdict": (m["verdict"] + (f" ({_detectable(m)})"
                                            if _detectable(m) else ""))
                if m else "single run, no confidence interval",
            })  # fmt: skip
        note = ""
        if combined:
            note = (f"measured together with {len(combined)} other switch(es) "
                    f"({', '.join(sorted(combined))}): the change is their combined effect")  # fmt: skip
        elif not effects:
            note = "not measured in this run (no baseline scenario differs by this switch alone)"
        log.append(SwitchEffect(switch.name, switch.finding, switch.phase3, switch.optimized,
                                effects, note))  # fmt: skip
    return log
