"""``memray stats --json`` -> the figures perfaudit keeps: peak, total allocated, top allocators."""

from __future__ import annotations

import re
from typing import Any

from perfaudit.profile.hotspots import Classifier, Frame

MB = 1024 * 1024
_LOCATION = re.compile(r"^(?P<function>[^:]*):(?P<file>.*):(?P<line>\d+)$")


def parse_location(text: str) -> Frame:
    """``function:file:line`` as memray writes it."""
    m = _LOCATION.match(text)
    if not m:
        return Frame(text)
    return Frame(m.group("function"), m.group("file"), int(m.group("line")))


def summarize(stats: dict[str, Any], classifier: Classifier, top: int = 10) -> dict[str, Any]:
    meta = stats.get("metadata") or {}
    total = stats.get("total_bytes_allocated") or 0

    def allocator(item: dict[str, Any], value_key: str) -> dict[str, Any]:
        frame = parse_location(str(item.get("location", "")))
        out: dict[str, Any] = {
            "function": frame.function,
            "file": frame.file,
            "line": frame.line,
            "category": classifier.category(frame) if frame.file else "library",
        }
        if value_key == "size":
            out["size_mb"] = round(item.get("size", 0) / MB, 3)
            out["share"] = round(item.get("size", 0) / total, 4) if total else 0.0
        else:
            out["count"] = item.get("count", 0)
        return out

    return {
        "peak_mb": round((meta.get("peak_memory") or 0) / MB, 3),
        "total_allocated_mb": round(total / MB, 3),
        "allocations": stats.get("total_num_allocations"),
        "tracked_from": meta.get("start_time"),
        "tracked_until": meta.get("end_time"),
        "native_traces": meta.get("has_native_traces"),
        "top_allocators": [
            allocator(i, "size") for i in (stats.get("top_allocations_by_size") or [])[:top]
        ],
        "top_by_count": [
            allocator(i, "count") for i in (stats.get("top_allocations_by_count") or [])[:top]
        ],
    }
