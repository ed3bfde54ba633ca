"""``--baseline git:REV`` with the default (relative) paths: the revision's perfaudit runs
with its exported tree as cwd, so everything handed to it must be absolute."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from perfaudit.run.gitrev import GitRevision
from perfaudit.run.runner import RunOptions
from perfaudit.scenario import load_scenarios

REPO = Path(__file__).resolve().parents[1]


def test_the_child_command_has_absolute_paths_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    [health] = [s for s in load_scenarios() if s.name == "health"]
    health = replace(health, path=Path("scenarios/health.yaml"))  # as a relative argument
    args = GitRevision.command([health], RunOptions(out_dir=Path("reports/x/repeats/r")))
    files = [a for a in args if a.endswith(".yaml")]
    out = args[args.index("--out") + 1]
    assert files == [str(REPO / "scenarios/health.yaml")] and out == str(
        REPO / "reports/x/repeats/r"
    )
    assert "--measure" not in args  # only when asked: older revisions do not know it


def _scratch_repo(into: Path) -> Path:
    """The current working tree (uncommitted work included) as a fresh repository with
    two commits, so that HEAD~1 exists and holds this perfaudit."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
        capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, into / rel)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       cwd=into, check=True, capture_output=True)  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    (into / "CHANGED").write_text("a second commit\n")
    git("add", "CHANGED")
    git("commit", "-q", "-m", "two")
    return into


def test_git_baseline_with_default_paths_in_a_scratch_clone(tmp_path: Path) -> None:
    repo = _scratch_repo(tmp_path / "repo")
    r = subprocess.run(
        [sys.executable, "-m", "perfaudit.cli", "run", "-s", "health", "--baseline", "git:HEAD~1",
         "--repeat", "2", "--duration", "1", "--warmup", "0.5"],
        cwd=repo, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    [run_dir] = [p for p in (repo / "reports").iterdir() if p.is_dir() and p.name != "phase4"]
    baseline = json.loads((run_dir / "baseline" / "results.json").read_text())
    assert [e["name"] for e in baseline["scenarios"]] == ["health", "health"]
    assert (run_dir / "comparison.json").exists()
    assert list(run_dir.glob("git-*/perfaudit/cli.py"))  # exported inside the run folder
