"""Jobs, their event logs and results in the gateway's SQLite database.

A job's record is its `Job` message; its state also has a column so that every
change is a compare-and-set (`UPDATE ... WHERE state = ?`), which is what keeps
concurrent RPCs, workers and restarts from overwriting each other. Events are an
append-only log per job that WatchJob replays and follows.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import timestamp_pb2

from gateway.api.common.v1 import error_pb2
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.db import Conditions, open_database
from mpc.errors import FailedPrecondition, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    coordinator TEXT NOT NULL,
    state       INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    record      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, created_at);
CREATE TABLE IF NOT EXISTS job_events (
    job_id   TEXT NOT NULL REFERENCES jobs(job_id),
    sequence INTEGER NOT NULL,
    event    BLOB NOT NULL,
    PRIMARY KEY (job_id, sequence)
);
CREATE TABLE IF NOT EXISTS job_requests (   -- SubmitJob's request_id, per submitter: a retry finds its job
    submitted_by TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    job_id       TEXT NOT NULL REFERENCES jobs(job_id),
    PRIMARY KEY (submitted_by, request_id)
);
CREATE TABLE IF NOT EXISTS job_results (
    job_id TEXT PRIMARY KEY REFERENCES jobs(job_id),
    result BLOB NOT NULL
);
"""


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


class JobStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._db = open_database(path, SCHEMA)
        self.on_end: Callable[[pb.Job], None] = lambda job: None
        """Called once a job reaches a terminal state here (after the change is stored)."""

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create(self, job: pb.Job, message: str, request_id: str = "") -> pb.Job:
        """Stores a new job; with `request_id` (a submitter's, at the coordinator),
        also the key by which `by_request` finds it again."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (job_id, coordinator, state, created_at, record) VALUES (?, ?, ?, ?, ?)",
                (job.job_id, job.coordinator, job.state, time.time(), job.SerializeToString()),
            )
            if request_id:
                db.execute("INSERT INTO job_requests (submitted_by, request_id, job_id) VALUES (?, ?, ?)",
                           (job.submitted_by, request_id, job.job_id))
            self._append_event(db, job, message)
        return job

    def by_request(self, submitted_by: str, request_id: str) -> pb.Job | None:
        """The job `submitted_by` submitted with `request_id`, if any."""
        with self._lock:
            row = self._db.execute("SELECT job_id FROM job_requests WHERE submitted_by = ? AND request_id = ?",
                                   (submitted_by, request_id)).fetchone()
        return None if row is None else self.get(row[0])

    def get(self, job_id: str) -> pb.Job:
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return pb.Job.FromString(row[0])

    def find(self, job_id: str) -> pb.Job | None:
        try:
            return self.get(job_id)
        except NotFound:
            return None

    def list(self, states_wanted: builtins.list[int] | None = None, limit: int = 100, kind: str = "",
             since: float | None = None, party: str = "", below: int | None = None) -> list[pb.Job]:
        """Jobs newest first: only those in `states_wanted`, of `kind`, created here at
        or after `since` (seconds since the epoch), with `party` among their parties or
        receivers, stored before the job with row number `below`, where given."""
        return [job for _, job in self.page(states_wanted, limit, kind, since, party, below)]

    def page(self, states_wanted: builtins.list[int] | None = None, limit: int = 100, kind: str = "",
             since: float | None = None, party: str = "", below: int | None = None
             ) -> builtins.list[tuple[int, pb.Job]]:
        """`list`'s jobs with their row numbers (a page continues below the last one:
        jobs stored meanwhile do not shift it)."""
        where = Conditions()
        if states_wanted:
            where.add(f"state IN ({', '.join('?' * len(states_wanted))})", *states_wanted)
        if since is not None:
            where.add("created_at >= ?", since)
        if below is not None:
            where.add("rowid < ?", below)
        with self._lock:
            rows = self._db.execute("SELECT rowid, record FROM jobs" + where.sql() + " ORDER BY rowid DESC",
                                    where.params).fetchall()
        out: builtins.list[tuple[int, pb.Job]] = []
        for rowid, record in rows:
            job = pb.Job.FromString(record)
            if (not kind or job.spec.kind == kind) and (not party or _takes_part(job, party)):
                out.append((rowid, job))
                if len(out) == limit:
                    break
        return out

    def update(self, job_id: str, change: Callable[[pb.Job], None], message: str = "") -> pb.Job:
        """Applies `change(job)` (which may set a new state) atomically; a state change
        must be allowed by the transition table, else FailedPrecondition."""
        with self._transaction() as db:
            row = db.execute("SELECT state, record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            job = pb.Job.FromString(row[1])
            before = job.state
            change(job)
            if job.state != before:
                if not states.allowed(before, job.state):
                    raise FailedPrecondition(
                        f"job {job_id} cannot go from {states.name(before)} to {states.name(job.state)}"
                    )
                if job.state == states.RUNNING:
                    job.started_at.CopyFrom(now())
                if job.state in states.TERMINAL:
                    job.finished_at.CopyFrom(now())
            cur = db.execute(
                "UPDATE jobs SET state = ?, record = ? WHERE job_id = ? AND state = ?",
                (job.state, job.SerializeToString(), job_id, before),
            )
            if cur.rowcount != 1:
                raise FailedPrecondition(f"job {job_id} changed concurrently")
            if job.state != before or message:
                self._append_event(db, job, message or states.name(job.state).lower())
        if job.state != before and job.state in states.TERMINAL:
            self.on_end(job)
        return job

    def transition(self, job_id: str, target: states.State, message: str = "", error: error_pb2.ErrorInfo | None = None) -> pb.Job | None:
        """Moves the job to `target` if allowed from its current state; None (and no
        change) if it is not, e.g. because it already ended."""
        def change(job: pb.Job) -> None:
            if not states.allowed(job.state, target):
                raise _NotAllowed
            job.state = target
            if error is not None:
                job.error.CopyFrom(error)
        try:
            return self.update(job_id, change, message)
        except _NotAllowed:
            return None

    def _append_event(self, db: sqlite3.Connection, job: pb.Job, message: str) -> None:
        sequence = db.execute(
            "SELECT COALESCE(MAX(sequence), 0) + 1 FROM job_events WHERE job_id = ?", (job.job_id,)
        ).fetchone()[0]
        event = pb.JobEvent(
            job_id=job.job_id, sequence=sequence, time=now(), state=job.state,
            progress=job.progress, message=message, error=job.error,
        )
        db.execute("INSERT INTO job_events (job_id, sequence, event) VALUES (?, ?, ?)",
                   (job.job_id, sequence, event.SerializeToString()))

    def events(self, job_id: str, after: int = 0) -> builtins.list[pb.JobEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM job_events WHERE job_id = ? AND sequence > ? ORDER BY sequence", (job_id, after)
            ).fetchall()
        return [pb.JobEvent.FromString(r[0]) for r in rows]

    def save_result(self, result: pb.JobResult) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO job_results (job_id, result) VALUES (?, ?)",
                       (result.job_id, result.SerializeToString()))

    def result(self, job_id: str) -> pb.JobResult | None:
        with self._lock:
            row = self._db.execute("SELECT result FROM job_results WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else pb.JobResult.FromString(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _NotAllowed(Exception):
    pass


def _takes_part(job: pb.Job, party: str) -> bool:
    spec = job.spec
    return party in {*(i.party_id for i in spec.inputs), *spec.model.holders, *spec.result_receivers}
