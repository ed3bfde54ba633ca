"""Rendering an audit's summary.json: report.md, index.html, charts and docs/performance.md."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from perfaudit.audit.capacity import CapacityResult, capacity_ratio
from perfaudit.report.audit_html import render_html
from perfaudit.report.audit_markdown import render_markdown
from perfaudit.report.audit_render import publish, render_audit
from perfaudit.report.audit_view import better_of, build_view, improvement_text, top_effects
from perfaudit.report.performance_doc import render_performance_doc

SAMPLE = Path(__file__).parent / "data" / "audit_summary_tiny.json"
MD_SECTIONS = (
    "## Verdict per switch", "## Capacity", "## Targets", "## Phase 3 → optimized",
    "## Optimizations", "## Findings → fixes", "## Remaining opportunities",
    "### Recommendations", "## Method and cost",
)  # fmt: skip
HTML_SECTIONS = (
    'id="verdicts"', 'id="capacity"', 'id="targets"', 'id="combined"', 'id="optimizations"',
    'id="findings"', 'id="opportunities"', "<h3>Recommendations</h3>", 'id="method"',
)  # fmt: skip
SCRIPT = "<script>alert(1)</script>"
UNITS = {
    "p95_ms": ("p95 latency", "ms", "log"),
    "service_cpu_ms_per_request": ("service CPU/request", "ms", "log"),
    "redis_new_connections_per_request": ("new Redis connections/request", "/req", "abs"),
    "service_rss_max_mb": ("service peak RSS", "MB", "log"),
    "service_instructions_per_request": ("service instructions/request", "Ir/req", "log"),
}


def metric(name: str, base: float, cand: float, verdict: str, **kw: Any) -> dict[str, Any]:
    label, _, scale = UNITS[name]
    change = cand / base - 1 if base else None
    ci = kw.pop("ci", None) or ((change - 0.05, change + 0.05) if change is not None else None)
    out = {
        "metric": name, "label": label, "scale": scale, "n_baseline": 3, "n_candidate": 3,
        "baseline": base, "candidate": cand, "change": change, "ci": list(ci) if ci else None,
        "diff": cand - base, "diff_ci": [cand - base - 0.1, cand - base + 0.1], "verdict": verdict,
        "reason": "", "detectable": 0.1, "repeats_needed": None, "outlier": None,
    }  # fmt: skip
    out.update(kw)
    return out


def comparison(*metrics: dict[str, Any]) -> dict[str, Any]:
    verdicts = {m["verdict"] for m in metrics}
    v = (
        "improved"
        if "improved" in verdicts
        else "unchanged"
        if verdicts == {"unchanged"}
        else "inconclusive"
    )
    return {"verdict": v, "metrics": list(metrics), "notes": [], "repeats": [3, 3]}


def switch(
    name: str, verdict: str, add: dict[str, Any], drop: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    out = {
        "name": name, "finding": f"PHASE3-0{len(name)}: {name} finding", "phase3": f"{name} before",
        "optimized": f"{name} after", "code": [f"perfaudit/refservice/{name}.py:do_{name[:4]}"],
        "touches": list(add), "measured_on": list(add), "add_one": add, "drop_one": drop,
        "instructions": {}, "verdict": verdict, "interactions": [], "best": [],
    }  # fmt: skip
    out.update(kw)
    return out


def capacity_result(
    variant: str, capacity: float, limited_by: str, first_failing: float | None
) -> dict[str, Any]:
    rates = [50.0, 80.0, 128.0, 205.0, 328.0, 525.0, 840.0, 1000.0]
    steps = []
    for r in rates:
        if first_failing is not None and r > first_failing:
            break
        ok = r <= capacity
        steps.append({"rate": r, "verdict": "pass" if ok else "fail", "p95_ms": 20 + r / (10 if ok else 1),
                      "p99_ms": 40 + r / 5, "error_rate": 0.0, "achieved_rps": r,
                      "reasons": [] if ok else [f"p95_ms {r:g} > 200"], "phase": "step", "wall_s": 3.0})  # fmt: skip
    return CapacityResult.from_dict({
        "scenario": "webhook-text", "label": f"reference/{variant}", "steps": steps,
        "capacity": capacity, "limited_by": limited_by, "first_failing": first_failing,
        "wall_s": 30.0, "reason": "128 req/s failed: p95_ms 656 > 200" if first_failing else "",
    }).to_dict()  # fmt: skip


def full_summary() -> dict[str, Any]:
    """A fuller summary than the sample: capacity, opportunities, instructions, an
    interaction, an inconclusive switch, a non-ASCII/HTML finding; no regressed verdict."""
    s = copy.deepcopy(json.loads(SAMPLE.read_text())) if SAMPLE.exists() else {}
    s.update(
        {"audit_id": "audit-test", "created_at": "2026-12-02T03:05:42+00:00", "status": "complete"}
    )
    s["metrics"] = {
        k: {"label": v[0], "unit": v[1], "better": "lower", "scale": v[2]} for k, v in UNITS.items()
    }
    s["headline"] = "2 switches improved, 1 unchanged, 1 inconclusive at this resolution"
    pool = switch(
        "redis-pool", "improved",
        {"webhook-text": comparison(metric("p95_ms", 400.0, 40.0, "improved"),
                                    metric("redis_new_connections_per_request", 2.0, 0.0, "improved"),
                                    metric("service_rss_max_mb", 90.0, 70.0, "improved"))},
        {"webhook-text": comparison(metric("p95_ms", 50.0, 40.0, "improved"),
                                    metric("service_rss_max_mb", 70.0, 70.0, "unchanged"))},
        instructions={
            "add_one": {"webhook-text": comparison(metric("service_instructions_per_request", 2e6, 1.4e6, "improved"))},
            "drop_one": {"webhook-text": comparison(metric("service_instructions_per_request", 1.5e6, 1.4e6, "improved"))},
        },
        interactions=[{"scenario": "webhook-text", "metric": "service_rss_max_mb", "label": "service peak RSS",
                       "add_one": "improved", "drop_one": "unchanged", "add_change": -0.222,
                       "drop_change": 0.0, "add_diff": -20.0, "drop_diff": 0.0}],
        finding=f"PHASE3-029: a Redis client per request {SCRIPT}",
    )  # fmt: skip
    keepalive = switch(
        "http-keepalive", "improved",
        {"telegram-job": comparison(metric("service_cpu_ms_per_request", 10.0, 7.0, "improved"))},
        {"telegram-job": comparison(metric("service_cpu_ms_per_request", 8.0, 7.0, "improved"))},
    )  # fmt: skip
    getdel = switch(
        "atomic-getdel", "inconclusive",
        {"callback-success": comparison(metric("p95_ms", 20.0, 19.0, "inconclusive", detectable=0.35, repeats_needed=12))},
        {"callback-success": comparison(metric("p95_ms", 15.0, 14.0, "inconclusive", detectable=1.5, repeats_needed=51))},
    )  # fmt: skip
    unchanged = switch(
        "json-fast", "unchanged",
        {"webhook-text": comparison(metric("service_rss_max_mb", 90.0, 90.5, "unchanged"))},
        {"webhook-text": {"verdict": "missing", "metrics": [], "notes": ["not measured on both sides"]}},
    )  # fmt: skip
    s["switches"] = [pool, keepalive, getdel, unchanged]
    p3 = capacity_result("phase3", 80.0, "target", 128.0)
    opt = capacity_result("optimized", 1000.0, "max_rate", None)
    ratio = capacity_ratio(CapacityResult.from_dict(p3), CapacityResult.from_dict(opt))
    s["capacity"] = [{"scenario": "webhook-text", "phase3": p3, "optimized": opt, "ratio": ratio}]
    s["targets"] = [
        {"target": "Webhook response", "source": "PHASE3-035", "scenario": "webhook-text", "metric": "p95_ms",
         "limit_ms": 200.0, "phase3": {"p95_ms": 400.0, "p99_ms": 600.0, "repeats": 3, "status": "missed"},
         "optimized": {"p95_ms": 40.0, "p99_ms": 60.0, "repeats": 3, "status": "met"}},
        {"target": "Health check", "source": "PHASE3-035", "scenario": "health", "metric": "p95_ms",
         "limit_ms": 10.0, "phase3": {"p95_ms": 14.0, "p99_ms": 20.0, "repeats": 3, "status": "missed"},
         "optimized": {"p95_ms": 12.0, "p99_ms": 15.0, "repeats": 3, "status": "missed"}},
    ]  # fmt: skip
    s["combined"] = {"webhook-text": comparison(metric("p95_ms", 400.0, 40.0, "improved"))}
    s["opportunities"] = [
        {"kind": "alloc", "scenario": "webhook-text", "process": "service", "function": "json.dumps",
         "file": "json/__init__.py", "line": 231, "category": "stdlib", "share": 0.3, "size_mb": 12.5},
        {"kind": "cpu", "scenario": "webhook-text", "process": "service", "function": "handle_update",
         "file": "perfaudit/refservice/handler.py", "line": 88, "category": "own", "share": 0.12},
        {"kind": "cpu", "scenario": "webhook-text", "process": "service", "function": "httptools.parse",
         "file": "httptools/parser.py", "line": 10, "category": "library", "share": 0.08},
    ]  # fmt: skip
    s["plan"] = copy.deepcopy(s.get("plan") or {"settings": {}, "configs": []})
    s["plan"].update(capacity=["webhook-text"], instructions={"redis-pool": "webhook-text"},
                     profile_scenarios=["webhook-text"])  # fmt: skip
    s["parts"] = {
        "ablation": {"status": "complete", "wall_s": 900.0, "runs": 120},
        "instructions": {"status": "complete", "wall_s": 300.0, "runs": 4},
        "capacity": {"status": "complete", "wall_s": 420.5, "runs": 14},
        "profiles": {"status": "complete", "wall_s": 60.0, "runs": 6},
    }
    return s


def folder_with(tmp_path: Path, summary: dict[str, Any], name: str = "audit") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder


def rendered(folder: Path) -> tuple[str, str]:
    render_audit(folder)
    return (folder / "report.md").read_text(), (folder / "index.html").read_text()


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# Charts dominate the time: render the full summary once for the tests that only read it.
@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = folder_with(tmp_path_factory.mktemp("full"), full_summary())
    render_audit(folder)
    return folder


def read(folder: Path) -> tuple[str, str]:
    return (folder / "report.md").read_text(), (folder / "index.html").read_text()


@pytest.mark.skipif(not SAMPLE.exists(), reason="no sample summary")
def test_sample_renders_every_section(tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "summary.json")
    md, html = rendered(folder)
    for section in MD_SECTIONS:
        assert section in md, section
    for section in HTML_SECTIONS:
        assert section in html, section
    assert (
        "charts/switch-redis-pool.png" in md and (folder / "charts/switch-redis-pool.png").exists()
    )
    assert "Not part of this audit's plan: no capacity search." in md


def test_full_summary_sections_md_and_html(full: Path) -> None:
    md, html = read(full)
    for section in MD_SECTIONS:
        assert section in md, section
    for section in HTML_SECTIONS:
        assert section in html, section
    for chart in ("switch-redis-pool", "switch-http-keepalive", "capacity", "targets"):
        assert f"charts/{chart}.png" in md and f'src="charts/{chart}.png"' in html
        assert (full / f"charts/{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # capacity: the optimized search stopped at max_rate, so only a bound
    assert "≥ 1000 req/s" in md and "80 req/s" in md and "≥ 12.50×" in md
    # inconclusive: what it could have seen, and the repeats that would decide it
    assert "inconclusive: could have seen ±35.0 %" in md and "about 12 repeats per side" in md
    # interactions, instructions, code and remaining opportunities
    assert "#### Interactions" in md and "depends on the other switches" in md
    assert "#### Instructions per request" in md and "1.4 M Ir/req" in md
    assert "`perfaudit/refservice/redis-pool.py` (`do_redi`)" in md
    assert "`perfaudit/refservice/handler.py:88`" in md and "`httptools/parser.py:10`" in md
    assert "`json/__init__.py:231`" in md and "12.5 MB" in md
    assert 'Target "Health check"' in md  # still missed: a recommendation
    assert "| total | complete | 28 min 00 s |" in md


def test_headline_first(full: Path) -> None:
    md, html = read(full)
    lines = [line for line in md.splitlines() if line.strip()]
    assert lines[0].startswith("# ")
    assert lines[1] == "**2 switches improved, 1 unchanged, 1 inconclusive at this resolution**"
    body = html.split("<body>", 1)[1]
    assert body.index("2 switches improved") < body.index("<h2")
    assert body.index("<h1>") < body.index('id="headline"') < body.index("<nav>")


def test_no_regressed_text_without_regressed_verdict(full: Path) -> None:
    md, html = read(full)
    assert "regressed" not in md.lower()
    assert "regressed" not in html.lower()


@pytest.mark.skipif(not SAMPLE.exists(), reason="no sample summary")
def test_regressed_shown_where_a_verdict_says_so() -> None:
    md = render_markdown(build_view(json.loads(SAMPLE.read_text())))
    assert "| regressed |" in md  # the sample's combined Redis commands/request


def test_rerender_identical_bytes(full: Path, tmp_path: Path) -> None:
    first = files(full)
    other = tmp_path / "elsewhere"
    render_audit(full / "summary.json", other)  # a fresh process-independent second render
    assert files(other) == {k: v for k, v in first.items() if k != "summary.json"}
    assert any(k.endswith(".png") for k in first) and "report.md" in first


def test_publish_then_render_from_dest_summary_alone(full: Path, tmp_path: Path) -> None:
    dest = tmp_path / "repo" / "reports" / "phase4"
    docs = tmp_path / "repo" / "docs" / "performance.md"
    written = publish(full, dest, docs)
    assert dest / "summary.json" in written and docs in written
    assert (dest / "report.md").exists() and (dest / "index.html").exists()
    published = files(dest)
    doc = docs.read_text()
    assert "](../reports/phase4/report.md)" in doc
    assert doc.startswith("<!-- Generated by `perfaudit audit`") and "Do not edit by hand" in doc
    # the committed report re-renders from its summary alone (publishing into itself; docs
    # given as a folder), giving the same files
    alone = tmp_path / "alone" / "reports" / "phase4"
    alone.mkdir(parents=True)
    shutil.copy(dest / "summary.json", alone / "summary.json")
    again = publish(alone, alone, tmp_path / "alone" / "docs")
    assert files(alone) == published
    assert tmp_path / "alone" / "docs" / "performance.md" in again
    assert (tmp_path / "alone" / "docs" / "performance.md").read_text() == doc


def test_performance_doc_has_each_switch_improvement() -> None:
    summary = full_summary()
    doc = render_performance_doc(summary, "../reports/phase4/report.md")
    for s in summary["switches"]:
        assert f"### {s['name']} — {s['verdict']}" in doc
        assert s["optimized"] in doc  # the technique
        for t in top_effects(summary, s):
            assert improvement_text(t.result, better_of(summary, t.metric)) in doc
    assert "+90.0 % (10× lower)" in doc  # redis-pool add-one p95 400 → 40 ms
    assert "+30.0 %" in doc  # http-keepalive add-one CPU 10 → 7 ms
    assert "1 of 2 measured targets met" in doc and "≥ 1000 req/s" in doc
    assert "handle_update" in doc and "Recommendations" in doc


def test_html_escapes_finding(full: Path) -> None:
    md, html = read(full)
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT not in md and "&lt;script&gt;" in md


def test_missing_part_and_fields() -> None:
    s = full_summary()
    del s["parts"]["profiles"]
    s["opportunities"] = []
    s["capacity"] = [{"scenario": "e2e-flow", "phase3": None, "optimized": None}]
    s["targets"][1]["optimized"] = None
    s["switches"][1]["drop_one"] = None
    s["switches"][2]["add_one"]["callback-success"]["metrics"][0].update(
        change=None, ci=None, detectable=None
    )
    s["combined"] = {}
    for k in ("environment", "headline", "finished_at"):
        s.pop(k, None)
    view = build_view(s)
    md = render_markdown(view)
    html = render_html(view)
    assert "The profiles part did not run: no profiles of the optimized variant." in md
    assert "The profiles part is not run: rerun the audit" in md
    assert "| profiles | not run | n/a | n/a |" in md
    assert "| e2e-flow | not measured | not measured | n/a |" in md
    assert "no switch measured" in md  # the headline's fallback
    assert "inconclusive: no noise estimate" in md
    for section in MD_SECTIONS:
        assert section in md, section
    assert 'id="opportunities"' in html
