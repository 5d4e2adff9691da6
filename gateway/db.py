"""The gateway's SQLite database, opened one way by every store that lives in it
(registry, jobs, models, audit log): WAL, a busy timeout, NORMAL sync, foreign
keys on, autocommit (each store runs its own transactions); the filters and keyset
pages of its list queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from mpc.errors import InvalidArgument

PRAGMAS = ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON")


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection shared by a store's threads (it serializes its own use), with
    `schema` created if missing."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    for pragma in PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    db.executescript(schema)
    return db


class Conditions:
    """A WHERE clause from optional filters: `add` each that applies."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *values: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(values)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def keyset(page: Any, default: int, maximum: int) -> tuple[int, int | None]:
    """(page size, key to continue below) from a PageRequest. Pages are keyset
    pages, newest first: the token is the key of the last row shown, so rows
    stored meanwhile (every read of the audit log adds one) shift no page."""
    size = min(page.page_size or default, maximum)
    token = page.page_token
    if token and not token.isdigit():
        raise InvalidArgument(f"page_token {token[:40]!r} is not one this gateway gave")
    return size, int(token) if token else None


def next_token(keys: list[int], size: int) -> str:
    """The token for the page after `size` rows, given the keys of up to size + 1
    rows found ("" when there is none)."""
    return str(keys[size - 1]) if len(keys) > size else ""
