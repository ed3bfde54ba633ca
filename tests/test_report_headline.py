"""The headline of a compared report says only what the comparison defends: scenarios
improved, unchanged, withheld or inconclusive at this resolution, never "regressed" from
a verdict the comparison withheld or could not give. And the throughput chart plots whole
seconds of load only."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from test_compare_entries import FAST, entry, repeats

from perfaudit.analysis.compare import Comparison, MetricResult, ScenarioComparison, compare_entries
from perfaudit.report import charts, markdown_summary
from perfaudit.report.outcome import build_report, comparison_headline, verdict_of
from perfaudit.report.render import render

SAMPLE = Path(__file__).parent / "data" / "sample-run" / "results.json"


def noisy(name: str, seed: int, scales: tuple[float, ...]) -> list[dict[str, Any]]:
    """Repeats whose level moves between restarts, like a sub-millisecond endpoint's."""
    rng = random.Random(seed)
    return [entry(name, rng, scale=s) for s in scales]


def comparison() -> Comparison:
    """The sample run's three scenarios against a stored baseline:
    e2e-flow 40 % slower, but the baseline is not trusted for time (withheld);
    health slower by ~30 % within a noise floor far wider (inconclusive);
    telegram-job with one new Redis connection per request fewer (a count: improved)."""
    base = [
        *repeats("e2e-flow", 1, n=5),
        *noisy("health", 3, (0.8, 1.0, 1.25)),
        *repeats("telegram-job", 5, new_conns=1.0),
    ]
    cand = [
        *repeats("e2e-flow", 2, n=5, scale=1.4),
        *noisy("health", 4, (1.05, 1.4, 1.2)),
        *repeats("telegram-job", 6),
    ]
    return compare_entries(
        base, cand, baseline_label="phase3", candidate_label="run x", mode="recorded",
        settings=FAST, untrusted={"e2e-flow": {"time": "A was recorded without a calibration"}},
    )  # fmt: skip


def test_the_comparison_is_the_case_under_test() -> None:
    c = comparison()
    by = {s.name: s for s in c.scenarios}
    e2e_p95 = next(m for m in by["e2e-flow"].metrics if m.metric == "p95_ms")
    assert e2e_p95.verdict == "inconclusive" and e2e_p95.reason.startswith("would be regressed")
    health_p95 = next(m for m in by["health"].metrics if m.metric == "p95_ms")
    assert health_p95.verdict == "inconclusive" and (health_p95.change or 0) > 0.1
    assert "too noisy" in health_p95.reason and health_p95.detectable
    assert by["telegram-job"].verdict == "improved"


def test_gate_headline_counts_only_what_the_comparison_defends() -> None:
    c = comparison()
    cand = [e for s in ("e2e-flow", "health", "telegram-job") for e in repeats(s, 9, n=1)]
    report = build_report("perfaudit compare phase3 vs run x", cand, c, with_checks=False)
    headline = report.headline
    assert report.exit_code == 0
    assert "regressed" not in headline
    assert headline.startswith("PASS: 3 scenario(s); vs baseline: 1 scenario improved, ")
    assert "1 withheld (not trusted for a verdict" in headline
    assert re.search(
        r"1 inconclusive at this resolution \(p95 latency: could have seen ±", headline
    )
    summary = markdown_summary.render(report)  # the CI job summary opens with the headline
    assert summary.startswith(f"## ✅ perfaudit: {headline}\n")
    assert "regressed" not in summary
    assert "| ❔ withheld |" in summary and "| 🟢 improved: redis_new_connections" in summary


def test_rendered_report_headline_and_rows(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(SAMPLE.read_text())
    c = comparison()
    written = render(run, None, None, "baseline phase3", c.to_dict())
    md = written.markdown.read_text()
    expected = comparison_headline(c.scenarios)
    assert f"Compared with **baseline phase3**: {expected}" in md
    assert expected.startswith("1 scenario improved, 1 withheld")
    html = written.html.read_text()
    assert expected in html.replace("&#39;", "'")
    body = html.split("</style>", 1)[1]
    for text in (md, body):
        assert "regressed" not in text  # the withheld e2e-flow regression is not called
    health = md.split("## health")[1].split("\n## ")[0]
    assert "- vs baseline: inconclusive at this resolution; could have seen p50 latency ±" in health
    assert re.search(r"\| inconclusive \(could have seen ±[^)]+\) \|", health)
    e2e = md.split("## e2e-flow")[1].split("\n## ")[0]
    assert "inconclusive (withheld; could have seen" in e2e
    assert "- vs baseline: improved: new Redis connections/request" in md


def test_a_stored_scenario_verdict_does_not_outvote_its_metrics() -> None:
    """A comparison read back whose summary says regressed while no metric does."""
    m = MetricResult("p95_ms", "p95 latency", "log", 3, 3, 0.4, 0.7, change=0.75,
                     verdict="inconclusive", reason="too noisy to say", detectable=0.9)  # fmt: skip
    sc = ScenarioComparison("health", "http", "regressed", [m])
    assert verdict_of(sc) == "inconclusive"
    headline = comparison_headline([sc])
    assert headline == (
        "1 scenario inconclusive at this resolution (p95 latency: could have seen ±90.0 %)"
    )


# -- the throughput chart's last second --------------------------------------------------------
def seconds(n: int, per_s: int, last: int) -> list[dict[str, Any]]:
    out = [{"t": t, "completed": per_s, "p50_ms": 1.0, "p99_ms": 2.0} for t in range(n)]
    out[-1]["completed"] = last
    return out


def test_only_whole_seconds_of_load_are_throughput() -> None:
    # 0.5 s warm-up + 2 s: the third bucket holds half a second of load (the sample run).
    part = seconds(3, 200, 100)
    assert [s["t"] for s in charts.whole_seconds(part, 2.5)] == [0, 1]
    # 2 s + 8 s: bucket 10 holds only the drain, responses after the load stopped.
    drain = seconds(11, 50, 3)
    assert [s["t"] for s in charts.whole_seconds(drain, 10.0)] == list(range(10))
    assert charts.whole_seconds(drain, None) == drain  # window not recorded: all kept


def test_load_timeline_has_no_drop_at_the_end(monkeypatch: Any) -> None:
    data = json.loads(SAMPLE.read_text())
    load = data["scenarios"][1]["load"]  # health: 200/s, 0.5 s + 2 s, last bucket 100
    assert [s["completed"] for s in load["timeline"]] == [200, 200, 100]
    drawn: dict[str, Any] = {}

    def keep(fig: Any) -> str:
        lat, tput = fig.axes
        drawn["tput"] = {ln.get_label(): list(ln.get_ydata()) for ln in tput.get_lines()}
        drawn["lat"] = {ln.get_label(): len(ln.get_xdata()) for ln in lat.get_lines()}
        return "<svg/>"

    monkeypatch.setattr(charts, "_svg", keep)
    longer = {**load, "warmup_s": 1.0, "duration_s": 2.0}  # 3 s: every bucket whole
    charts.load_timeline({"baseline": longer, "this run": load})
    assert drawn["tput"] == {"baseline": [200, 200, 100], "this run": [200, 200]}
    assert drawn["lat"]["this run p50"] == 3  # the last bucket's latencies are real: kept
