"""An audit's ``summary.json`` -> plain rows of text, shared by the Markdown and HTML reports.

Pure functions of the summary: no measuring, no clock, no file access, so the two formats
show the same content and rendering twice gives the same text. Every verdict word shown
is one the summary holds (the gate's); nothing here upgrades or downgrades a verdict.
Missing parts and fields render as "n/a" or "not measured" rather than failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from perfaudit.analysis.compare import REPEATS_CAP  # repeats_needed above it: "more than"
from perfaudit.audit.analyze import CPU_SHARE

Summary = dict[str, Any]
Result = dict[str, Any]  # a MetricResult dict
SIDES = ("add_one", "drop_one")
SIDE_TITLES = {"add_one": "add-one", "drop_one": "drop-one"}
EFFECT_VERDICTS = ("improved", "regressed")
PARTS = ("ablation", "instructions", "capacity", "profiles")


# -- formatting ------------------------------------------------------------------------
def fmt_value(v: float | None, unit: str = "") -> str:
    """A metric's value in its unit (seconds from 1000 ms on)."""
    if v is None:
        return "n/a"
    if unit == "ms":
        if v >= 1000:
            return f"{v / 1000:.3g} s"
        return f"{v:.3g} ms" if v < 1 else f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"
    if unit == "Ir/req":
        return f"{v / 1e6:.4g} M Ir/req" if v >= 1e6 else f"{v / 1e3:.4g} k Ir/req"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit.startswith("/"):
        return f"{v:.3g}{unit}"
    return f"{v:.3g}{' ' + unit if unit else ''}"


def fmt_rel(x: float | None) -> str:
    """A relative change: "+12.3 %", "×3.4" from +100 % on."""
    if x is None:
        return "n/a"
    if x >= 1.0:
        return f"×{1 + x:.3g}" if x < 99 else f"×{1 + x:,.0f}"
    return f"{_zero(100 * x):+.1f} %"


def _zero(x: float) -> float:
    """0.0 for anything that rounds to it: no "-0.0 %"."""
    return 0.0 if abs(x) < 0.05 else x


def fmt_abs(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    x = 0.0 if abs(x) < 1e-12 else x  # no "-0"
    return f"{x:+.3g}{unit if unit.startswith('/') else ''}"


def fmt_ms(v: float | None) -> str:
    return fmt_value(v, "ms")


def fmt_limit(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g} ms"


def fmt_rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g} req/s"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def anchor(name: str) -> str:
    """A stable HTML id / Markdown anchor for a switch section."""
    return "switch-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "x"


# -- one metric result -----------------------------------------------------------------
def unit_of(summary: Summary, metric: str) -> str:
    return str(((summary.get("metrics") or {}).get(metric) or {}).get("unit") or "")


def better_of(summary: Summary, metric: str) -> str:
    return str(((summary.get("metrics") or {}).get(metric) or {}).get("better") or "lower")


def is_abs(m: Result) -> bool:
    return m.get("scale") == "abs"


def change_text(m: Result, unit: str = "", factor: bool = True) -> str:
    """The change with its CI: relative for log metrics, in the unit for abs metrics."""
    if is_abs(m):
        if m.get("diff") is None:
            return "n/a"
        ci = m.get("diff_ci")
        text = fmt_abs(m["diff"], unit)
        return text + (f" (CI {fmt_abs(ci[0])}..{fmt_abs(ci[1])})" if ci else "")
    c = m.get("change")
    if c is None:
        return "n/a"
    text = fmt_rel(c)
    if factor and -1 < c <= -0.5:  # -99.6 % hides a 263-fold drop
        text += f" (÷{1 / (1 + c):.3g})"
    ci = m.get("ci")
    return text + (f" (CI {fmt_rel(ci[0])}..{fmt_rel(ci[1])})" if ci else "")


def detectable_text(m: Result, unit: str = "") -> str:
    """The smallest change the comparison could have called, in the change's terms."""
    d = m.get("detectable")
    if d is None:
        return ""
    if is_abs(m):
        return f"±{d:.3g}{unit if unit.startswith('/') else ' ' + unit if unit else ''}"
    return f"×{1 + d:.3g}" if d >= 1 else f"±{100 * d:.1f} %"


def verdict_note(m: Result, unit: str = "") -> str:
    """The verdict, with what an inconclusive comparison could have seen."""
    v = str(m.get("verdict") or "inconclusive")
    if v != "inconclusive":
        return v
    seen = detectable_text(m, unit)
    return f"inconclusive: could have seen {seen}" if seen else "inconclusive: no noise estimate"


def improvement(m: Result, better: str) -> float | None:
    """The relative improvement (positive: better), for log metrics and abs ones with a
    non-zero baseline."""
    c = m.get("change")
    if c is None:
        base, diff = m.get("baseline"), m.get("diff")
        if not base or diff is None:
            return None
        c = diff / base
    return -c if better == "lower" else c


def improvement_text(m: Result, better: str) -> str:
    imp = improvement(m, better)
    if imp is None:
        return "n/a"
    text = f"{_zero(100 * imp):+.1f} %"
    c = m.get("change")
    if c is not None and better == "lower" and -1 < c <= -0.5:
        text += f" ({1 / (1 + c):.3g}× lower)"
    return text


def effect_size(m: Result) -> float:
    """How large a change is, across scales: |relative change|, else |diff| / baseline."""
    if m.get("change") is not None:
        return abs(m["change"])
    base = m.get("baseline") or 0
    return abs((m.get("diff") or 0) / base) if base else 0.0


# -- the view --------------------------------------------------------------------------
@dataclass
class Effect:
    """One side (add-one or drop-one) of one metric: before → after, change, verdict."""

    before: str
    after: str
    change: str
    verdict: str  # the gate's word: improved | regressed | unchanged | inconclusive | n/a
    note: str  # the verdict with what an inconclusive side could have seen


EMPTY = Effect("", "", "", "n/a", "not measured")


@dataclass
class MetricRow:
    label: str
    sides: dict[str, Effect]  # "add_one"/"drop_one", or "combined"


@dataclass
class ScenarioBlock:
    scenario: str
    rows: list[MetricRow]
    verdicts: dict[str, str]  # side -> the scenario verdict
    notes: list[str] = field(default_factory=list)


@dataclass
class Top:
    """One of a switch's largest conclusive effects."""

    text: str  # "p95 latency on callback-success (add-one): -99.6 % (CI ...)"
    verdict: str
    metric: str
    scenario: str
    side: str
    result: Result


@dataclass
class SwitchView:
    name: str
    anchor: str
    verdict: str
    finding: str
    phase3: str
    optimized: str
    code: list[tuple[str, str]]  # (file, function)
    measured_on: list[str]
    top: list[Top]
    blocks: list[ScenarioBlock]
    instructions: list[ScenarioBlock]
    interactions: list[str]
    effect_line: str  # the one-liner of "Findings -> fixes"
    chart: str | None = None  # relative path of its PNG


@dataclass
class CapacityRow:
    scenario: str
    phase3: str
    optimized: str
    ratio: str
    phase3_limit: str
    optimized_limit: str


@dataclass
class TargetRow:
    target: str
    source: str
    scenario: str
    limit: str
    phase3: str  # "p95 / p99"
    phase3_status: str
    optimized: str
    optimized_status: str


@dataclass
class OpportunityRow:
    kind: str
    scenario: str
    process: str
    function: str
    location: str
    category: str
    share: str
    size: str


@dataclass
class AuditView:
    title: str
    audit_id: str
    created_at: str
    status: str
    headline: str
    switches: list[SwitchView]
    capacity: list[CapacityRow]
    capacity_note: str
    targets: list[TargetRow]
    targets_note: str
    combined: list[ScenarioBlock]
    combined_note: str
    own_hotspots: list[OpportunityRow]
    cpu_hotspots: list[OpportunityRow]
    allocators: list[OpportunityRow]
    opportunities_note: str
    recommendations: list[str]
    settings: list[tuple[str, str]]
    environment: list[tuple[str, str]]
    parts: list[tuple[str, str, str, str]]  # part, status, wall time, runs
    method_notes: list[str]
    charts: dict[str, str] = field(default_factory=dict)  # "capacity"/"targets" -> path


def effect(m: Result | None, unit: str) -> Effect:
    if not m:
        return EMPTY
    return Effect(
        before=fmt_value(m.get("baseline"), unit),
        after=fmt_value(m.get("candidate"), unit),
        change=change_text(m, unit),
        verdict=str(m.get("verdict") or "inconclusive"),
        note=verdict_note(m, unit),
    )


def block(summary: Summary, scenario: str, by_side: dict[str, Result | None]) -> ScenarioBlock:
    """One scenario's metrics, the given sides side by side (metric order: first seen)."""
    order: list[str] = []
    labels: dict[str, str] = {}
    found: dict[str, dict[str, Result]] = {}
    notes: list[str] = []
    verdicts: dict[str, str] = {}
    for side, comparison in by_side.items():
        comparison = comparison or {}
        verdicts[side] = str(comparison.get("verdict") or "missing")
        for n in comparison.get("notes") or []:
            notes.append(f"{SIDE_TITLES.get(side, side)}: {n}")
        for m in comparison.get("metrics") or []:
            name = m.get("metric") or "?"
            if name not in found:
                order.append(name)
                found[name] = {}
                labels[name] = m.get("label") or name
            found[name][side] = m
    rows = [
        MetricRow(labels[n], {s: effect(found[n].get(s), unit_of(summary, n)) for s in by_side})
        for n in order
    ]
    return ScenarioBlock(scenario, rows, verdicts, notes)


def _comparisons(s: dict[str, Any], key: str | None = None) -> list[tuple[str, str, Result]]:
    """(side, scenario, comparison) of a switch's ablation (or its instructions)."""
    src = s if key is None else (s.get(key) or {})
    return [
        (side, scenario, c or {}) for side in SIDES for scenario, c in (src.get(side) or {}).items()
    ]


def top_effects(summary: Summary, s: dict[str, Any], top: int = 3) -> list[Top]:
    """The switch's largest conclusive effects (improved or regressed), largest first; ties
    keep the summary's order so the result is stable."""
    found: list[Top] = []
    for side, scenario, c in _comparisons(s) + _comparisons(s, "instructions"):
        for m in c.get("metrics") or []:
            if m.get("verdict") not in EFFECT_VERDICTS:
                continue
            unit = unit_of(summary, m.get("metric", ""))
            text = (f"{m.get('label') or m.get('metric')} on {scenario} "
                    f"({SIDE_TITLES[side]}): {change_text(m, unit)}")  # fmt: skip
            found.append(Top(text, m["verdict"], m.get("metric", ""), scenario, side, m))
    found.sort(key=lambda t: effect_size(t.result), reverse=True)
    return found[:top]


def _code(entries: list[str]) -> list[tuple[str, str]]:
    out = []
    for e in entries or []:
        file, _, function = str(e).partition(":")
        out.append((file, function))
    return out


def interaction_text(i: dict[str, Any], unit: str) -> str:
    add = (
        fmt_abs(i.get("add_diff"), unit)
        if i.get("add_change") is None
        else fmt_rel(i["add_change"])
    )
    drop = (
        fmt_abs(i.get("drop_diff"), unit)
        if i.get("drop_change") is None
        else fmt_rel(i["drop_change"])
    )
    return (
        f"{i.get('label') or i.get('metric')} on {i.get('scenario')}: add-one (on phase3) says "
        f"{i.get('add_one')} ({add}), drop-one (from optimized) says {i.get('drop_one')} "
        f"({drop}). The effect depends on the other switches: alone on phase3 it is not what "
        "it is with every other switch on."
    )


def effect_line(s: dict[str, Any], top: list[Top]) -> str:
    v = str(s.get("verdict") or "inconclusive")
    if top:
        return f"{v}: " + "; ".join(t.text for t in top[:2])
    if v == "unchanged":
        return "unchanged at this resolution on every measured metric"
    if v == "inconclusive":
        return "inconclusive at this resolution" + _needed_phrase(s)
    return v


def _needed_phrase(s: dict[str, Any]) -> str:
    best = needed(s)
    if best is None:
        return ""
    n, label = best
    words = f"more than {REPEATS_CAP}" if n > REPEATS_CAP else f"about {n}"
    return f" ({words} repeats per side would resolve {label})"


def needed(s: dict[str, Any]) -> tuple[int, str] | None:
    """The fewest repeats per side that would resolve one of the switch's inconclusive
    metrics, and which (the cheapest way to a verdict)."""
    best: tuple[int, str] | None = None
    for _, scenario, c in _comparisons(s) + _comparisons(s, "instructions"):
        for m in c.get("metrics") or []:
            n = m.get("repeats_needed")
            if m.get("verdict") == "inconclusive" and n:
                label = f"{m.get('label') or m.get('metric')} on {scenario}"
                if best is None or n < best[0]:
                    best = (int(n), label)
    return best


def switch_view(summary: Summary, s: dict[str, Any]) -> SwitchView:
    name = str(s.get("name") or "?")
    top = top_effects(summary, s)
    measured = list(s.get("measured_on") or [])
    scenarios = measured or sorted({sc for _, sc, _ in _comparisons(s)})
    blocks = [
        block(summary, sc, {side: (s.get(side) or {}).get(sc) for side in SIDES})
        for sc in scenarios
    ]
    ir = s.get("instructions") or {}
    ir_scenarios = sorted({sc for side in SIDES for sc in (ir.get(side) or {})})
    instructions = [
        block(summary, sc, {side: (ir.get(side) or {}).get(sc) for side in SIDES})
        for sc in ir_scenarios
    ]
    interactions = [
        interaction_text(i, unit_of(summary, i.get("metric", "")))
        for i in s.get("interactions") or []
    ]
    return SwitchView(
        name=name, anchor=anchor(name), verdict=str(s.get("verdict") or "inconclusive"),
        finding=str(s.get("finding") or ""), phase3=str(s.get("phase3") or ""),
        optimized=str(s.get("optimized") or ""), code=_code(s.get("code") or []),
        measured_on=scenarios, top=top, blocks=blocks, instructions=instructions,
        interactions=interactions, effect_line=effect_line(s, top),
    )  # fmt: skip


# -- capacity, targets, combined ------------------------------------------------------
def capacity_text(r: dict[str, Any] | None) -> str:
    """A capacity, "≥" when the search stopped before the target failed."""
    if not r:
        return "not measured"
    cap, limited = r.get("capacity"), r.get("limited_by")
    if cap is None:
        first = r.get("first_failing")
        return f"< {first:g} req/s" if first else "none"
    return f"{cap:g} req/s" if limited == "target" else f"≥ {cap:g} req/s"


def limit_text(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    limited = str(r.get("limited_by") or "?")
    words = {
        "target": "the target",
        "max_rate": "the search's max rate",
        "invalid": "an invalid step",
    }
    text = words.get(limited, limited)
    return f"{text}: {r['reason']}" if r.get("reason") else text


def capacity_rows(summary: Summary) -> list[CapacityRow]:
    rows = []
    for row in summary.get("capacity") or []:
        p3, opt = row.get("phase3"), row.get("optimized")
        ratio = (row.get("ratio") or {}).get("text") or "n/a"
        rows.append(CapacityRow(str(row.get("scenario")), capacity_text(p3), capacity_text(opt),
                                ratio, limit_text(p3), limit_text(opt)))  # fmt: skip
    return rows


def _target_side(side: dict[str, Any] | None) -> tuple[str, str]:
    if not side:
        return "not measured", "n/a"
    text = f"{fmt_ms(side.get('p95_ms'))} / {fmt_ms(side.get('p99_ms'))}"
    return text, str(side.get("status") or "n/a")


def target_rows(summary: Summary) -> list[TargetRow]:
    rows = []
    for t in summary.get("targets") or []:
        p3, p3_status = _target_side(t.get("phase3"))
        opt, opt_status = _target_side(t.get("optimized"))
        limit = f"{t.get('metric', 'p95_ms').removesuffix('_ms')} ≤ {fmt_limit(t.get('limit_ms'))}"
        rows.append(TargetRow(str(t.get("target")), str(t.get("source") or ""),
                              str(t.get("scenario")), limit, p3, p3_status, opt, opt_status))  # fmt: skip
    return rows


def combined_blocks(summary: Summary) -> list[ScenarioBlock]:
    return [
        block(summary, sc, {"combined": c}) for sc, c in (summary.get("combined") or {}).items()
    ]


# -- opportunities and recommendations -------------------------------------------------
def _opportunity(o: dict[str, Any]) -> OpportunityRow:
    loc = str(o.get("file") or "?") + (f":{o['line']}" if o.get("line") is not None else "")
    share = o.get("share")
    size = o.get("size_mb")
    return OpportunityRow(
        kind=str(o.get("kind") or ""), scenario=str(o.get("scenario") or ""),
        process=str(o.get("process") or ""), function=str(o.get("function") or "?"),
        location=loc, category=str(o.get("category") or ""),
        share="n/a" if share is None else f"{100 * share:.1f} %",
        size="" if size is None else f"{size:.1f} MB",
    )  # fmt: skip


def opportunity_rows(summary: Summary) -> tuple[list[OpportunityRow], ...]:
    """(own-code CPU hotspots, other functions above 5 % CPU, top allocators)."""
    opps = summary.get("opportunities") or []
    cpu = [o for o in opps if o.get("kind") == "cpu"]
    own = [_opportunity(o) for o in cpu if o.get("category") == "own"]
    other = [
        _opportunity(o) for o in cpu
        if o.get("category") != "own" and (o.get("share") or 0) >= CPU_SHARE
    ]  # fmt: skip
    alloc = [_opportunity(o) for o in opps if o.get("kind") == "alloc"]
    return own, other, alloc


def part_status(summary: Summary, part: str) -> str | None:
    """A part's status ("complete", "interrupted", ...), None when it never started."""
    p = (summary.get("parts") or {}).get(part)
    return None if p is None else str(p.get("status") or "unknown")


def planned(summary: Summary, part: str) -> bool:
    plan = summary.get("plan") or {}
    if part == "ablation":
        return True
    key = {"profiles": "profile_scenarios"}.get(part, part)
    return bool(plan.get(key))


def missing_note(summary: Summary, part: str, what: str) -> str:
    """Why a section is empty: not planned, not run, or run without results."""
    status = part_status(summary, part)
    if not planned(summary, part) and status is None:
        return f"Not part of this audit's plan: no {what}."
    if status is None:
        return f"The {part} part did not run: no {what}."
    if status != "complete":
        return f"The {part} part is {status}: no {what}."
    return f"No {what} in the results."


def recommendations(summary: Summary, switches: list[SwitchView]) -> list[str]:
    out: list[str] = []
    for t in summary.get("targets") or []:
        opt = t.get("optimized") or {}
        if opt.get("status") in ("missed", "borderline"):
            out.append(
                f'Target "{t.get("target")}" ({t.get("scenario")}, p95 ≤ {fmt_limit(t.get("limit_ms"))}) '
                f"is {opt['status']} by the optimized variant (p95 {fmt_ms(opt.get('p95_ms'))}): "
                "profile that scenario next."
            )
        elif t.get("optimized") is None:
            out.append(f'Target "{t.get("target")}" was not measured on the optimized variant.')
    for s in summary.get("switches") or []:
        if s.get("verdict") == "inconclusive":
            best = needed(s)
            more = (
                f": {('more than ' + str(REPEATS_CAP)) if best[0] > REPEATS_CAP else 'about ' + str(best[0])}"
                f" repeats per side would resolve {best[1]}"
                if best else ": a longer window or a deterministic measure (instructions) could decide it"
            )  # fmt: skip
            out.append(f"Switch {s.get('name')} is inconclusive at this resolution{more}.")
        if s.get("interactions"):
            out.append(
                f"Switch {s.get('name')} interacts with the others (add-one and drop-one disagree): "
                "judge it with the full set on, as shipped."
            )
    for row in summary.get("capacity") or []:
        opt = row.get("optimized") or {}
        if opt.get("limited_by") == "max_rate":
            out.append(f"Capacity of {row.get('scenario')} (optimized) reached the search's max rate: "
                       "raise capacity_max_rate to find the real limit.")  # fmt: skip
        elif opt.get("limited_by") == "invalid":
            out.append(f"Capacity search of {row.get('scenario')} (optimized) stopped at an invalid "
                       "step: rerun it on a quieter machine.")  # fmt: skip
    own, other, _ = opportunity_rows(summary)
    for o in (own + other)[:3]:
        out.append(f"{o.function} ({o.location}) takes {o.share} of {o.process} CPU on "
                   f"{o.scenario}: the largest remaining hotspot to look at.")  # fmt: skip
    for part in PARTS:
        status = part_status(summary, part)
        if planned(summary, part) and status != "complete":
            out.append(f"The {part} part is {status or 'not run'}: rerun the audit to complete it.")
    return out


# -- method and cost -------------------------------------------------------------------
def _setting(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) if v else "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "n/a" if v is None else str(v)


def method(
    summary: Summary,
) -> tuple[
    list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str, str, str]], list[str]
]:
    plan = summary.get("plan") or {}
    settings = [(k, _setting(v)) for k, v in (plan.get("settings") or {}).items()]
    env = summary.get("environment") or {}
    cal = env.get("calibration") or {}
    commit = env.get("git_commit")
    environment = [
        ("CPU", f"{env.get('cpu_model') or 'n/a'} ({env.get('cpu_count') or '?'} CPUs)"),
        ("memory", f"{env['memory_gb']} GB" if env.get("memory_gb") else "n/a"),
        ("Python", str(env.get("python") or "n/a")),
        ("platform", str(env.get("platform") or "n/a")),
        ("git commit", f"{commit[:12]}{' (dirty)' if env.get('git_dirty') else ''}" if commit else "n/a"),
        ("calibration", f"{cal['workload']}: median {cal['median_s']:.3f} s, spread {100 * (cal.get('spread') or 0):.1f} %"
         if cal.get("median_s") is not None else "n/a"),
    ]  # fmt: skip
    packages = env.get("packages") or {}
    if packages:
        environment.append(("packages", ", ".join(f"{k} {v}" for k, v in packages.items())))
    parts = []
    total = 0.0
    for name, p in (summary.get("parts") or {}).items():
        wall = p.get("wall_s")
        total += float(wall or 0)
        parts.append(
            (name, str(p.get("status") or "?"), fmt_seconds(wall), _setting(p.get("runs")))
        )
    for name in PARTS:
        if planned(summary, name) and name not in (summary.get("parts") or {}):
            parts.append((name, "not run", "n/a", "n/a"))
    parts.append(("total", str(summary.get("status") or "?"), fmt_seconds(total), ""))
    s = plan.get("settings") or {}
    configs = plan.get("configs") or []
    notes = [
        f"Every configuration ran {s.get('repeats', '?')} interleaved repeat(s) per scenario, "
        f"each a fresh start of the service with {s.get('warmup_s', '?')} s warm-up and a "
        f"{s.get('duration_s', '?')} s measured window; {len(configs)} configurations.",
        "add-one compares phase3 with phase3 + the switch; drop-one compares optimized without "
        "the switch with optimized. Both are oriented without the switch → with it, so "
        "\"improved\" means the switch helps.",
        "A verdict needs the change to clear the noise floor learned from the repeats, with a "
        "CI that excludes no change; otherwise it is inconclusive and the table names the "
        "smallest change the comparison could have seen.",
        f"Audit {summary.get('audit_id', '?')}: {summary.get('created_at', '?')} → "
        f"{summary.get('finished_at') or 'n/a'}; command: {' '.join(summary.get('command') or []) or 'n/a'}.",
    ]  # fmt: skip
    return settings, environment, parts, notes


# -- everything ------------------------------------------------------------------------
def build_view(summary: Summary, charts: dict[str, str] | None = None) -> AuditView:
    """The report's content. ``charts``: chart key ("switch-<name>", "capacity",
    "targets") -> relative path of its image, for those drawn."""
    charts = charts or {}
    switches = [switch_view(summary, s) for s in summary.get("switches") or []]
    for sv in switches:
        sv.chart = charts.get(f"switch-{sv.name}")
    own, other, alloc = opportunity_rows(summary)
    settings, environment, parts, notes = method(summary)
    return AuditView(
        title="Phase 4 performance audit",
        audit_id=str(summary.get("audit_id") or "?"),
        created_at=str(summary.get("created_at") or "?"),
        status=str(summary.get("status") or "?"),
        headline=str(summary.get("headline") or "no switch measured"),
        switches=switches,
        capacity=capacity_rows(summary),
        capacity_note=missing_note(summary, "capacity", "capacity search"),
        targets=target_rows(summary),
        targets_note="No target scenario was measured on either variant.",
        combined=combined_blocks(summary),
        combined_note=missing_note(summary, "ablation", "phase3 → optimized comparison"),
        own_hotspots=own, cpu_hotspots=other, allocators=alloc,
        opportunities_note=missing_note(summary, "profiles", "profiles of the optimized variant"),
        recommendations=recommendations(summary, switches),
        settings=settings, environment=environment, parts=parts, method_notes=notes,
        charts={k: v for k, v in charts.items() if not k.startswith("switch-")},
    )  # fmt: skip
