"""The audit report's charts as PNG files, drawn with matplotlib (Agg, offline).

Each chart is a pure function of the summary: fixed sizes per row count, fixed rc
settings and no timestamps or software tag in the PNG metadata, so the same summary gives
the same bytes (the committed report re-renders without a diff).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)  # noqa: E402

from perfaudit.report.audit_view import (  # noqa: E402
    SIDE_TITLES,
    SIDES,
    Summary,
    capacity_text,
    slug,
)

COLORS = {"add_one": "#4c72b0", "drop_one": "#dd8452", "phase3": "#c44e52", "optimized": "#55a868"}
CONCLUSIVE = ("improved", "regressed", "unchanged")
RATIO_CLIP = (1e-2, 1e2)  # beyond -99 % / ×100 a point sits on the edge, its value written
STEP_MARKERS = {"pass": "o", "fail": "X", "invalid": "^"}
# Independent of any matplotlibrc on the machine that renders.
RC = {"font.size": 9, "font.family": "DejaVu Sans", "figure.dpi": 100, "savefig.dpi": 100,
      "path.simplify": False, "axes.titlesize": 10}  # fmt: skip
CHARTS_DIR = "charts"


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" tag (matplotlib's version) and no time: identical bytes on re-render.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _axes(ax: Any) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _legend_below(fig: Any, handles: list[Any]) -> None:
    """One legend under the plot: beside it, it would squeeze a narrow chart."""
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)) or 1, fontsize=7,
               frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))


def _plain_log(axis: Any) -> None:
    """Log-axis ticks as plain numbers (30, 100), not powers of ten."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _ratio_label(r: float, _: Any = None) -> str:
    if r >= 2:
        return f"×{r:g}"
    return f"{100 * (r - 1):+.0f} %" if abs(r - 1) > 1e-9 else "0"


def _clip(r: float) -> float:
    return min(max(r, RATIO_CLIP[0]), RATIO_CLIP[1])


# -- one switch ------------------------------------------------------------------------
def _effect_rows(s: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """(row label, side -> metric result) for every metric with a relative change."""
    rows: list[tuple[str, dict[str, dict[str, Any]]]] = []
    sources = [("", s), (" (instructions)", s.get("instructions") or {})]
    for suffix, src in sources:
        scenarios: list[str] = []
        for side in SIDES:
            scenarios += [sc for sc in (src.get(side) or {}) if sc not in scenarios]
        for sc in scenarios:
            by: dict[str, dict[str, dict[str, Any]]] = {}
            labels: dict[str, str] = {}
            for side in SIDES:
                for m in ((src.get(side) or {}).get(sc) or {}).get("metrics") or []:
                    if m.get("change") is None:
                        continue
                    labels.setdefault(m["metric"], m.get("label") or m["metric"])
                    by.setdefault(m["metric"], {})[side] = m
            rows += [(f"{sc}{suffix}: {labels[k]}", v) for k, v in by.items()]
    return rows


def switch_chart(s: dict[str, Any], path: Path) -> bool:
    """Relative change per (scenario, metric) with its CI, add-one and drop-one side by
    side, on a log-ratio axis around "no change". False (nothing drawn) without data."""
    rows = _effect_rows(s)
    if not rows:
        return False
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(8, 1.4 + 0.3 * len(rows)))
        _axes(ax)
        ax.axvline(1.0, color="black", lw=1)
        for k, side in enumerate(SIDES):
            offset = -0.17 if k == 0 else 0.17
            for conclusive in (True, False):
                ys, xs, lo, hi = [], [], [], []
                for i, (_, by) in enumerate(rows):
                    m = by.get(side)
                    if not m or (m.get("verdict") in CONCLUSIVE) != conclusive:
                        continue
                    x = _clip(1 + m["change"])
                    ci = m.get("ci") or (m["change"], m["change"])
                    ys.append(i + offset)
                    xs.append(x)
                    lo.append(max(x - _clip(1 + ci[0]), 0.0))
                    hi.append(max(_clip(1 + ci[1]) - x, 0.0))
                if not xs:
                    continue
                label = f"{SIDE_TITLES[side]}, {'conclusive' if conclusive else 'inconclusive'}"
                ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", color=COLORS[side], capsize=3,
                            markerfacecolor=COLORS[side] if conclusive else "white",
                            label=label)  # fmt: skip
        ax.set_xscale("log")
        _ratio_ticks(ax, rows)
        _label_clipped(ax, rows)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r[0] for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("with the switch vs without (relative change, 95 % CI; left: lower)")
        ax.set_title(f"{s.get('name')}: effect of the switch", loc="left")
        _legend_below(fig, ax.get_legend_handles_labels()[0])
        _save(fig, path)
    return True


def _ratio_ticks(ax: Any, rows: list[tuple[str, dict[str, dict[str, Any]]]]) -> None:
    values = [
        _clip(1 + v)
        for _, by in rows
        for m in by.values()
        for v in (m["change"], *(m.get("ci") or ()))
    ]  # fmt: skip
    lo, hi = min([*values, 0.8]) / 1.3, max([*values, 1.25]) * 1.3
    ax.set_xlim(lo, hi)
    # Fine ticks only when the range is narrow enough for them not to overlap.
    fine = (0.8, 1.25) if lo > 0.3 and hi < 3 else ()
    ticks = sorted(t for t in (0.01, 0.1, 0.5, 1.0, 2, 10, 100, *fine) if lo <= t <= hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_label))
    ax.xaxis.set_minor_locator(NullLocator())


def _label_clipped(ax: Any, rows: list[tuple[str, dict[str, dict[str, Any]]]]) -> None:
    """Write the value of each point beyond the clip range next to it."""
    for i, (_, by) in enumerate(rows):
        for k, side in enumerate(SIDES):
            m = by.get(side)
            if not m:
                continue
            r = 1 + m["change"]
            if RATIO_CLIP[0] < r < RATIO_CLIP[1]:
                continue
            text = f"×{r:,.0f}" if r >= RATIO_CLIP[1] else (f"÷{1 / r:,.0f}" if r > 0 else "-100 %")
            ax.annotate(text, (_clip(r), i + (-0.17 if k == 0 else 0.17)), xytext=(4, 4),
                        textcoords="offset points", fontsize=7, color=COLORS[side])  # fmt: skip


# -- capacity --------------------------------------------------------------------------
def capacity_chart(summary: Summary, path: Path) -> bool:
    """Per endpoint: each capacity step's rate vs p95 for phase3 and optimized, marked
    pass / fail / invalid, with each variant's capacity as a dashed line."""
    rows = [r for r in summary.get("capacity") or [] if r.get("phase3") or r.get("optimized")]
    if not rows:
        return False
    cols = min(2, len(rows))
    n_rows = math.ceil(len(rows) / cols)
    with matplotlib.rc_context(RC):
        fig, axes = plt.subplots(n_rows, cols, figsize=(8, 3.0 * n_rows), squeeze=False)
        for ax, row in zip(axes.flat, rows, strict=False):
            _capacity_axes(ax, row)
        for ax in list(axes.flat)[len(rows) :]:
            ax.set_visible(False)
        handles = [plt.Line2D([], [], color=COLORS[v], label=v) for v in ("phase3", "optimized")]
        handles += [plt.Line2D([], [], color="grey", marker=m, ls="", label=v)
                    for v, m in STEP_MARKERS.items()]  # fmt: skip
        _legend_below(fig, handles)
        _save(fig, path)
    return True


def _capacity_axes(ax: Any, row: dict[str, Any]) -> None:
    _axes(ax)
    for variant in ("phase3", "optimized"):
        r = row.get(variant) or {}
        steps = sorted((s for s in r.get("steps") or [] if s.get("p95_ms") is not None),
                       key=lambda s: s["rate"])  # fmt: skip
        color = COLORS[variant]
        if steps:
            ax.plot([s["rate"] for s in steps], [s["p95_ms"] for s in steps], color=color, lw=1)
        for verdict, marker in STEP_MARKERS.items():
            pts = [s for s in steps if s.get("verdict") == verdict]
            if pts:
                ax.scatter([s["rate"] for s in pts], [s["p95_ms"] for s in pts], color=color,
                           marker=marker, s=28, zorder=3)  # fmt: skip
        if r.get("capacity") is not None:
            ax.axvline(r["capacity"], color=color, ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    _plain_log(ax.yaxis)
    caps = ", ".join(f"{v} {capacity_text(row.get(v))}" for v in ("phase3", "optimized"))
    ax.set_title(f"{row.get('scenario')}: {caps}", loc="left", fontsize=9)
    ax.set_xlabel("arrival rate (req/s)")
    ax.set_ylabel("p95 (ms)")


# -- targets ---------------------------------------------------------------------------
def targets_chart(summary: Summary, path: Path) -> bool:
    """p95 of both variants per target, against the target's limit (black bar)."""
    rows = [t for t in summary.get("targets") or [] if t.get("phase3") or t.get("optimized")]
    if not rows:
        return False
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)))
        _axes(ax)
        for k, variant in enumerate(("phase3", "optimized")):
            ys, xs = [], []
            for i, t in enumerate(rows):
                p95 = (t.get(variant) or {}).get("p95_ms")
                if p95:
                    ys.append(i + (-0.2 if k == 0 else 0.2))
                    xs.append(p95)
            ax.barh(ys, xs, height=0.38, color=COLORS[variant], label=f"{variant} p95")
        limits = [(i, t["limit_ms"]) for i, t in enumerate(rows) if t.get("limit_ms")]
        if limits:
            ax.vlines([x for _, x in limits], [i - 0.45 for i, _ in limits],
                      [i + 0.45 for i, _ in limits], color="black", lw=2, zorder=3, label="limit")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{t.get('target')} ({t.get('scenario')})" for t in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("p95 latency (ms, log scale)")
        ax.set_title("Targets: p95 vs limit", loc="left")
        _plain_log(ax.xaxis)
        _legend_below(fig, ax.get_legend_handles_labels()[0])
        _save(fig, path)
    return True


# -- all -------------------------------------------------------------------------------
def chart_name(key: str) -> str:
    return f"{CHARTS_DIR}/{slug(key)}.png"


def write_charts(summary: Summary, out: Path) -> dict[str, str]:
    """Every chart there is data for, under ``out/charts/``: chart key -> path relative
    to ``out`` (keys: "switch-<name>", "capacity", "targets")."""
    drawn: dict[str, str] = {}
    for s in summary.get("switches") or []:
        key = f"switch-{s.get('name')}"
        if switch_chart(s, out / chart_name(key)):
            drawn[key] = chart_name(key)
    for key, draw in (("capacity", capacity_chart), ("targets", targets_chart)):
        if draw(summary, out / chart_name(key)):
            drawn[key] = chart_name(key)
    return drawn
