"""The CI gate: ``perfaudit run --baseline NAME --repeat N --junit FILE --summary FILE``.

Runs the candidate N times and, when the baseline cannot be trusted as stored (another
machine, other load settings) or is a configuration (``variant:phase3``), the
baseline's configuration N times too, interleaved; then thresholds (medians over
repeats), the comparison, and every CI output. Exit code: 3 invalid > 1 a threshold
failed or a regression > 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from perfaudit import baseline as bl
from perfaudit.analysis.compare import Comparison, GateSettings, compare_entries
from perfaudit.analysis.metrics import Entry
from perfaudit.refservice import switches as sw
from perfaudit.report import junit, markdown_summary
from perfaudit.report.outcome import GateReport, build_report
from perfaudit.report.terminal import print_report
from perfaudit.results import environment, new_run_id
from perfaudit.run.gitrev import GitRevision, GitRevisionError
from perfaudit.run.kinds import with_overrides
from perfaudit.run.repeat import BASELINE, CANDIDATE, Side, record_path, run_repeats
from perfaudit.run.runner import RunEvents, RunOptions, apply_target_overrides
from perfaudit.scenario import Scenario

DEFAULT_REPEAT = 3
COMPARISON_FILE = "comparison.json"


class GateError(Exception):
    """A usage or configuration error (exit code 2): a bad baseline spec or file."""


@dataclass(frozen=True)
class GateOptions:
    baseline: str | None = None  # a stored baseline (name or file), or variant:<label>
    repeat: int = 1
    junit: Path | None = None
    summary: Path | None = None
    baselines_dir: Path = bl.DEFAULT_DIR
    settings: GateSettings = GateSettings()


@dataclass
class Plan:
    sides: list[Side]
    stored: bl.Baseline | None
    remeasured: list[str]  # scenarios whose baseline is measured in this invocation
    untrusted: dict[str, str]  # scenario -> why its baseline cannot give a verdict
    label: str
    mode: str
    notes: list[str]


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
        return Plan(
            [side, candidate], None, [s.name for s in scenarios], {}, rev.label, "side by side",
            [f"baseline {spec}: perfaudit at {rev.label} (its service, worker and measuring code) "
             "is run side by side with the candidate, interleaved, from a tree exported with "
             "git archive"],
        )  # fmt: skip
    if spec.startswith("variant:"):
        variant, with_, without = parse_variant(spec.removeprefix("variant:"))
        ref = [s for s in scenarios if s.target.is_reference]
        untrusted = {
            s.name: "an external target has no variant to re-run"
            for s in scenarios
            if not s.target.is_reference
        }
        side = Side(BASELINE, [_retarget(s, variant, with_, without) for s in ref], _plain(options))
        return Plan(
            [side, candidate], None, [s.name for s in ref], untrusted,
            f"variant {spec.removeprefix('variant:')}", "side by side",
            [f"baseline {spec} is run side by side with the candidate, interleaved"],
        )  # fmt: skip
    try:
        stored = bl.load(spec, gate.baselines_dir)
    except bl.BaselineError as exc:
        raise GateError(str(exc)) from None
    planned = {
        s.name: {
            "scenario": with_overrides(
                apply_target_overrides(s, options), options.duration_s, options.warmup_s
            ).to_dict()
        }
        for s in scenarios
    }
    comp = bl.comparability(stored, environment(), planned)
    notes: list[str] = []
    if comp.missing:
        notes.append(f"baseline {stored.name} has no {', '.join(comp.missing)}: not compared")
    remeasure = comp.needs_remeasure([s.name for s in scenarios])
    targets = stored.targets()
    retargeted, untrusted = [], {}
    for s in scenarios:
        if s.name not in remeasure:
            continue
        t = targets[s.name]
        why = comp.untrusted(s.name) or ""
        if not s.target.is_reference or t.get("service", "reference") != "reference":
            untrusted[s.name] = f"{why}, and an external target cannot be re-run"
            continue
        try:
            sw.resolve(t["variant"], t.get("with", ()), t.get("without", ()))
        except (sw.UnknownSwitchError, KeyError) as exc:
            untrusted[s.name] = f"{why}, and its target cannot be re-run ({exc})"
            continue
        retargeted.append(
            _retarget(s, t["variant"], tuple(t.get("with", ())), tuple(t.get("without", ())))
        )
        notes.append(
            f"{s.name}: baseline {stored.name} was {why}: not trusted for a verdict; its "
            f"configuration ({bl.target_label(t)}) is re-measured side by side"
        )
    sides = [candidate]
    if retargeted:
        sides = [Side(BASELINE, retargeted, _plain(options)), candidate]
    trusted = [s.name for s in scenarios if s.name not in remeasure and s.name not in comp.missing]
    mode = (
        "stored" if not retargeted else ("re-measured" if not trusted else "stored + re-measured")
    )
    if trusted:
        notes.append(
            f"baseline {stored.name} (recorded {stored.source.get('recorded_at', stored.created_at)}"
            f", same machine and load settings) is trusted as stored for: {', '.join(trusted)}"
        )
    return Plan(sides, stored, [s.name for s in retargeted], untrusted, stored.label(), mode, notes)


# -- the run ---------------------------------------------------------------------------
@dataclass
class GateRun:
    run_id: str
    out_dir: Path
    records: dict[str, Any]
    report: GateReport


def run_gate(
    scenarios: list[Scenario],
    options: RunOptions,
    gate: GateOptions,
    events: RunEvents,
    command: list[str],
    run_id: str | None = None,
) -> GateRun:
    """Plan, run interleaved, compare, evaluate; writes comparison.json and CI outputs."""
    p = plan(scenarios, options, gate)
    run_id = run_id or new_run_id()
    try:
        records = run_repeats(p.sides, gate.repeat, options.out_dir, events, command, run_id)
    except GitRevisionError as exc:
        raise GateError(str(exc)) from None
    candidate = records[CANDIDATE].scenarios
    results = str(record_path(options.out_dir, run_id, CANDIDATE))
    comparison: Comparison | None = None
    if gate.baseline:
        base: list[Entry] = []
        if p.stored is not None:
            base += [e for e in p.stored.entries if e["name"] not in p.remeasured]
        if BASELINE in records:
            base += records[BASELINE].scenarios
        comparison = compare_entries(
            base, candidate, baseline_label=p.label,
            candidate_label=f"run {run_id} ({_labels(candidate)})", mode=p.mode,
            settings=gate.settings, untrusted=p.untrusted, notes=p.notes,
        )  # fmt: skip
    title = f"perfaudit run {run_id}"
    report = build_report(title, candidate, comparison, results)
    folder = options.out_dir / run_id
    if comparison is not None:
        (folder / COMPARISON_FILE).write_text(
            json.dumps(report.to_dict(), indent=1, default=str) + "\n"
        )
    if gate.junit:
        junit.write(report, gate.junit)
    if gate.summary:
        markdown_summary.write(report, gate.summary)
    return GateRun(run_id, options.out_dir, records, report)


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
    from perfaudit.run.display import final_table

    console.print(final_table(show_entries(run.records), f"run {run.run_id}"))
    print_profiles(show_entries(run.records), console)
    print_report(run.report, console)
    console.print(f"results: {run.report.results}", highlight=False)
