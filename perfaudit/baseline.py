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


@dataclass
class Comparability:
    machine: list[str]  # differences between the machines (all scenarios)
    settings: dict[str, list[str]]  # per scenario: load-settings differences
    missing: list[str]  # scenarios the baseline does not have

    def untrusted(self, scenario: str) -> str | None:
        """Why the baseline cannot be trusted for this scenario's verdict (None: it can)."""
        if self.machine:
            return "recorded on another machine (" + "; ".join(self.machine) + ")"
        if self.settings.get(scenario):
            return "recorded with other load settings (" + "; ".join(self.settings[scenario]) + ")"
        return None

    def needs_remeasure(self, scenarios: list[str]) -> list[str]:
        return [s for s in scenarios if s not in self.missing and self.untrusted(s)]


def comparability(
    baseline: Baseline, environment: dict[str, Any], planned: dict[str, Entry]
) -> Comparability:
    """``planned``: per scenario, an entry-like dict with the ``scenario`` as it will run."""
    recorded = baseline.by_scenario()
    settings = {}
    missing = []
    for name, entry in planned.items():
        if name not in recorded:
            missing.append(name)
            continue
        diff = settings_differences(recorded[name][0], entry)
        if diff:
            settings[name] = diff
    return Comparability(machine_differences(baseline.environment, environment), settings, missing)


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
