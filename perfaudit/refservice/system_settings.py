"""SystemSetting feature flags in the shared SQLite file (spec §0, §7.9).

Switch ``settings-cache``: phase3 opens the file, sets WAL, prepares, queries and closes on
every lookup, synchronously on the event loop (as better-sqlite3 does in the TS port);
the optimized path reads all flags once and keeps them for a few seconds.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

CACHE_SECONDS = 5.0


def initialise(path: str) -> None:
    """Startup (spec §0): create the tables, force ``debug`` on, reset running tasks."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS system_settings (id INTEGER PRIMARY KEY, "
            "name TEXT UNIQUE NOT NULL, value INTEGER NOT NULL DEFAULT 0, "
            "created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS idx_system_settings_name ON system_settings(name)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, "
            "status INTEGER NOT NULL DEFAULT 0, updatedat TEXT)"
        )
        set_flag(db, "debug", True)
        # Voice replies need the row present (spec §3: a missing row reads as disabled).
        db.execute(
            "INSERT OR IGNORE INTO system_settings(name, value) VALUES ('allow_audio_output', 1)"
        )
        db.execute("UPDATE tasks SET status=0, updatedat=CURRENT_TIMESTAMP WHERE status!=0")


def set_flag(db: sqlite3.Connection, name: str, value: bool) -> None:
    db.execute(
        "INSERT INTO system_settings(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
        "SET value=excluded.value, updated_at=CURRENT_TIMESTAMP",
        (name, int(value)),
    )


def write_flag(path: str, name: str, value: bool) -> None:
    with sqlite3.connect(path) as db:
        set_flag(db, name, value)


class SystemSettings:
    def __init__(self, path: str, *, cached: bool) -> None:
        self.path = path
        self.cached = cached
        self._cache: dict[str, bool] = {}
        self._loaded_at = float("-inf")

    def enabled(self, name: str) -> bool:
        if self.cached:
            now = time.monotonic()
            if now - self._loaded_at > CACHE_SECONDS:
                self._cache = self._read_all()
                self._loaded_at = now
            return self._cache.get(name, False)
        return self._read_one(name)

    def disabled(self, name: str) -> bool:
        return not self.enabled(name)

    def _read_one(self, name: str) -> bool:
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            row = db.execute("SELECT value FROM system_settings WHERE name = ?", (name,)).fetchone()
        finally:
            db.close()
        return bool(row and row[0])

    def _read_all(self) -> dict[str, bool]:
        db = sqlite3.connect(self.path)
        try:
            return {n: bool(v) for n, v in db.execute("SELECT name, value FROM system_settings")}
        finally:
            db.close()
