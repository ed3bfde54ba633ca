"""Removing secrets from anything that is logged or shown: query values, bot tokens."""

from __future__ import annotations

import re

_SECRET_QUERY = re.compile(r"(?i)([?&](?:secret|admin_secret|token|api_key|key)=)[^&#\s]*")
_BOT_TOKEN = re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}")
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    return _BOT_TOKEN.sub("bot" + REDACTED, text)
