"""cost_app with a planted extra function per ``/work`` request: :func:`planted_extra`
JSON-encodes a small dict 5 times, so a differential against cost_app must name it (Python
calls) and json's C encoder (instructions per C function)."""

from __future__ import annotations

import json

from cost_app import make_app

PAYLOAD = {"user": "planted", "items": [1, 2, 3], "ok": True, "note": "a small dict"}


def planted_extra() -> int:
    size = 0
    for _ in range(5):
        size += len(json.dumps(PAYLOAD))
    return size


app = make_app(extra=planted_extra)
