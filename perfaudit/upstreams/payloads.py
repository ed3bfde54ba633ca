"""Deterministic payloads (binary audio bodies, cursor output text) and request-body parsing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

CHUNK = 64 * 1024


@lru_cache(maxsize=8)
def _block(magic: bytes) -> bytes:
    # Fixed pseudo-random-looking filler so compressing proxies/clients cannot cheat.
    filler = bytes((i * 131 + 7) % 251 for i in range(CHUNK))
    return (magic + filler)[:CHUNK]


def binary_chunks(magic: bytes, size: int) -> Iterator[bytes]:
    """``size`` deterministic bytes starting with ``magic`` (e.g. ``OggS``, ``ID3``), chunked."""
    block = _block(magic)
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield block[:n]
        sent += n


async def stream_bytes(magic: bytes, size: int) -> AsyncIterator[bytes]:
    # Async on purpose: Starlette runs sync iterators in a threadpool, one hop per chunk.
    for chunk in binary_chunks(magic, size):
        yield chunk


@lru_cache(maxsize=8)
def output_text(size: int) -> str:
    """Deterministic ASCII cursor output of exactly ``size`` bytes."""
    lines: list[str] = []
    total = 0
    i = 0
    while total < size:
        line = f"Created src/module_{i:05d}.py with {i % 97} lines of code\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


@dataclass
class Body:
    """A request's parameters: JSON object, or form fields plus uploaded-file metadata."""

    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid_json: bool = False

    def record(self) -> dict[str, Any]:
        return {**self.fields, **self.files} if self.files else self.fields


async def read_body(request: Request) -> Body:
    """Parse query + JSON/urlencoded/multipart body; uploads are read fully (sized, not kept)."""
    body = Body(fields=dict(request.query_params))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=100, max_fields=1000) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    body.files[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": value.size if value.size is not None else len(await value.read()),
                    }
                else:
                    body.fields[key] = value
        return body
    raw = await request.body()
    if raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            body.invalid_json = True
            return body
        if isinstance(parsed, dict):
            body.fields.update(parsed)
        else:
            body.invalid_json = True
    return body
