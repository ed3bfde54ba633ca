"""The CI gate: ``perfaudit run --baseline NAME --repeat N --junit FILE --summary FILE``.

Runs the candidate N times and, when the baseline cannot be trusted as stored (another
machine, other load settings, another cost environment) or is a configuration
(``variant:phase3``, ``git:REV``), the baseline's configuration N times too, interleaved;
then thresholds (medians over repeats), the comparison, and every CI output. Exit code:
3 invalid > 1 a threshold failed or a regression > 0.

Trust is per class of metric (perfaudit.baseline): a stored baseline that matches this
machine is trusted for time metrics only after a *canary* (one repeat of its
configuration) falls inside its own noise; otherwise that scenario is re-measured, the
canary kept as the first baseline repeat. A time regression fails CI only once a second,
independent round of N repeats per side confirms it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from perfaudit import baseline as bl
from perfaudit.analysis.compare import Comparison, GateSettings, compare_entries
from perfaudit.analysis.findings._gather import gather
from perfaudit.analysis.metrics import BY_NAME, Entry
from perfaudit.refservice import switches as sw
from perfaudit.report import junit, markdown_summary
from perfaudit.report.outcome import GateReport, build_report
from perfaudit.report.terminal import print_report
from perfaudit.results import RunRecord, environment, new_run_id
from perfaudit.run.gitrev import GitRevision, GitRevisionError, WorkingTree
from perfaudit.run.repeat import (
    BASELINE,
    CANDIDATE,
    Runner,
    Side,
    record_path,
    run_repeats,
)
from perfaudit.run.runner import RunEvents, RunOptions, prepare, run_scenarios
from perfaudit.scenario import Scenario

DEFAULT_REPEAT = 3
COMPARISON_FILE = "comparison.json"
CANARY_FOLDER = "canary"  # repeats/canary-1/: the canary repeat of the baseline side
RERUN = "confirm"  # <run>/confirm/: the second round of a time regression

Untrusted = str | bl.Reasons  # all metrics, or per trust class (perfaudit.analysis.compare)


class GateError(Exception):
    """A usage or configuration error (exit code 2): a bad baseline spec or file."""


@dataclass(frozen=True)
class GateOptions:
    baseline: str | None = None  # a stored baseline (name or file), variant:<label>, git:<rev>
    repeat: int = 1
    junit: Path | None = None
    summary: Path | None = None
    baselines_dir: Path = bl.DEFAULT_DIR
    settings: GateSettings = GateSettings()
    # A time-based regression fails only if a second round (N more repeats per side,
    # interleaved) confirms it; instruction and count verdicts are deterministic enough.
    confirm: bool = True
    # --fail-on-findings: findings at or above this severity fail the JUnit cases and exit 1.
    fail_on_findings: str | None = None


@dataclass
class Plan:
    sides: list[Side]
    stored: bl.Baseline | None
    remeasured: list[str]  # scenarios whose baseline is measured in this invocation
    untrusted: dict[str, Untrusted]  # scenario -> why (per class) it cannot give a verdict
    label: str
    mode: str
    notes: list[str]
    # Stored-baseline scenarios that match this machine and settings: trusted for time
    # metrics once one repeat of the baseline's configuration (the canary) agrees.
    canary: list[str] = field(default_factory=list)
    # Scenario -> its baseline's configuration, for running it again (canary, rerun).
    again: dict[str, Scenario] = field(default_factory=dict)
    runner: Runner = run_scenarios  # how the baseline side runs (git: that revision)
    base_options: RunOptions = RunOptions()
    compared: list[str] = field(default_factory=list)  # scenarios the stored baseline has
    candidate_runner: Runner = run_scenarios


# -- the baseline side -------------------------------------------------------------------
def parse_variant(label: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``phase3``, ``phase3+redis-pool``, ``optimized-http-keepalive`` (the target label
    format) -> (variant, with, without)."""
    variant = next(
        (v for v in sorted(sw.VARIANTS, key=len, reverse=True) if label.startswith(v)), None
    )
    if variant is None:
        raise GateError(f"variant:{label}: unknown variant (known: {', '.join(sw.VARIANTS)})")
    rest = label[len(variant) :]
    with_: list[str] = []
    without: list[str] = []
    while rest:
        op, rest = rest[0], rest[1:]
        name = next(
            (n for n in sorted(sw.NAMES, key=len, reverse=True) if rest.startswith(n)), None
        )
        if op not in "+-" or name is None:
            raise GateError(
                f"variant:{label}: expected +switch or -switch after {label[: len(label) - len(rest) - 1]!r} "
                f"(switches: {', '.join(sw.NAMES)})"
            )
        (with_ if op == "+" else without).append(name)
        rest = rest[len(name) :]
    return variant, tuple(with_), tuple(without)


def _retarget(
    s: Scenario, variant: str, with_: tuple[str, ...], without: tuple[str, ...]
) -> Scenario:
    return replace(s, target=replace(s.target, variant=variant, with_=with_, without=without))


def _plain(options: RunOptions) -> RunOptions:
    """The baseline side's options: its targets are set per scenario, not overridden."""
    return replace(options, variant=None, with_=(), without=())


def _latency_only(options: RunOptions) -> RunOptions:
    """A canary or a rerun checks time metrics: no callgrind run (minutes, and its counts
    need no second look)."""
    return replace(options, measure=("latency",))


def plan(scenarios: list[Scenario], options: RunOptions, gate: GateOptions) -> Plan:
    candidate = Side(CANDIDATE, scenarios, options)
    if not gate.baseline:
        return Plan([candidate], None, [], {}, "", "runs", [])
    spec = gate.baseline
    if spec.startswith("git:"):
        try:
            rev = GitRevision(spec.removeprefix("git:"))
        except GitRevisionError as exc:
            raise GateError(str(exc)) from None
        side = Side(BASELINE, scenarios, options, runner=rev)
        notes = [f"baseline {spec}: perfaudit at {rev.label} (its service, worker and measuring "
                 "code) is run side by side with the candidate, interleaved, from a tree "
                 "exported with git archive"]  # fmt: skip
        candidate_runner: Runner = run_scenarios
        if any("instructions" in prepare(s, options).measure for s in scenarios):
            try:
                tree = WorkingTree()
            except GitRevisionError as exc:
                raise GateError(str(exc)) from None
            candidate_runner = tree
            candidate = Side(CANDIDATE, scenarios, options, runner=tree)
            notes.append(f"instructions: the candidate runs from {tree.label}, exported the "
                         "same way, so both sides run from paths of the same length")  # fmt: skip
        return Plan(
            [side, candidate], None, [s.name for s in scenarios], {}, rev.label, "side by side",
            notes, again={s.name: s for s in scenarios}, runner=rev, base_options=options,
            candidate_runner=candidate_runner,
        )  # fmt: skip
    if spec.startswith("variant:"):
        variant, with_, without = parse_variant(spec.removeprefix("variant:"))
        ref = [_retarget(s, variant, with_, without) for s in scenarios if s.target.is_reference]
        untrusted: dict[str, Untrusted] = {
            s.name: "an external target has no variant to re-run"
            for s in scenarios
            if not s.target.is_reference
        }
        side = Side(BASELINE, ref, _plain(options))
        return Plan(
            [side, candidate], None, [s.name for s in ref], untrusted,
            f"variant {spec.removeprefix('variant:')}", "side by side",
            [f"baseline {spec} is run side by side with the candidate, interleaved"],
            again={s.name: s for s in ref}, base_options=_plain(options),
        )  # fmt: skip
    try:
        stored = bl.load(spec, gate.baselines_dir)
    except bl.BaselineError as exc:
        raise GateError(str(exc)) from None
    return _plan_stored(stored, scenarios, options, candidate)


def _rerunnable(s: Scenario, t: dict[str, Any]) -> tuple[Scenario | None, str]:
    """The stored baseline's configuration of ``s`` as a scenario to run, or why not."""
    if not s.target.is_reference or t.get("service", "reference") != "reference":
        return None, "an external target cannot be re-run"
    try:
        sw.resolve(t["variant"], t.get("with", ()), t.get("without", ()))
    except (sw.UnknownSwitchError, KeyError) as exc:
        return None, f"its target cannot be re-run ({exc})"
    return _retarget(s, t["variant"], tuple(t.get("with", ())), tuple(t.get("without", ()))), ""


CLASS_TEXT = {bl.TIME: "time", bl.COUNT: "count", bl.INSTRUCTIONS: "instruction"}


def _classes(reasons: bl.Reasons) -> str:
    return " and ".join(CLASS_TEXT[c] for c in bl.TRUST_CLASSES if c in reasons)


def _why(reasons: bl.Reasons) -> str:
    return "; ".join(dict.fromkeys(reasons.values()))


def _plan_stored(
    stored: bl.Baseline, scenarios: list[Scenario], options: RunOptions, candidate: Side
) -> Plan:
    planned = {s.name: {"scenario": prepare(s, options).to_dict()} for s in scenarios}
    comp = bl.comparability(stored, environment(), planned)
    notes: list[str] = []
    if comp.missing:
        notes.append(f"baseline {stored.name} has no {', '.join(comp.missing)}: not compared")
    targets = stored.targets()
    retargeted: list[Scenario] = []
    untrusted: dict[str, Untrusted] = {}
    again: dict[str, Scenario] = {}
    canary: list[str] = []
    trusted: list[str] = []
    for s in scenarios:
        if s.name in comp.missing:
            continue
        rerun, why_not = _rerunnable(s, targets[s.name])
        if rerun is not None:
            again[s.name] = rerun
        reasons = comp.reasons(s.name)
        if not reasons:
            if bl.TIME not in comp.needs.get(s.name, (bl.TIME,)):
                trusted.append(s.name)
            elif rerun is not None:
                canary.append(s.name)
            else:  # no canary possible: counts and instructions stand, time does not
                untrusted[s.name] = {
                    bl.TIME: "this machine is not shown to run it as fast: no canary repeat is "
                    f"possible ({why_not})"
                }
                trusted.append(s.name)
            continue
        if rerun is None:
            untrusted[s.name] = {c: f"{why}, and {why_not}" for c, why in reasons.items()}
            continue
        retargeted.append(rerun)
        notes.append(
            f"{s.name}: baseline {stored.name} is not trusted for {_classes(reasons)} verdicts "
            f"({_why(reasons)}); its configuration ({bl.target_label(targets[s.name])}) is "
            "re-measured side by side"
        )
    if canary:
        notes.append(
            f"baseline {stored.name} (recorded {stored.source.get('recorded_at', stored.created_at)})"
            f" matches this machine, its calibration and the load settings for {', '.join(canary)}:"
            " one canary repeat of its configuration checks that this machine runs it as it did"
            " before its time metrics are trusted"
        )
    if trusted:
        notes.append(f"baseline {stored.name} is trusted as stored for: {', '.join(trusted)}")
    sides = [Side(BASELINE, retargeted, _plain(options)), candidate] if retargeted else [candidate]
    p = Plan(
        sides, stored, [s.name for s in retargeted], untrusted, stored.label(), "", notes,
        canary=canary, again=again, base_options=_plain(options),
        compared=[s.name for s in scenarios if s.name not in comp.missing],
    )  # fmt: skip
    p.mode = _mode(p)
    return p


def _mode(p: Plan) -> str:
    remeasured = [n for n in p.compared if n in p.remeasured]
    if not remeasured:
        return "stored"
    return "re-measured" if len(remeasured) == len(p.compared) else "stored + re-measured"


def baseline_side(
    p: Plan, names: list[str], done: frozenset[str] = frozenset(), folder: str | None = None
) -> Side | None:
    """The baseline side running the baseline configuration of ``names`` (those that can
    be run again)."""
    scenarios = [p.again[n] for n in names if n in p.again]
    if not scenarios:
        return None
    return Side(BASELINE, scenarios, p.base_options, p.runner, done, folder)


def with_runner(p: Plan, runner: Runner) -> Plan:
    """The plan with ``runner`` wherever it would call :func:`run_scenarios`."""

    def swap(r: Runner) -> Runner:
        return runner if r is run_scenarios else r

    return replace(
        p, sides=[replace(s, runner=swap(s.runner)) for s in p.sides], runner=swap(p.runner),
        candidate_runner=swap(p.candidate_runner),
    )  # fmt: skip


# -- the canary --------------------------------------------------------------------------
def run_canary(
    p: Plan, out_dir: Path, events: RunEvents, command: list[str], run_id: str
) -> dict[str, RunRecord]:
    """One repeat of the baseline configuration of every scenario waiting for a canary."""
    side = baseline_side(p, p.canary, folder=CANARY_FOLDER)
    if side is None:
        return {}
    side = replace(side, options=_latency_only(side.options))
    events.note(
        f"canary: one repeat of {p.label} for {', '.join(p.canary)}, to check that this "
        "machine runs it as the baseline recorded"
    )
    records = run_repeats([side], 1, out_dir, events, command, run_id, label=CANARY_FOLDER)
    for e in records[BASELINE].scenarios:
        e["canary"] = True
    return records


def after_canary(p: Plan, canary: list[Entry], repeat: int) -> Plan:
    """The plan once the canaries are in: a scenario whose canary fell outside the stored
    repeats' noise is re-measured side by side, its canary reused as baseline repeat 1."""
    assert p.stored is not None
    stored = p.stored.by_scenario()
    fresh = {e["name"]: e for e in canary}
    failed: list[str] = []
    notes = list(p.notes)
    for name in p.canary:
        entry = fresh.get(name)
        check = (
            bl.canary_check(stored[name], entry)
            if entry is not None
            else bl.CanaryCheck(False, "the canary repeat did not finish")
        )
        if check.trusted:
            notes.append(f"{name}: {check.text}: baseline {p.stored.name} is trusted as stored")
            continue
        failed.append(name)
        notes.append(
            f"{name}: {check.text}: baseline {p.stored.name} is not trusted for time verdicts; "
            f"its configuration is re-measured side by side, the canary kept as its repeat 1"
            + (f" of {repeat}" if repeat > 1 else "")
        )
    if not failed:
        return replace(p, canary=[], notes=notes)
    base = next((s for s in p.sides if s.key == BASELINE), None)
    names = [s.name for s in base.scenarios] if base else []
    side = baseline_side(p, names + failed, done=frozenset(failed))
    assert side is not None
    candidate = next(s for s in p.sides if s.key == CANDIDATE)
    out = replace(
        p, sides=[side, candidate], remeasured=p.remeasured + failed, notes=notes, canary=[]
    )
    out.mode = _mode(out)
    return out


# -- the run ---------------------------------------------------------------------------
@dataclass
class GateRun:
    run_id: str
    out_dir: Path
    records: dict[str, Any]
    report: GateReport
    # The second round of scenarios that regressed on a time metric (None: no rerun).
    confirmation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.report.to_dict()
        if self.confirmation is not None:
            d["confirmation"] = self.confirmation
        return d


def run_gate(
    scenarios: list[Scenario],
    options: RunOptions,
    gate: GateOptions,
    events: RunEvents,
    command: list[str],
    run_id: str | None = None,
    runner: Runner | None = None,
) -> GateRun:
    """Plan, canary, run interleaved, compare, confirm, evaluate; writes comparison.json
    and the CI outputs. ``runner`` replaces :func:`run_scenarios` on every side (tests;
    another revision's perfaudit still runs as that revision)."""
    p = plan(scenarios, options, gate)
    if runner is not None:
        p = with_runner(p, runner)
    run_id = run_id or new_run_id()
    try:
        records: dict[str, RunRecord] = {}
        if p.canary:
            records = run_canary(p, options.out_dir, events, command, run_id)
            p = after_canary(p, records[BASELINE].scenarios if records else [], gate.repeat)
        records = run_repeats(
            p.sides, gate.repeat, options.out_dir, events, command, run_id, prior=records
        )
    except GitRevisionError as exc:
        raise GateError(str(exc)) from None
    candidate = records[CANDIDATE].scenarios
    results = str(record_path(options.out_dir, run_id, CANDIDATE))
    comparison: Comparison | None = None
    confirmation: dict[str, Any] | None = None
    if gate.baseline:
        comparison = _compare(p, records, candidate, gate, f"run {run_id} ({_labels(candidate)})")
        if gate.confirm:
            try:
                comparison, confirmation = confirm(
                    p, comparison, scenarios, options, gate, events, command, run_id
                )
            except GitRevisionError as exc:
                raise GateError(str(exc)) from None
    title = f"perfaudit run {run_id}"
    report = build_report(title, candidate, comparison, results)
    run = GateRun(run_id, options.out_dir, records, report, confirmation)
    folder = options.out_dir / run_id
    if comparison is not None:
        (folder / COMPARISON_FILE).write_text(
            json.dumps(run.to_dict(), indent=1, default=str) + "\n"
        )
    diagnosis = gather(candidate)
    if gate.junit:
        junit.write(report, gate.junit, diagnosis, gate.fail_on_findings)
    if gate.summary:
        markdown_summary.write(report, gate.summary, diagnosis, gate.fail_on_findings)
    return run


def _compare(
    p: Plan,
    records: dict[str, RunRecord],
    candidate: list[Entry],
    gate: GateOptions,
    label: str,
) -> Comparison:
    base: list[Entry] = []
    untrusted = dict(p.untrusted)
    if p.stored is not None:
        kept = [e for e in p.stored.entries if e["name"] not in p.remeasured]
        base += kept
        for name, why in _instruction_checks(kept, candidate).items():
            untrusted[name] = _with_class(untrusted.get(name), bl.INSTRUCTIONS, why)
    if BASELINE in records:
        base += [e for e in records[BASELINE].scenarios if e["name"] in p.remeasured]
    return compare_entries(
        base, candidate, baseline_label=p.label, candidate_label=label, mode=p.mode,
        settings=gate.settings, untrusted=untrusted, notes=p.notes,
    )  # fmt: skip


def _instruction_checks(stored: list[Entry], candidate: list[Entry]) -> dict[str, str]:
    """Instruction counts trusted as stored, checked again on what the candidate recorded
    (its cost environment as measured, not as planned)."""
    trust = bl.recorded_trust({}, stored, {}, candidate)
    return {n: r[bl.INSTRUCTIONS] for n, r in trust.items() if bl.INSTRUCTIONS in r}


def _with_class(current: Untrusted | None, cls: str, why: str) -> Untrusted:
    if isinstance(current, str):
        return current  # already withheld for every class
    return {**(current or {}), cls: why}


# -- confirming a time regression ----------------------------------------------------------
def _trust(metric: str) -> str:
    m = BY_NAME.get(metric)
    return m.trust if m is not None else bl.TIME


def suspects(comparison: Comparison) -> list[str]:
    """Scenarios with a time-based metric (latency, throughput, CPU time) regressed."""
    return [
        s.name for s in comparison.scenarios
        if any(m.verdict == "regressed" and _trust(m.metric) == bl.TIME for m in s.metrics)
    ]  # fmt: skip


def confirm(
    p: Plan,
    first: Comparison,
    scenarios: list[Scenario],
    options: RunOptions,
    gate: GateOptions,
    events: RunEvents,
    command: list[str],
    run_id: str,
) -> tuple[Comparison, dict[str, Any] | None]:
    """Run every scenario with a time regression again, both sides, N repeats each,
    interleaved (``<run>/confirm/``), and keep a time regression only if the second round
    shows it too."""
    names = suspects(first)
    if not names:
        return first, None
    events.note(f"rerun: {', '.join(names)} regressed on a time metric; a second round confirms")
    chosen = [s for s in scenarios if s.name in names]
    cand = Side(CANDIDATE, chosen, _latency_only(options), p.candidate_runner)
    base = baseline_side(p, names)
    if base is not None and not isinstance(base.runner, GitRevision):  # that one: as it runs
        base = replace(base, options=_latency_only(base.options))
    sides = [base, cand] if base else [cand]
    rounds = run_repeats(sides, gate.repeat, options.out_dir / run_id, events, command, RERUN,
                         label="rerun")  # fmt: skip
    base_entries = rounds[BASELINE].scenarios if BASELINE in rounds else []
    stored_only = [n for n in names if n not in p.again]  # cannot run: the stored repeats
    if p.stored is not None:
        base_entries += [e for e in p.stored.entries if e["name"] in stored_only]
    second = compare_entries(
        base_entries, rounds[CANDIDATE].scenarios, baseline_label=p.label,
        candidate_label=f"rerun of run {run_id}", mode="rerun, side by side",
        settings=gate.settings, untrusted={n: p.untrusted[n] for n in names if n in p.untrusted},
    )  # fmt: skip
    merged = confirmed(first, second)
    if stored_only:
        merged.notes.append(
            f"rerun of {', '.join(stored_only)}: the baseline's configuration cannot be run "
            "again; the second round compares new candidate repeats with the stored ones"
        )
    return merged, {
        "rule": CONFIRM_RULE,
        "scenarios": names,
        "results": str(record_path(options.out_dir / run_id, RERUN, CANDIDATE)),
        "first": first.to_dict(),
        "second": second.to_dict(),
    }


# Why the second round alone decides, not the union of both: the rounds share no repeats,
# so under no change a confirmed false alarm needs two independent flukes (about the
# square of one round's rate). In a union, the first round's fluke repeats stay in the
# data and pull the pooled verdict their way, so one fluke could be "confirmed" by itself.
CONFIRM_RULE = (
    "a time-based regression (latency, throughput, CPU time) is kept only if a second "
    "round of the same number of repeats per side, interleaved, on its own, finds the same "
    "metric regressed; otherwise it is inconclusive ('not confirmed by a rerun'). "
    "Instruction and count verdicts are not rerun."
)


def confirmed(first: Comparison, second: Comparison) -> Comparison:
    """``first`` with every time regression that ``second`` does not repeat turned into
    "inconclusive: not confirmed by a rerun"."""
    out = copy.deepcopy(first)
    again = {s.name: {m.metric: m for m in s.metrics} for s in second.scenarios}
    for s in out.scenarios:
        if s.name not in again:
            continue
        for m in s.metrics:
            if m.verdict != "regressed" or _trust(m.metric) != bl.TIME:
                continue
            r = again[s.name].get(m.metric)
            if r is not None and r.verdict == "regressed":
                m.reason = f"{m.reason}; confirmed by a rerun ({r.reason})"
                continue
            seen = "not compared" if r is None else f"{r.verdict}: {r.reason}"
            m.verdict = "inconclusive"
            m.reason = f"not confirmed by a rerun (rerun {seen}); first round: {m.reason}"
        s.verdict = scenario_verdict([m.verdict for m in s.metrics])
        s.notes.append(f"rerun of the time metrics, a second round: {_round_text(again[s.name])}")
    out.notes.append(
        f"time regressions rerun in a second round for: {', '.join(again)} (comparison.json: "
        "confirmation)"
    )
    return out


def _round_text(metrics: dict[str, Any]) -> str:
    time = {n: m.verdict for n, m in metrics.items() if _trust(n) == bl.TIME}
    return ", ".join(f"{n} {v}" for n, v in time.items()) or "no valid repeat"


def scenario_verdict(verdicts: list[str]) -> str:
    """As perfaudit.analysis.compare: regressed > improved > unchanged (all) > inconclusive."""
    found = set(verdicts)
    for v in ("regressed", "improved"):
        if v in found:
            return v
    if found and found <= {"unchanged"}:
        return "unchanged"
    return "inconclusive" if found else "missing"


def _labels(entries: list[Entry]) -> str:
    return ", ".join(sorted({(e.get("target") or {}).get("label", "?") for e in entries}))


def show_entries(records: dict[str, Any]) -> list[Entry]:
    """Every repeat of both sides, named with side and repeat, for the run table."""
    both = len(records) > 1
    repeated = any(e.get("repeat", 1) > 1 for r in records.values() for e in r.scenarios)
    out = []
    for key, record in records.items():
        tag = ("A" if key == BASELINE else "B") if both else ""
        for e in record.scenarios:
            shown = dict(e)
            if both or repeated:
                shown["name"] = f"{e['name']} [{tag}{e.get('repeat', 1)}]"
            out.append(shown)
    return out


def print_gate(run: GateRun, console: Console) -> None:
    from perfaudit.profile.terminal import print_profiles
    from perfaudit.report.cost_terminal import print_cost, print_cost_diff
    from perfaudit.run.display import final_table

    console.print(final_table(show_entries(run.records), f"run {run.run_id}"))
    print_profiles(show_entries(run.records), console)
    candidate = run.records[CANDIDATE].scenarios
    print_cost(candidate, console)
    if BASELINE in run.records:
        print_cost_diff(run.records[BASELINE].scenarios, candidate, console)
    print_report(run.report, console)
    console.print(f"results: {run.report.results}", highlight=False)
