"""Reports rendered from a stored results file: sections, escaping, redaction, links."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from perfaudit import results
from perfaudit.report.render import entries_by_name, render

SAMPLE = Path(__file__).parent / "data" / "sample-run" / "results.json"
SECRET = "s3cr3t-value-that-must-not-show"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of a real run's results, with hostile values planted where users' data goes."""
    data = json.loads(SAMPLE.read_text())
    first = data["scenarios"][0]
    first["description"] = "<script>alert('x')</script> & friends"
    first["validity"]["reasons"].append(
        f"GET http://127.0.0.1:1/cursor-runner/callback?secret={SECRET} failed with "
        f"bot1234567:{'A' * 30}"
    )
    folder = tmp_path / data["run_id"]
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def test_both_files_with_the_expected_sections(run_dir: Path) -> None:
    written = render(run_dir)
    html = written.html.read_text()
    md = written.markdown.read_text()
    for text in (html, md):
        assert "Environment" in text and "Optimization log" in text
        for name in ("e2e-flow", "health", "telegram-job"):
            assert name in text
        assert "p95" in text and "webhook → reply p95" in text and "queue wait p95" in text
    assert html.count("<svg") >= 9  # 3 charts per scenario, inline
    assert 'id="verdict"' in html
    assert re.search(
        r"<span class=\"verdict (pass|fail|invalid)\">(PASS|FAIL|INVALID)</span>", html
    )
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "<link" not in html and "<script" not in html.replace("&lt;script", "")


def test_values_are_escaped_and_secrets_redacted(run_dir: Path) -> None:
    written = render(run_dir)
    html = written.html.read_text()
    md = written.markdown.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<script>alert" not in md and "&lt;script&gt;alert" in md
    for text in (html, md):
        assert SECRET not in text and "A" * 30 not in text
        assert "secret=[REDACTED]" in text


def test_markdown_image_links_resolve(run_dir: Path) -> None:
    written = render(run_dir)
    md = written.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 9
    for link in links:
        target = written.markdown.parent / link
        assert target.is_file() and target.stat().st_size > 1000, link
        assert target.read_text().lstrip().startswith("<svg")


def test_rendering_again_gives_the_same_report(run_dir: Path, tmp_path: Path) -> None:
    first = render(run_dir, tmp_path / "a")
    second = render(run_dir, tmp_path / "b")
    assert first.markdown.read_text() == second.markdown.read_text()


def test_baseline_columns_and_optimization_log(run_dir: Path) -> None:
    record = results.read(run_dir)
    baseline = entries_by_name(record)
    # The same run as its own baseline but with the phase3 switch set: every switch differs.
    for entries in baseline.values():
        for e in entries:
            e["target"] = {**e["target"], "switches": [], "label": "reference/phase3"}
    written = render(run_dir, None, baseline, "phase3 sample")
    md = written.markdown.read_text()
    assert "Compared with **phase3 sample**" in md
    assert "| baseline | change [95 % CI] | verdict |" in md
    # e2e-flow runs the code of callback-background; the log shows its measured effect.
    section = md.split("### `callback-background`")[1].split("### `")[0]
    assert "| e2e-flow |" in section and "combined effect" in section


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample results missing")
def test_report_command_exit_codes(run_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from perfaudit.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "index.html").exists()
    r = runner.invoke(app, ["report", "no-such-run", "--reports", str(tmp_path)])
    assert r.exit_code == 2
    assert "no-such-run" in r.output
    shutil.rmtree(tmp_path / "out")


def test_differential_flame_graph_colours_what_changed() -> None:
    from perfaudit.report.flamediff import render_diff_svg

    before = "main (app.py:1);slow (app.py:20) 80\nmain (app.py:1);fast (app.py:30) 20\n"
    after = "main (app.py:1);slow (app.py:20) 20\nmain (app.py:1);fast (app.py:30) 20\n"
    svg = render_diff_svg(before, after, "a <b> title")
    slow = re.search(r"<title>slow \(app.py\)[^<]*</title><rect[^>]*fill=\"([^\"]+)\"", svg)
    fast = re.search(r"<title>fast \(app.py\)[^<]*</title><rect[^>]*fill=\"([^\"]+)\"", svg)
    assert slow and fast
    assert slow.group(1) == "rgb(0,0,255)"  # the biggest drop: full blue
    assert fast.group(1).startswith("rgb(255,")  # a larger share now: red side
    assert "80.0 % → 50.0 %" in svg and "a &lt;b&gt; title" in svg


def test_compare_writes_the_before_after_report_beside_the_candidate(
    run_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from perfaudit.cli import app

    candidate = tmp_path / "candidate"
    shutil.copytree(run_dir, candidate)
    r = CliRunner().invoke(app, ["compare", str(run_dir), str(candidate)])
    assert r.exit_code == 3, r.output  # the planted reason makes e2e-flow invalid
    assert SECRET not in r.output  # the terminal redacts too
    html = (candidate / "index.html").read_text()
    assert "Compared with" in html and "change [95 % CI]" in html
    assert (candidate / "report.md").exists()
