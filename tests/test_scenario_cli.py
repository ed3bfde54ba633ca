"""``perfaudit scenarios validate|list`` through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from perfaudit.commands.scenarios import scenarios_app

REPO = Path(__file__).resolve().parents[1]
GOOD = "name: {name}\nrequest: {{path: /}}\nload: {{rate: 5}}\nduration: 1s\n"

app = typer.Typer()
app.add_typer(scenarios_app, name="scenarios")  # mounted as the lead mounts it in cli.py
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["scenarios", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "sc"
    d.mkdir()
    (d / "a.yaml").write_text(GOOD.format(name="a"))
    return d


def test_validate_ok(files: Path) -> None:
    code, out = invoke("validate", "sc")
    assert code == 0 and out.strip() == "ok  sc/a.yaml"


def test_validate_reports_invalid_files_with_exit_2(files: Path) -> None:
    (files / "b.yaml").write_text(GOOD.format(name="b").replace("rate: 5", "rate: -5"))
    (files / "c.yaml").write_text("name: c\nload: {rate: 5\n")
    (files / "d.yaml").write_text(GOOD.format(name="a"))  # duplicate of a.yaml
    code, out = invoke("validate", "sc")
    assert code == 2
    lines = out.splitlines()
    assert "ok  sc/a.yaml" in lines
    assert "sc/b.yaml:3: load.rate: must be a number > 0, got -5" in lines
    assert any(line.startswith("sc/c.yaml:3: invalid YAML:") for line in lines)
    assert "sc/d.yaml:1: name: duplicate scenario name 'a' (also in sc/a.yaml:1)" in lines
    assert "3 of 4 scenario files invalid" in lines


def test_validate_missing_path_and_empty_dir(files: Path) -> None:
    code, out = invoke("validate", "nope.yaml")
    assert code == 2 and "nope.yaml: no such file" in out
    Path("empty").mkdir()
    code, out = invoke("validate", "empty")
    assert code == 2 and "no scenario files" in out


def test_validate_defaults_to_the_repo_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO / "tests")
    code, out = invoke("validate")
    assert code == 0
    assert "ok  ../scenarios/health.yaml" in out or "scenarios/health.yaml" in out
    assert "examples" not in out


def test_list_json_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out = invoke("list", "--json")
    assert code == 0
    data = json.loads(out)
    assert {d["name"] for d in data} >= {"health", "webhook-text", "e2e-flow", "redis-store"}


def test_list_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out = invoke("list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.split()[:1] == ["health"])
    assert "reference/optimized" in row and "open 200/s" in row and "p95<10ms" in row


def test_list_with_invalid_file_exits_2(files: Path) -> None:
    (files / "b.yaml").write_text("[1]\n")
    code, out = invoke("list", "--json", "sc")
    assert code == 2 and "sc/b.yaml:1: the top level must be a mapping" in out
