"""Did-you-mean hints for unknown names in user input (scenario keys, profiler names)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match, else ``""``."""
    choices = list(choices)
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match and word:  # a truncated name ("pending" for "pending_callbacks")
        match = [c for c in choices if c.startswith(word)][:2]
        match = match if len(match) == 1 else []
    return f" (did you mean {match[0]!r}?)" if match else ""
