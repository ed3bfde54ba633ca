"""A baseline that is a git revision: that revision's perfaudit, run side by side.

The tree at the revision is exported with ``git archive`` (read-only: nothing is checked
out, the working tree and index are untouched) and each baseline repeat runs
``python -m perfaudit.cli run`` from it, with the candidate's scenario files and
overrides: the revision's service, worker and measuring code, on the same machine, in
the same invocation.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from perfaudit import results
from perfaudit.results import RunRecord
from perfaudit.run.runner import RunEvents, RunOptions
from perfaudit.scenario import Scenario


class GitRevisionError(Exception):
    """An unknown revision, or a revision whose perfaudit refused the run."""


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(["git", *args], capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        raise GitRevisionError(
            f"git {' '.join(args)}: {err.decode(errors='replace').strip() or exc}"
        ) from None


class GitRevision:
    """A :class:`perfaudit.run.repeat.Side` runner for ``--baseline git:REV``."""

    def __init__(self, rev: str) -> None:
        self.rev = rev
        self.commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
        self._tree: Path | None = None

    @property
    def label(self) -> str:
        return f"git {self.rev} ({self.commit[:10]})"

    def export(self, into: Path) -> Path:
        if self._tree is None:
            into.mkdir(parents=True, exist_ok=True)
            with tarfile.open(
                fileobj=io.BytesIO(_git("archive", "--format=tar", self.commit))
            ) as tar:
                tar.extractall(into, filter="data")
            self._tree = into
        return self._tree

    def __call__(
        self,
        scenarios: list[Scenario],
        options: RunOptions,
        events: RunEvents,
        command: list[str],
        record: RunRecord,
    ) -> RunRecord:
        # The child runs with cwd = the exported tree: every path handed to it is absolute,
        # or it would write (and read scenario files) relative to the tree, not to here.
        out_dir = options.out_dir.resolve()
        tree = self.export(out_dir.parent / f"git-{self.commit[:10]}").resolve()
        args = self.command(scenarios, replace(options, out_dir=out_dir / record.run_id))
        events.note(f"running perfaudit at {self.label}")
        # PYTHONPATH: the exported tree's perfaudit wins over the installed one, in this
        # process's children too (service, worker).
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode == 130:
            raise KeyboardInterrupt
        done = self._read(proc, tree)
        by_name = {s.name: s for s in scenarios}
        for i, entry in enumerate(done.scenarios, 1):
            if entry["name"] in by_name:
                events.scenario_started(by_name[entry["name"]], i, len(done.scenarios))
            record.scenarios.append(entry)
            events.scenario_finished(entry)
        return record

    @staticmethod
    def command(scenarios: list[Scenario], options: RunOptions) -> list[str]:
        """``python -m perfaudit.cli run`` with the candidate's scenario files (absolute)
        and overrides; ``options.out_dir`` is where the child writes its run folders."""
        files = dict.fromkeys(str(Path(s.path).resolve()) for s in scenarios)
        args = [sys.executable, "-m", "perfaudit.cli", "run", *files]
        for s in scenarios:
            args += ["-s", s.name]
        for flag, value in (("--duration", options.duration_s), ("--warmup", options.warmup_s),
                            ("--variant", options.variant), ("--redis-url", options.redis_url)):  # fmt: skip
            if value is not None:
                args += [flag, str(value)]
        for name in options.with_:
            args += ["--with", name]
        for name in options.without:
            args += ["--without", name]
        # Only when asked for: a revision from before --measure would refuse the flag.
        if options.measure is not None:
            args += ["--measure", ",".join(options.measure)]
        if options.cost_requests is not None:
            args += ["--cost-requests", str(options.cost_requests)]
        return [*args, "--out", str(options.out_dir.resolve()), "--json"]

    def _read(self, proc: subprocess.CompletedProcess[str], tree: Path) -> RunRecord:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        try:
            summary = json.loads(proc.stdout)
            path = Path(summary["results"])
        except (ValueError, KeyError, TypeError):
            raise GitRevisionError(
                f"perfaudit at {self.label} did not run (exit code {proc.returncode}): "
                f"{tail or 'no JSON summary on its stdout'}"
            ) from None
        try:
            return results.read(path if path.is_absolute() else tree / path)
        except results.ResultsError as exc:
            raise GitRevisionError(
                f"perfaudit at {self.label} ran (exit code {proc.returncode}) but its results "
                f"cannot be read: {exc}"
            ) from None


class WorkingTree(GitRevision):
    """The candidate of an instructions comparison with ``git:REV``, run the way the
    baseline runs: from a snapshot of the working tree (tracked and untracked files,
    uncommitted changes included, .gitignore respected) exported with git archive to a
    sibling folder ``git-<10 hex>``. Both sides then run from paths of the same length with
    the same cold bytecode caches: a git export against the checkout itself differed by
    0.3 % of /health's instructions per request (heap layout: dict and type-cache
    collisions), with the same code on both sides."""

    def __init__(self) -> None:
        self.rev = "working tree"
        self.commit = snapshot_commit()
        self._tree = None

    @property
    def label(self) -> str:
        return f"the working tree (snapshot {self.commit[:10]})"


def snapshot_commit() -> str:
    """A commit object of the working tree as it is, made with a private index: the user's
    index, branches and files are untouched (the object is unreferenced; git gc drops it)."""
    with tempfile.TemporaryDirectory(prefix="perfaudit-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str) -> str:
            try:
                return subprocess.run(["git", *args], env=env, capture_output=True, check=True,
                                      text=True, timeout=120).stdout.strip()  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                err = getattr(exc, "stderr", "") or ""
                raise GitRevisionError(f"git {' '.join(args)}: {err.strip() or exc}") from None

        git("read-tree", "HEAD")
        git("add", "-A")
        tree = git("write-tree")
        return git("commit-tree", tree, "-p", "HEAD", "-m", "perfaudit: working tree snapshot")
