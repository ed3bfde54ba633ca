"""A differential flame graph: what got cheaper and what got dearer between two profiles.

Brendan Gregg's red/blue differential flame graph, from two sets of collapsed stacks.
Each side is normalised to shares of its own samples (the two runs need not have the same
length or rate); boxes are as wide as the mean of both shares, so code that disappeared
still shows, and coloured by the change of the frame's inclusive share: red got dearer,
blue got cheaper, white unchanged. Frames are merged per function and file, not line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from perfaudit.profile.hotspots import Frame, Stack, parse_collapsed, short_path

WIDTH = 1200
ROW = 16
PAD = 10
MIN_PX = 0.4


@dataclass
class _Node:
    label: str
    before: float = 0.0  # inclusive share of the baseline's samples
    after: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return (self.before + self.after) / 2


def _label(frame: Frame) -> str:
    return f"{frame.function} ({short_path(frame.file)})" if frame.file else frame.function


def _add(root: _Node, stacks: Sequence[tuple[Stack, float]], side: str) -> None:
    total = sum(w for _, w in stacks) or 1.0
    for stack, weight in stacks:
        share = weight / total
        node = root
        setattr(node, side, getattr(node, side) + share)
        for frame in stack:
            label = _label(frame)
            node = node.children.setdefault(label, _Node(label))
            setattr(node, side, getattr(node, side) + share)


def _colour(delta: float, scale: float) -> str:
    x = max(-1.0, min(1.0, delta / scale)) if scale > 0 else 0.0
    if x >= 0:  # dearer: white -> red
        return f"rgb(255,{int(255 * (1 - x))},{int(255 * (1 - x))})"
    return f"rgb({int(255 * (1 + x))},{int(255 * (1 + x))},255)"  # cheaper: white -> blue


def _max_delta(node: _Node) -> float:
    return max([abs(node.after - node.before), *(_max_delta(c) for c in node.children.values())])


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def render_diff_svg(baseline: str, candidate: str, title: str) -> str:
    """SVG text from two collapsed-stack texts (``a;b;c 12`` per line)."""
    root = _Node("all")
    _add(root, parse_collapsed(baseline), "before")
    _add(root, parse_collapsed(candidate), "after")
    scale = _max_delta(root) or 1.0
    depth = _depth(root)
    height = depth * ROW + 3 * PAD + 20
    usable = WIDTH - 2 * PAD
    boxes: list[str] = []

    def draw(node: _Node, x: float, level: int) -> None:
        w = node.width * usable
        if w < MIN_PX:
            return
        y = height - PAD - (level + 1) * ROW
        delta = node.after - node.before
        tip = (f"{node.label}: {100 * node.before:.1f} % → {100 * node.after:.1f} % of samples "
               f"({100 * delta:+.1f} points)")  # fmt: skip
        text = escape(node.label[: max(0, int(w / 7))]) if w > 25 else ""
        boxes.append(
            f'<g><title>{escape(tip)}</title><rect x="{x:.1f}" y="{y}" width="{w:.1f}" '
            f'height="{ROW - 1}" fill="{_colour(delta, scale)}" stroke="#ccc" stroke-width="0.3"/>'
            + (f'<text x="{x + 3:.1f}" y="{y + ROW - 4}" font-size="11">{text}</text>' if text else "")
            + "</g>"
        )  # fmt: skip
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.label):
            draw(child, cx, level + 1)
            cx += child.width * usable

    draw(root, PAD, 0)
    legend = ("red: a larger share of samples than in the baseline; blue: smaller; "
              "width: the mean of both shares")  # fmt: skip
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif">'
        f'<text x="{PAD}" y="{PAD + 12}" font-size="13">{escape(title)}</text>'
        f'<text x="{PAD}" y="{PAD + 28}" font-size="11" fill="#555">{escape(legend)}</text>'
        + "".join(boxes)
        + "</svg>"
    )
