"""How often a counterparty may intersect with a dataset: each party counts, in
its own database, the vertical jobs (private set intersections) that read each
of its datasets and with whom, and refuses a job that would pass the dataset's
policy's `intersections_per_day` with any counterparty.

Why: an intersection tells a party which of its keys the others hold. A
counterparty that registers guessed customer ids (padded with ids it learnt
before, so that size rules pass) learns who is another bank's customer, a few
keys per job; the number of jobs is what bounds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.db import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS intersections (
    job_id  TEXT NOT NULL,
    dataset TEXT NOT NULL,
    party   TEXT NOT NULL,     -- a counterparty of the job
    at      REAL NOT NULL,     -- when this party read the dataset for it (unix seconds)
    PRIMARY KEY (job_id, dataset, party)
);
"""
DAY_S = 86_400.0


class Intersections:
    def __init__(self, database: Path) -> None:
        self._db = open_database(database, SCHEMA)
        self._lock = threading.Lock()

    def record(self, job_id: str, dataset: str, counterparties: Sequence[str]) -> None:
        """The job read `dataset` for an intersection with `counterparties` (once)."""
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO intersections (job_id, dataset, party, at) VALUES (?, ?, ?, ?)",
                                 [(job_id, dataset, p, time.time()) for p in counterparties])

    def refusal(self, job_id: str, dataset: str, counterparties: Sequence[str], per_day: int) -> str:
        """Why the job may not intersect `dataset` with one of `counterparties` ('' if
        it may): each already had `per_day` other jobs on it in the last 24 hours."""
        if per_day <= 0:
            return ""
        since = time.time() - DAY_S
        with self._lock:
            for party in counterparties:
                (count,) = self._db.execute(
                    "SELECT COUNT(*) FROM intersections WHERE dataset = ? AND party = ? AND at >= ? AND job_id != ?",
                    (dataset, party, since, job_id)).fetchone()
                if count >= per_day:
                    return (f"dataset {dataset!r}'s policy allows {per_day} intersections (vertical jobs) per "
                            f"counterparty in 24 hours, and {party} has had {count}")
        return ""
