"""Running a user's start command under a Python wrapper module (``memray run``,
``perfaudit.measure.pycalls``): ``python app.py`` -> ``python -m WRAPPER ... app.py``;
``uvicorn app:app`` (a console script) -> ``<its interpreter> -m WRAPPER ... <script> app:app``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence


def wrap_python_start(start: str, wrapper: Sequence[str]) -> str | None:
    """``start`` with ``-m <wrapper...>`` put after its Python interpreter, or None when it
    cannot be (a shell pipeline, an interpreter flag, not Python). The rest of the command
    is kept as written, so shell expansions in it still work."""
    text = start.strip()
    if not text:
        return None
    first, _, rest = text.partition(" ")
    rest = rest.strip()
    inserted = " ".join(shlex.quote(w) for w in wrapper)
    name = first.rsplit("/", 1)[-1]
    if name.startswith("python"):
        if not rest or (rest.startswith("-") and not rest.startswith("-m ")):
            return None
        return f"{first} -m {inserted} {rest}"
    path = shutil.which(first)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            shebang = f.readline().decode(errors="replace")
    except OSError:
        return None
    if not shebang.startswith("#!") or "python" not in shebang:
        return None
    interpreter = shebang[2:].strip().split()
    if not interpreter:
        return None
    return f"{shlex.join(interpreter)} -m {inserted} {shlex.quote(path)} {rest}".rstrip()
