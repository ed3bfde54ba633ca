"""Named baselines: the full entries (histograms included) of every repeat of every
scenario, with the environment and load settings they were measured under.

One JSON file per name under ``scenarios/baselines/`` (committed). A baseline is trusted
for a regression verdict only on the machine and with the load settings it was recorded
with (:func:`comparability`); anywhere else its configuration is re-measured side by side.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfaudit import results
from perfaudit.analysis.metrics import Entry
from perfaudit.results import RunRecord, utc_now

BASELINE_VERSION = 1
DEFAULT_DIR = Path("scenarios") / "baselines"
# What makes two machines "the same" for latency numbers.
MACHINE_KEYS = ("cpu_model", "cpu_count", "python")


class BaselineError(Exception):
    """A baseline that cannot be found, read or written; the message says which and why."""


@dataclass
class Baseline:
    name: str
    created_at: str
    environment: dict[str, Any]
    entries: list[Entry]  # every repeat of every scenario, in run order
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # run ids, command
    version: int = BASELINE_VERSION

    def by_scenario(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e["name"], []).append(e)
        return out

    def targets(self) -> dict[str, dict[str, Any]]:
        """Scenario -> the target it was measured on (variant and switches)."""
        return {
            n: (es[0].get("scenario") or {}).get("target", {})
            for n, es in self.by_scenario().items()
        }

    def target_labels(self) -> str:
        return ", ".join(sorted({target_label(t) for t in self.targets().values()}))

    def label(self) -> str:
        return f"baseline {self.name} ({self.target_labels()})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_version": self.version,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "source": self.source,
            "environment": self.environment,
            "entries": self.entries,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Baseline:
        if d.get("baseline_version") != BASELINE_VERSION:
            raise BaselineError(
                f"baseline_version {d.get('baseline_version')!r} is not supported "
                f"(this perfaudit reads {BASELINE_VERSION})"
            )
        try:
            return cls(
                name=str(d["name"]), created_at=str(d["created_at"]),
                environment=dict(d["environment"]), entries=list(d["entries"]),
                description=str(d.get("description", "")), source=dict(d.get("source", {})),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"missing or malformed key {exc}") from exc


def target_label(t: dict[str, Any]) -> str:
    if t.get("service", "reference") != "reference":
        return f"external {t.get('url')}"
    mods = "".join(f"+{n}" for n in t.get("with", [])) + "".join(
        f"-{n}" for n in t.get("without", [])
    )
    return f"{t.get('variant')}{mods}"


def slim(entry: Entry) -> Entry:
    """An entry without what only made sense on the recording machine (PIDs, log paths)
    and the per-sample process timelines; histograms, timeline and counters stay."""
    e = copy.deepcopy(entry)
    target = e.get("target") or {}
    for key in ("pids", "run_dir", "logs", "base_url"):
        target.pop(key, None)
    server = e.get("server") or {}
    for proc in ((server.get("process") or {}).get("processes") or {}).values():
        proc.pop("timeline", None)
        proc.pop("pid", None)
        proc.pop("pids", None)
    if isinstance(server.get("loop_lag"), dict):
        server["loop_lag"].pop("timeline", None)
    return e


def from_records(
    name: str, records: list[RunRecord], description: str = "", command: list[str] | None = None
) -> Baseline:
    """A baseline of every valid entry of these runs (repeats of a scenario are kept)."""
    entries = [slim(e) for r in records for e in r.scenarios]
    if not entries:
        raise BaselineError("the run has no finished scenarios to keep")
    return Baseline(
        name=name,
        created_at=utc_now(),
        environment=records[0].environment,
        entries=entries,
        description=description,
        source={
            "runs": [r.run_id for r in records],
            "command": command or records[0].command,
            "recorded_at": records[0].created_at,
        },
    )


def path_for(name: str, directory: Path = DEFAULT_DIR) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise BaselineError(f"{name!r} is not a baseline name (letters, digits, - and _)")
    return directory / f"{name}.json"


def save(baseline: Baseline, directory: Path = DEFAULT_DIR) -> Path:
    path = path_for(baseline.name, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".baseline-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            # Compact: entries hold base64 histograms; indentation would only add bytes.
            json.dump(baseline.to_dict(), f, separators=(",", ":"), default=str)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a baseline is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(ref: str | Path, directory: Path = DEFAULT_DIR) -> Baseline:
    """A baseline by name (``directory/<name>.json``) or by path to its file."""
    p = Path(ref)
    path = p if p.suffix == ".json" or p.exists() else path_for(str(ref), directory)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(b.stem for b in sorted(directory.glob("*.json"))) or "none"
        raise BaselineError(f"no baseline {str(ref)!r} ({path}; known: {known})") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: not a readable baseline ({exc})") from exc
    if not isinstance(data, dict) or "baseline_version" not in data:
        raise BaselineError(f"{path}: not a baseline file (no baseline_version)")
    try:
        return Baseline.from_dict(data)
    except BaselineError as exc:
        raise BaselineError(f"{path}: {exc}") from exc


def list_baselines(directory: Path = DEFAULT_DIR) -> list[tuple[Path, Baseline | str]]:
    """Every baseline file in the directory, or the error reading it."""
    out: list[tuple[Path, Baseline | str]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append((path, load(path, directory)))
        except BaselineError as exc:
            out.append((path, str(exc)))
    return out


# -- comparability ---------------------------------------------------------------------
# A verdict on a metric needs the baseline to share, with the candidate, what the metric's
# trust class (Metric.trust) depends on:
#   time          the machine (MACHINE_KEYS), shown to run at the same speed (calibrate;
#                 in the gate also a canary repeat), and the load settings;
#   count         the load settings only (connections or calls per request: code, not speed);
#   instructions  the cost environment (COST_KEYS and COST_SETTINGS) and stand-in behaviour.
TIME, COUNT, INSTRUCTIONS = "time", "count", "instructions"
TRUST_CLASSES = (TIME, COUNT, INSTRUCTIONS)
COST_KEYS = ("valgrind", "cpu_model", "cpu_flags", "arch", "python", "packages")
COST_SETTINGS = ("requests", "windows", "warmup_requests")
Reasons = dict[str, str]  # trust class -> why the baseline is not trusted for it


def machine_differences(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """How the recording machine differs from this one, in the keys that move latency."""
    out = []
    for key in MACHINE_KEYS:
        a, b = recorded.get(key), here.get(key)
        if a != b:
            out.append(f"{key} {a!r} there, {b!r} here")
    return out


def settings_of(entry: Entry) -> dict[str, Any]:
    """The load settings two runs of a scenario must share to be compared directly."""
    sc = entry.get("scenario") or {}
    return {
        "kind": sc.get("kind"),
        "load": sc.get("load"),
        "warmup_s": sc.get("warmup_s"),
        "duration_s": sc.get("duration_s"),
        "standins": sc.get("standins") or {},
    }


def settings_differences(recorded: Entry, now: Entry) -> list[str]:
    a, b = settings_of(recorded), settings_of(now)
    out = []
    for key in a:
        if a[key] != b[key]:
            out.append(f"{key} {_short(a[key])} there, {_short(b[key])} here")
    return out


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x}" for k, x in v.items() if x not in (None, [], {})) + "}"
    return repr(v)


def measures(scenario: dict[str, Any]) -> tuple[str, ...]:
    """What a (planned or recorded) scenario measures: "latency" (the load run), and/or
    "instructions" (callgrind counts). Scenarios from before ``measure:`` are latency only."""
    return tuple(scenario.get("measure") or ("latency",))


def needed_classes(scenario: dict[str, Any]) -> tuple[str, ...]:
    """The trust classes a scenario's verdicts need: the load run gives time and count
    metrics, the instructions measure instruction metrics."""
    m = measures(scenario)
    return ((TIME, COUNT) if "latency" in m else ()) + (
        (INSTRUCTIONS,) if "instructions" in m else ()
    )


# -- instruction counts ------------------------------------------------------------------
def instruction_environment(entry: Entry) -> dict[str, Any] | None:
    """The cost environment an entry's instruction counts were made in (None: no counts)."""
    cost = (entry.get("cost") or {}).get("instructions") or {}
    if not isinstance(cost, dict) or cost.get("status") != "ok":
        return None
    env = cost.get("environment")
    return env if isinstance(env, dict) else {}


def cost_settings(scenario: dict[str, Any]) -> dict[str, Any] | None:
    """The instruction measure's settings a planned scenario will run with (``cost:``),
    or None when the scenario does not say (then they are checked after the run)."""
    cost = scenario.get("cost")
    if not isinstance(cost, dict):
        return None
    return {k: cost[k] for k in COST_SETTINGS if k in cost} or None


def this_cost_environment(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """This machine's cost environment for a planned instructions measure; without
    ``settings`` (unknown) it has none and only the machine and software are compared."""
    from perfaudit.measure.environment import cost_environment

    env = cost_environment(settings or {})
    env.pop("settings", None)
    if settings is not None:
        env["settings"] = dict(settings)
    return env


def instruction_differences(
    recorded: Entry | dict[str, Any], here: Entry | dict[str, Any]
) -> list[str]:
    """What keeps ``recorded``'s instruction counts from being compared with ``here``'s:
    the valgrind version, CPU model and flags, architecture, the full Python version, the
    package versions, and the measure's settings (requests, windows, warm-up requests).

    Either side is an entry (its ``cost.instructions.environment``) or a cost environment
    (:func:`this_cost_environment` for a planned run: without ``settings`` when unknown,
    then only the machine and software are compared)."""
    a = instruction_environment(recorded) if "cost" in recorded else recorded
    b = instruction_environment(here) if "cost" in here else here
    if a is None or b is None:
        return ["no instruction counts " + ("there" if a is None else "here")]
    out = []
    for key in COST_KEYS:
        if a.get(key) != b.get(key):
            out.append(_cost_diff(key, a.get(key), b.get(key)))
    if "settings" in b:
        sa = {k: (a.get("settings") or {}).get(k) for k in COST_SETTINGS}
        sb = {k: (b.get("settings") or {}).get(k) for k in COST_SETTINGS}
        if sa != sb:
            out.append(_cost_diff("settings", sa, sb))
    return out


def _cost_diff(key: str, a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return f"{key} " + ", ".join(
            f"{k} {a.get(k)!r} there, {b.get(k)!r} here" for k in keys if a.get(k) != b.get(k)
        )
    return f"{key} {a!r} there, {b!r} here"


def _instruction_reason(diffs: list[str]) -> str:
    return (
        "its instruction counts were made under another cost environment (" + "; ".join(diffs) + ")"
    )


@dataclass
class Comparability:
    machine: list[str]  # differences between the machines (all scenarios)
    settings: dict[str, list[str]]  # per scenario: load-settings differences
    missing: list[str]  # scenarios the baseline does not have
    calibration: str | None = None  # why the machine is not shown to run at the same speed
    instructions: dict[str, list[str]] = field(default_factory=dict)  # per scenario
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per scenario: classes

    def reasons(self, scenario: str) -> Reasons:
        """Per trust class the scenario needs, why the stored baseline cannot be trusted
        for it (empty: it can, as far as the recordings show; time still needs a canary)."""
        needs = self.needs.get(scenario, (TIME, COUNT))
        out: Reasons = {}
        settings = self.settings.get(scenario)
        other = "recorded with other load settings (" + "; ".join(settings or []) + ")"
        if COUNT in needs and settings:
            out[COUNT] = other
        if TIME in needs:
            if self.machine:
                out[TIME] = "recorded on another machine (" + "; ".join(self.machine) + ")"
            elif settings:
                out[TIME] = other
            elif self.calibration:
                out[TIME] = self.calibration
        if INSTRUCTIONS in needs and self.instructions.get(scenario):
            out[INSTRUCTIONS] = _instruction_reason(self.instructions[scenario])
        return out

    def untrusted(self, scenario: str) -> str | None:
        """Why the baseline cannot be trusted for this scenario's verdict (None: it can)."""
        reasons = self.reasons(scenario)
        return "; ".join(dict.fromkeys(reasons.values())) if reasons else None

    def needs_remeasure(self, scenarios: list[str]) -> list[str]:
        return [s for s in scenarios if s not in self.missing and self.reasons(s)]


def comparability(
    baseline: Baseline,
    environment: dict[str, Any],
    planned: dict[str, Entry],
    cost_environment: Any = None,
) -> Comparability:
    """``planned``: per scenario, an entry-like dict with the ``scenario`` as it will run.
    ``cost_environment(settings)``: this machine's cost environment (default
    :func:`this_cost_environment`), asked only for scenarios that measure instructions."""
    from perfaudit import calibrate

    cost_env = cost_environment or this_cost_environment
    recorded = baseline.by_scenario()
    settings: dict[str, list[str]] = {}
    instructions: dict[str, list[str]] = {}
    needs: dict[str, tuple[str, ...]] = {}
    missing = []
    for name, entry in planned.items():
        if name not in recorded:
            missing.append(name)
            continue
        sc = entry.get("scenario") or {}
        needs[name] = needed_classes(sc)
        diff = settings_differences(recorded[name][0], entry)
        if diff:
            settings[name] = diff
        if INSTRUCTIONS in needs[name]:
            diffs = _stored_instruction_differences(
                recorded[name], entry, cost_env(cost_settings(sc))
            )
            if diffs:
                instructions[name] = diffs
    cal = calibrate.difference(
        baseline.environment.get("calibration"), environment.get("calibration"),
        ("the baseline", "this run"),
    )  # fmt: skip
    return Comparability(
        machine_differences(baseline.environment, environment), settings, missing, cal,
        instructions, needs,
    )  # fmt: skip


def _stored_instruction_differences(
    stored: list[Entry], planned: Entry, here: dict[str, Any]
) -> list[str]:
    counted = [e for e in stored if instruction_environment(e) is not None]
    if not counted:
        return ["the baseline has no instruction counts for this scenario"]
    out = instruction_differences(counted[0], here)
    standins = [d for d in settings_differences(counted[0], planned) if d.startswith("standins")]
    return out + standins


def recorded_trust(
    env_a: dict[str, Any],
    entries_a: list[Entry],
    env_b: dict[str, Any],
    entries_b: list[Entry],
) -> dict[str, Reasons]:
    """Per scenario of B that A has, per trust class, why A's recorded numbers cannot
    give B a verdict (nothing is re-run: ``perfaudit compare``, ``perfaudit report``).
    Time needs the same machine and load settings and both recordings' calibrations to
    agree; a recording without a calibration never gives a time verdict."""
    from perfaudit import calibrate

    machine = machine_differences(env_a, env_b)
    cal = calibrate.difference(env_a.get("calibration"), env_b.get("calibration"), ("A", "B"))
    by_a = _by_name(entries_a)
    out: dict[str, Reasons] = {}
    for name, bs in _by_name(entries_b).items():
        if name not in by_a:
            continue
        a, b = by_a[name][0], bs[0]
        reasons: Reasons = {}
        diff = settings_differences(a, b)
        if diff:
            reasons[COUNT] = reasons[TIME] = (
                "A and B ran with other load settings (" + "; ".join(diff) + ")"
            )
        if machine:
            reasons[TIME] = (
                "A and B were recorded on different machines (" + "; ".join(machine) + ")"
            )
        elif cal and not diff:
            reasons[TIME] = cal
        ca = [e for e in by_a[name] if instruction_environment(e) is not None]
        cb = [e for e in bs if instruction_environment(e) is not None]
        if ca and cb:
            idiff = instruction_differences(ca[0], cb[0])
            idiff += [d for d in settings_differences(ca[0], cb[0]) if d.startswith("standins")]
            if idiff:
                reasons[INSTRUCTIONS] = _instruction_reason(idiff)
        if reasons:
            out[name] = reasons
    return out


def _by_name(entries: list[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for e in entries:
        if not e.get("profiled"):
            out.setdefault(e["name"], []).append(e)
    return out


# -- the canary ----------------------------------------------------------------------------
CANARY_METRICS = ("p50_ms", "p95_ms")
CANARY_QUANTILE = 0.995  # two-sided 99 % prediction interval
CANARY_MIN_SD = 0.02  # a baseline's repeats never count as quieter than 2 % between restarts


@dataclass(frozen=True)
class CanaryCheck:
    trusted: bool
    text: str  # what the canary showed, for the notes


def canary_check(stored: list[Entry], canary: Entry) -> CanaryCheck:
    """Is one fresh repeat of the baseline's configuration (the canary) inside the stored
    repeats' own noise, on p50 and p95? Per metric, with the stored repeats' log values
    (mean m, sd s floored at :data:`CANARY_MIN_SD`, n repeats), the canary c must satisfy
    |log c - m| <= t(0.995, n-1) * s * sqrt(1 + 1/n): a 99 % prediction interval for one
    more repeat of the same machine and code. Outside it, this machine does not run the
    baseline's configuration the way the baseline recorded it."""
    import math
    import statistics

    from perfaudit.analysis.metrics import BY_NAME
    from perfaudit.analysis.samples import repeats_by_metric
    from perfaudit.analysis.stats import t_quantile

    if not (canary.get("validity") or {}).get("valid", True):
        why = "; ".join((canary.get("validity") or {}).get("reasons") or []) or "invalid"
        return CanaryCheck(False, f"the canary repeat was invalid ({why})")
    valid = [
        e for e in stored if (e.get("validity") or {}).get("valid", True) and not e.get("profiled")
    ]
    metrics = [BY_NAME[m] for m in CANARY_METRICS]
    base = repeats_by_metric(metrics, valid)
    fresh = repeats_by_metric(metrics, [canary])
    parts, outside = [], []
    for m in metrics:
        values = [r.value for r in base[m.name] if r.value > 0]
        if not fresh[m.name] or fresh[m.name][0].value <= 0:
            continue
        if len(values) < 2:
            return CanaryCheck(
                False, f"the baseline has {len(values)} valid repeat(s) of {m.label}: its "
                "noise between restarts is unknown"
            )  # fmt: skip
        logs = [math.log(v) for v in values]
        n, mean = len(logs), statistics.fmean(logs)
        sd = max(statistics.stdev(logs), CANARY_MIN_SD)
        half = t_quantile(CANARY_QUANTILE, n - 1) * sd * math.sqrt(1 + 1 / n)
        c = fresh[m.name][0].value
        lo, hi = math.exp(mean - half), math.exp(mean + half)
        text = f"{m.label} {m.fmt(c)} (interval {m.fmt(lo)}..{m.fmt(hi)})"
        parts.append(text)
        if abs(math.log(c) - mean) > half:
            outside.append(text)
    if not parts:
        return CanaryCheck(False, "the canary recorded no p50 or p95 latency to check")
    n = len(valid)
    if outside:
        return CanaryCheck(
            False, f"a canary repeat fell outside the baseline's 99 % prediction interval "
            f"from its {n} repeats: {'; '.join(outside)}"
        )  # fmt: skip
    return CanaryCheck(
        True, f"a canary repeat fell inside the baseline's 99 % prediction intervals from its "
        f"{n} repeats: {'; '.join(parts)}"
    )  # fmt: skip


def read_entries(
    ref: str | Path, directory: Path = DEFAULT_DIR
) -> tuple[str, dict[str, Any], list[Entry]]:
    """A run folder, a results.json or a baseline (name or file) -> (label, environment,
    entries). Used by ``perfaudit compare`` for either side."""
    p = Path(ref)
    if p.is_dir() or p.name == results.RESULTS_FILE:
        try:
            record = results.read(p)
        except results.ResultsError as exc:
            raise BaselineError(str(exc)) from exc
        return f"run {record.run_id}", record.environment, record.scenarios
    b = load(ref, directory)
    return b.label(), b.environment, b.entries


def recorded_untrusted(
    env_a: dict[str, Any],
    entries_a: list[dict[str, Any]],
    env_b: dict[str, Any],
    entries_b: list[dict[str, Any]],
    baseline: str,
) -> tuple[dict[str, Any], list[str]]:
    """Per scenario and trust class, why A's recorded numbers cannot give B a verdict
    (perfaudit.baseline.recorded_trust), and the note that says how to get one."""
    untrusted: dict[str, Any] = dict(recorded_trust(env_a, entries_a, env_b, entries_b))
    notes = []
    if untrusted:
        notes.append(
            "some verdicts are withheld (recorded on another machine, at another machine "
            "speed, without a calibration, or with other settings); re-measure side by side "
            f"with `perfaudit run --baseline {baseline}`"
        )
    return untrusted, notes
