"""``memray stats --json`` -> the figures perfaudit keeps: peak, total allocated, top allocators;
and from the capture itself, the top leak sites."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from perfaudit.profile.hotspots import Classifier, Frame
from perfaudit.profile.loopthread import driver_index

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


def leaks(capture: Path, classifier: Classifier, top: int = 10) -> list[dict[str, Any]]:
    """What was still allocated when tracking ended, by location (the innermost frame of the
    allocating stack), biggest first: ``{function, file, line, bytes, count, category, own}``
    where ``own`` is the innermost frame of the service's own code above the event loop on those
    stacks (the most bytes), or None. memray gives one record per distinct stack; sites merge them. Allocations
    made while importing are left out: modules and their code live for good by design, and
    under ``memray run`` (start-up included) they would fill the list."""
    from memray import FileReader  # memray is only needed when it ran

    sites: dict[Frame, list[int]] = defaultdict(lambda: [0, 0])
    owns: dict[Frame, dict[Frame, int]] = defaultdict(lambda: defaultdict(int))
    for record in FileReader(str(capture)).get_leaked_allocation_records(merge_threads=True):
        trace = [Frame(f, file, line) for f, file, line in record.stack_trace()]  # innermost first
        if any(f.file.startswith("<frozen importlib") for f in trace):
            continue
        site = trace[0] if trace else Frame("(native or untracked)")
        sites[site][0] += record.size
        sites[site][1] += record.n_allocations
        # Only frames the loop called: below it, the service's main() is on every stack.
        root_first = tuple(reversed(trace))
        d = driver_index(root_first)
        above = root_first[d + 1 :] if d is not None else root_first
        own = next((f for f in reversed(above) if classifier.category(f) == "own"), None)
        if own is not None:
            owns[site][own] += record.size
    ranked = sorted(sites.items(), key=lambda kv: (-kv[1][0], kv[0].file, kv[0].line or 0))
    out = []
    for site, (size, count) in ranked[:top]:
        own_sizes = owns.get(site) or {}
        own = max(own_sizes, key=lambda f: own_sizes[f]) if own_sizes else None
        out.append({
            "function": site.function, "file": site.file, "line": site.line,
            "bytes": size, "count": count,
            "category": classifier.category(site) if site.file else "library",
            "own": {"function": own.function, "file": own.file, "line": own.line} if own else None,
        })  # fmt: skip
    return out
