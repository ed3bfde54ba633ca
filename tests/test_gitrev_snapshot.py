"""The working-tree snapshot an instructions comparison with git:REV runs the candidate
from: every change is in it, and nothing of the user's repository is touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from perfaudit.run.gitrev import GitRevisionError, WorkingTree


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    git(r, "config", "user.email", "t@example.invalid")
    git(r, "config", "user.name", "t")
    (r / ".gitignore").write_text("ignored.txt\n")
    (r / "a.py").write_text("A = 1\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "one")
    return r


def test_the_snapshot_holds_uncommitted_and_untracked_files_and_touches_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "a.py").write_text("A = 2\n")  # modified, unstaged
    (repo / "b.py").write_text("B = 1\n")  # untracked
    (repo / "ignored.txt").write_text("secret\n")
    (repo / "c.py").write_text("C = 1\n")
    git(repo, "add", "c.py")  # staged
    status = git(repo, "status", "--porcelain")
    head = git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    tree = WorkingTree()
    assert git(repo, "show", f"{tree.commit}:a.py") == "A = 2\n"
    assert git(repo, "show", f"{tree.commit}:b.py") == "B = 1\n"
    assert git(repo, "show", f"{tree.commit}:c.py") == "C = 1\n"
    assert "ignored.txt" not in git(repo, "ls-tree", "--name-only", tree.commit)
    # the user's index, HEAD and working tree are as they were
    assert git(repo, "status", "--porcelain") == status
    assert git(repo, "rev-parse", "HEAD") == head
    exported = tree.export(repo.parent / "out" / f"git-{tree.commit[:10]}")
    assert (exported / "b.py").read_text() == "B = 1\n"
    # the export folder is named like a revision's: paths of the same length on both sides
    assert len(exported.name) == len(f"git-{head[:10]}")


def test_outside_a_repository_the_error_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(GitRevisionError) as exc:
        WorkingTree()
    assert "\n" not in str(exc.value).strip() and "git" in str(exc.value)
    assert os.getcwd() == str(tmp_path)
