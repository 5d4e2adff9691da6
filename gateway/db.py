"""The gateway's SQLite database, opened one way by every store that lives in it
(registry, jobs, models, audit log): WAL, a busy timeout, NORMAL sync, foreign
keys on, autocommit (each store runs its own transactions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

PRAGMAS = ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON")


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection shared by a store's threads (it serializes its own use), with
    `schema` created if missing."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    for pragma in PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    db.executescript(schema)
    return db
