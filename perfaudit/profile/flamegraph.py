"""Collapsed stacks -> a flame graph SVG and a speedscope JSON file.

py-spy writes one format per recording, so perfaudit records the raw collapsed stacks once
and renders both from them. No PyPI package renders collapsed stacks to SVG and is kept up
(inferno is Rust, flamegraph.pl is Perl), so this is Brendan Gregg's layout, small: merge the
stacks into a tree, children sorted by name, width proportional to samples, root at the bottom;
colours by category (own code warm, libraries yellow, waiting grey) and a tooltip per frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from perfaudit.profile.hotspots import Classifier, Frame, Stack, short_path

WIDTH = 1200
ROW = 16
PAD = 10
MIN_PX = 0.3  # frames narrower than this are not drawn
COLOURS = {"own": (236, 112, 44), "library": (229, 190, 64), "waiting": (170, 170, 170)}


@dataclass
class _Node:
    label: str
    frame: Frame | None
    weight: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)


def _label(frame: Frame) -> str:
    if not frame.file:
        return frame.function
    return f"{frame.function} ({short_path(frame.file)})"


def _tree(stacks: Sequence[tuple[Stack, float]]) -> _Node:
    root = _Node("all", None)
    for stack, weight in stacks:
        root.weight += weight
        node = root
        for frame in stack:
            label = _label(frame)  # lines merged: one box per function and file
            child = node.children.get(label)
            if child is None:
                child = node.children[label] = _Node(label, frame)
            child.weight += weight
            node = child
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def _colour(category: str, label: str) -> str:
    r, g, b = COLOURS[category]
    jitter = (sum(map(ord, label)) % 30) - 15  # neighbours stay distinguishable
    return f"rgb({max(0, min(255, r + jitter))},{max(0, min(255, g + jitter))},{b})"


def render_svg(stacks: Sequence[tuple[Stack, float]], title: str, classifier: Classifier) -> str:
    root = _tree(stacks)
    depth = _depth(root)
    height = depth * ROW + 3 * PAD + 20
    scale = (WIDTH - 2 * PAD) / root.weight if root.weight else 0.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{WIDTH / 2}" y="{PAD + 12}" text-anchor="middle" font-size="15">'
        f"{escape(title)}</text>",
    ]

    def draw(node: _Node, x: float, level: int) -> None:
        w = node.weight * scale
        if w < MIN_PX:
            return
        y = height - PAD - (level + 1) * ROW
        if node.frame is None:
            category, tip = "library", f"all ({node.weight:g} samples, 100%)"
        else:
            # Grey only where the frame's own time (a leaf: polling, the native loop) dominates.
            own_time = node.weight - sum(c.weight for c in node.children.values())
            waiting = classifier.is_waiting(node.frame) and own_time * 2 >= node.weight
            category = "waiting" if waiting else classifier.category(node.frame)
            share = 100 * node.weight / root.weight
            tip = f"{node.label} — {node.weight:g} samples ({share:.2f}%), {category}"
        out.append(
            f'<g><title>{escape(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
            f'height="{ROW - 1}" fill="{_colour(category, node.label)}" rx="2"/>'
        )
        chars = int((w - 6) / 7)
        if chars >= 3:
            text = node.label if len(node.label) <= chars else node.label[: chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + ROW - 4}">{escape(text)}</text>')
        out.append("</g>")
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.label):
            draw(child, cx, level + 1)
            cx += child.weight * scale

    draw(root, PAD, 0)
    out.append("</svg>")
    return "\n".join(out)


def speedscope(stacks: Sequence[tuple[Stack, float]], name: str) -> dict[str, object]:
    """A speedscope "sampled" profile (https://www.speedscope.app/file-format-schema.json)."""
    index: dict[Frame, int] = {}
    frames: list[dict[str, object]] = []
    samples: list[list[int]] = []
    weights: list[float] = []
    for stack, weight in stacks:
        ids = []
        for frame in stack:
            if frame not in index:
                index[frame] = len(frames)
                entry: dict[str, object] = {"name": frame.function}
                if frame.file:
                    entry["file"] = frame.file
                if frame.line is not None:
                    entry["line"] = frame.line
                frames.append(entry)
            ids.append(index[frame])
        samples.append(ids)
        weights.append(weight)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "perfaudit",
    }


def write_all(
    stacks: Sequence[tuple[Stack, float]],
    svg_path: Path,
    speedscope_path: Path,
    title: str,
    classifier: Classifier,
) -> None:
    svg_path.write_text(render_svg(stacks, title, classifier))
    speedscope_path.write_text(json.dumps(speedscope(stacks, title)))
