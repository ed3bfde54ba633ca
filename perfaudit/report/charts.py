"""Charts as SVG, drawn with matplotlib (offline, no browser-side code).

Each function takes plain data out of the results file and returns SVG text. Text stays
text (``svg.fonttype = none``) and element ids get a per-chart salt, so many charts can be
inlined in one HTML page without their ids clashing.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter  # noqa: E402

from perfaudit.load.histogram import LatencyHistogram  # noqa: E402

_salt = itertools.count()
# Percentiles for the latency curve, spaced evenly on the 1/(1-p) scale HdrHistogram uses.
CURVE_PERCENTILES = [
    0.0, 10.0, 25.0, 50.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0, 97.5, 98.0, 98.5,
    99.0, 99.25, 99.5, 99.6, 99.7, 99.8, 99.9, 99.95, 99.99, 99.999, 100.0,
]  # fmt: skip
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"pa{next(_salt)}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    # Drop the XML prolog and doctype so the SVG can be inlined in HTML.
    return re.sub(r"^.*?(<svg)", r"\1", text, count=1, flags=re.S)


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Any, Any]:
    fig, axes = plt.subplots(rows, 1, figsize=(8, height * rows), squeeze=False)
    for ax in axes[:, 0]:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes[:, 0]


def _x_of(p: float) -> float:
    return 1.0 / max(1e-6, 1.0 - p / 100.0)


def percentile_curve(histograms: Mapping[str, dict[str, Any]], title: str) -> str:
    """Latency by percentile for each labelled histogram (e.g. before and after)."""
    fig, (ax,) = _figure(height=3.4)
    for color, (label, encoded) in zip(COLORS, histograms.items(), strict=False):
        hist = LatencyHistogram.from_dict(encoded)
        if hist.count == 0:
            continue
        values = hist.percentiles_us(CURVE_PERCENTILES)
        xs = [_x_of(p) for p in CURVE_PERCENTILES]
        ax.plot(xs, [values[p] / 1000 for p in CURVE_PERCENTILES], label=label, color=color)
    ax.set_xscale("log")
    ticks = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999]
    ax.xaxis.set_major_locator(FixedLocator([_x_of(p) for p in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"p{100 * (1 - 1 / x):g}"))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _svg(fig)


def whole_seconds(
    seconds: Sequence[dict[str, Any]], window_s: float | None
) -> list[dict[str, Any]]:
    """The timeline's seconds that lie wholly inside the load window ``[0, window_s)``.

    The timeline buckets responses by completion time from the start of the load. When the
    window does not end on a whole second (0.5 s warm-up + 2 s), its last bucket holds only
    part of a second of load; and every bucket at or after the window's end holds only the
    drain, the responses to requests still in flight when the load stopped. As responses/s
    either reads as a drop towards 0 the service never had. Scaling such a bucket up is no
    honest alternative: its count covers the partial second *plus* a drain of unknown length
    (responses to requests sent before it), so dividing by the fraction over-reports by about
    latency / fraction and still shows a drain-only bucket near 0. Only whole seconds are
    plotted as throughput; the dropped buckets' latencies are real and stay on the latency
    axes. ``window_s`` None (not recorded): every second is kept."""
    if window_s is None:
        return list(seconds)
    return [s for s in seconds if s["t"] + 1 <= window_s + 1e-9]


def load_timeline(loads: Mapping[str, Mapping[str, Any]]) -> str:
    """Per second: p50 and p99 latency, and completed requests, for each labelled run.

    ``loads``: label -> a results entry's ``load`` (its ``timeline``, ``warmup_s`` and
    ``duration_s``); each run's time axis starts at the end of its own warm-up."""
    fig, (lat, tput) = _figure(rows=2, height=2.4)
    for color, (label, load) in zip(COLORS, loads.items(), strict=False):
        seconds = load.get("timeline") or []
        warmup_s = float(load.get("warmup_s") or 0.0)
        duration = load.get("duration_s")
        window_s = None if duration is None else warmup_s + float(duration)
        t = [s["t"] - warmup_s for s in seconds]
        lat.plot(t, [s["p50_ms"] for s in seconds], color=color, label=f"{label} p50")
        lat.plot(t, [s["p99_ms"] for s in seconds], color=color, ls="--", label=f"{label} p99")
        whole = whole_seconds(seconds, window_s)
        tput.plot([s["t"] - warmup_s for s in whole], [s["completed"] for s in whole],
                  color=color, label=label)  # fmt: skip
    for ax in (lat, tput):
        ax.axvspan(min(0.0, ax.get_xlim()[0]), 0, color="grey", alpha=0.1, lw=0)
    lat.set_ylabel("latency (ms)")
    lat.legend(fontsize=7, ncol=2)
    tput.set_ylabel("responses / s")
    tput.set_xlabel("seconds (shaded: warm-up; whole seconds of load only)")
    return _svg(fig)


def server_timeline(process: dict[str, Any], loop_lag: dict[str, Any] | None) -> str:
    """CPU and RSS of each process over the steady window, and the service's loop lag."""
    procs = (process or {}).get("processes", {})
    lag = (loop_lag or {}).get("timeline") or []
    rows = 2 + (1 if lag else 0)
    fig, axes = _figure(rows=rows, height=2.2)
    for color, (name, p) in zip(COLORS, procs.items(), strict=False):
        timeline = p.get("timeline") or []
        t = [s["t"] for s in timeline]
        axes[0].plot(t, [s["cpu"] for s in timeline], color=color, label=name)
        axes[1].plot(t, [s["rss_mb"] for s in timeline], color=color, label=name)
    axes[0].set_ylabel("CPU % of a core")
    axes[0].legend(fontsize=7, ncol=4)
    axes[1].set_ylabel("RSS (MB)")
    if lag:
        t0 = lag[0]["t"]
        axes[2].plot([s["t"] - t0 for s in lag], [s["max_ms"] for s in lag], color=COLORS[3])
        axes[2].set_ylabel("loop lag max (ms)")
    axes[-1].set_xlabel("seconds into the steady window")
    return _svg(fig)
