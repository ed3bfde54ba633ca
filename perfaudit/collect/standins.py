"""What the window cost the upstreams: stand-in call and connection counter deltas, and how
consecutive calls for one chat followed each other (``sequences``).

Read over the stand-ins' control port (``GET /_standin/stats``, ``GET /_standin/calls``),
which is neither an upstream nor a recorded route, so the collector's own requests do not
show up in the figures.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from perfaudit.collect.base import Result
from perfaudit.upstreams import routes as r

# Calls the stand-ins make *to* the service; not upstream calls of the service.
OUTGOING_ROUTES = frozenset({r.CR_CALLBACK})
_PREFIXES = {"telegram.": r.TELEGRAM, "cursor.": r.CURSOR_RUNNER, "git.": r.CURSOR_RUNNER,
             "elevenlabs.": r.ELEVENLABS}  # fmt: skip


def upstream_of(route: str) -> str | None:
    """``telegram.sendMessage`` -> ``telegram``; None for outgoing callbacks and unknowns."""
    if route in OUTGOING_ROUTES:
        return None
    for prefix, upstream in _PREFIXES.items():
        if route.startswith(prefix):
            return upstream
    return None


# The call log is read in pages after the window, at most this many calls: a 3 s window of
# webhook-voice is ~300, a 60 s one at 200 req/s ~40k; beyond the cap the summary says so.
PAGE = 5000
MAX_CALLS = 50_000
TOP_PAIRS = 20


class StandinDelta:
    def __init__(self, control_url: str, timeout: float = 5.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout
        self._start: dict[str, Any] | None = None
        self._since = 0  # the call log's last seq at the start of the window
        self._t0 = 0.0

    def _get(self, path: str, **params: Any) -> Any:
        with httpx.Client(timeout=self.timeout) as http:
            resp = http.get(f"{self.control_url}/_standin/{path}", params=params)
            return resp.raise_for_status().json()

    def _stats(self) -> dict[str, Any]:
        return self._get("stats")

    def start(self) -> None:
        self._start = self._stats()
        self._t0 = time.time()
        # The log holds consecutive seqs (appended one by one, trimmed from the front), so its
        # last seq is its first + its length - 1: no need to page through the old calls.
        first = self._get("calls", limit=1).get("calls") or []
        n = int(self._start.get("calls_logged") or 0)
        self._since = int(first[0]["seq"]) + n - 1 if first and n else 0

    def stop(self) -> Result:
        if self._start is None:
            raise RuntimeError("StandinDelta.stop() before start()")
        out = delta(self._start, self._stats())
        try:
            out["sequences"] = sequences(self._window_calls())
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            out["sequences"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def _window_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        since = self._since
        while len(calls) < MAX_CALLS:
            page = self._get("calls", since=since, limit=PAGE).get("calls") or []
            calls.extend(c for c in page if float(c.get("ts") or 0.0) >= self._t0)
            if len(page) < PAGE:
                break
            since = int(page[-1]["seq"])
        return calls[:MAX_CALLS]


_TRAILING_ID = re.compile(r"(\d+)$")


def chat_key(call: Mapping[str, Any]) -> str | None:
    """Which conversation a call belongs to: the request's ``chat_id``, else the number that
    ends an id made from the update (``file_id: voice-<update_id>``, ``callback_query_id:
    cq-<update_id>``); the scenarios give every update its own chat, with chat id = update id.
    Calls without one (downloads, speech-to-text, cursor-runner) are not in a sequence."""
    body = call.get("json")
    if not isinstance(body, Mapping):
        return None
    if body.get("chat_id") is not None:
        return str(body["chat_id"])
    for field in ("file_id", "callback_query_id"):
        m = _TRAILING_ID.search(str(body.get(field) or ""))
        if m:
            return m.group(1)
    return None


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def sequences(calls: Iterable[Mapping[str, Any]], top: int = TOP_PAIRS) -> Result:
    """Consecutive calls per chat, summed per ordered pair of routes (``first`` then
    ``then``): in how many chats the second started after the first had ended
    (``sequential``) rather than while it ran (``overlapped``), with the median gap between
    them (sequential ones) and the calls' median durations. ``awaited a; awaited b`` in the
    service is sequential with a gap near zero; ``gather(a, b)`` overlaps."""
    by_chat: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    n = 0
    for c in calls:
        n += 1
        if c.get("route") in OUTGOING_ROUTES:
            continue
        key = chat_key(c)
        if key is not None:
            by_chat[key].append(c)
    pairs: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: {"seq": [], "ovl": [], "gap": [], "first": [], "then": []}
    )
    for chat in by_chat.values():
        chat.sort(key=lambda c: (float(c["ts"]), int(c.get("seq") or 0)))
        for a, b in itertools.pairwise(chat):
            p = pairs[(str(a["route"]), str(b["route"]))]
            a_ms, b_ms = float(a.get("duration_ms") or 0.0), float(b.get("duration_ms") or 0.0)
            gap_ms = (float(b["ts"]) - float(a["ts"])) * 1000.0 - a_ms
            (p["seq"] if gap_ms >= 0 else p["ovl"]).append(1.0)
            if gap_ms >= 0:
                p["gap"].append(gap_ms)
            p["first"].append(a_ms)
            p["then"].append(b_ms)
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]["first"]), kv[0]))
    return {
        "calls": n,
        "chats": len(by_chat),
        "truncated": n >= MAX_CALLS,
        "pairs": [
            {
                "first": first,
                "then": then,
                "groups": len(p["first"]),
                "sequential": len(p["seq"]),
                "overlapped": len(p["ovl"]),
                "gap_ms_p50": _p50(p["gap"]),
                "first_ms_p50": _p50(p["first"]),
                "then_ms_p50": _p50(p["then"]),
            }
            for (first, then), p in ranked[:top]
        ],
    }


def delta(start: dict[str, Any], end: dict[str, Any]) -> Result:
    # A /_standin/reset inside the window zeroes the counters: count from zero then.
    reset = _went_down(start, end)
    base = _empty() if reset else start
    routes: dict[str, dict[str, int]] = {}
    for name, c in end.get("routes", {}).items():
        prev = base.get("routes", {}).get(name, {})
        calls = c.get("calls", 0) - prev.get("calls", 0)
        errors = c.get("errors", 0) - prev.get("errors", 0)
        if calls or errors:
            routes[name] = {"calls": calls, "errors": errors}

    upstreams: dict[str, dict[str, int]] = {}
    for name, c in end.get("connections", {}).items():
        prev = base.get("connections", {}).get(name, {})
        upstreams[name] = {
            "calls": 0,
            "errors": 0,
            "new_connections": c.get("new", 0) - prev.get("new", 0),
            "open_connections": c.get("open", 0),  # at the end of the window
        }
    for name, c in routes.items():
        up = upstream_of(name)
        if up is not None:
            u = upstreams.setdefault(
                up, {"calls": 0, "errors": 0, "new_connections": 0, "open_connections": 0}
            )
            u["calls"] += c["calls"]
            u["errors"] += c["errors"]

    cb, cb0 = end.get("callbacks", {}), base.get("callbacks", {})
    return {
        "routes": dict(sorted(routes.items())),
        "upstreams": upstreams,
        "calls": sum(u["calls"] for u in upstreams.values()),
        "errors": sum(u["errors"] for u in upstreams.values()),
        "callbacks": {
            "sent": cb.get("sent", 0) - cb0.get("sent", 0),
            "failed": cb.get("failed", 0) - cb0.get("failed", 0),
            "pending": cb.get("pending", 0),  # at the end of the window
        },
        "reset": reset,
    }


def _empty() -> dict[str, Any]:
    return {"routes": {}, "connections": {}, "callbacks": {}}


def _went_down(start: dict[str, Any], end: dict[str, Any]) -> bool:
    def counters(s: dict[str, Any]) -> dict[str, int]:
        out = {f"r:{k}": v.get("calls", 0) for k, v in s.get("routes", {}).items()}
        out.update({f"c:{k}": v.get("new", 0) for k, v in s.get("connections", {}).items()})
        out.update({f"b:{k}": s.get("callbacks", {}).get(k, 0) for k in ("sent", "failed")})
        return out

    after = counters(end)
    return any(after.get(k, 0) < v for k, v in counters(start).items())
