"""The audit log: append-only and hash-chained in the gateway's SQLite database.

Each entry commits to the previous entry's hash, so editing, deleting or
reordering any entry breaks the chain from there on, which `verify` (and
`mpcgate audit verify`) reports. Entries record who did what to which dataset,
job or result, when, and with what outcome; never a token, key or data value.
What `verify` proves: the entries present form one unbroken chain from the first,
none edited, removed from the middle or reordered. A chain cannot show that its
newest entries were cut off, so heads are anchored outside it: at the end of
every job each party sends its head (sequence, hash) to the others, which record
it in their own logs (`audit.peer_head`). `verify` with anchors (read from a
peer's log, or given by hand) also proves that the log still holds every entry up
to the newest anchor; only entries after it can go unnoticed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import grpc.aio

from gateway.api.gateway.v1 import audit_pb2 as apb
from gateway.api.gateway.v1 import audit_pb2_grpc
from gateway.db import Conditions, keyset, next_token, open_database
from gateway.transport.rpc import map_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq     INTEGER PRIMARY KEY,
    time    REAL NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev    TEXT NOT NULL,
    hash    TEXT NOT NULL
);
"""
GENESIS = "0" * 64


def _digest(prev: str, seq: int, when: float, actor: str, action: str, subject: str, outcome: str, details: str) -> str:
    body = json.dumps([prev, seq, repr(when), actor, action, subject, outcome, details], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    head: str
    problem: str = ""


class AuditLog:
    def __init__(self, database: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(database, SCHEMA)

    def append(self, actor: str, action: str, subject: str, outcome: str, details: dict[str, str] | None = None) -> str:
        text = json.dumps(details or {}, sort_keys=True)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                when = time.time()
                digest = _digest(prev, seq, when, actor, action, subject, outcome, text)
                self._db.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (seq, when, actor, action, subject, outcome, text, prev, digest))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return digest

    def head(self) -> tuple[int, str]:
        """(sequence, hash) of the newest entry: what peers record at a job's end."""
        with self._lock:
            last = self._db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def verify(self) -> Verdict:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, time, actor, action, subject, outcome, details, prev, hash FROM audit_log ORDER BY rowid"
            ).fetchall()
        return verify_rows(rows)

    def entries(self, limit: int, below: int | None = None, action: str = "", subject: str = "", actor: str = "",
                since: float | None = None, until: float | None = None, text: str = "") -> list[tuple]:
        """Rows (seq, time, actor, action, subject, outcome, details, prev, hash), newest
        first, filtered; with `below`, only entries before that sequence number (pages
        stay put while new entries arrive on top)."""
        where = Conditions()
        if below is not None:
            where.add("seq < ?", below)
        for column, value in (("action", action), ("subject", subject), ("actor", actor)):
            if value:
                where.add(f"{column} = ?", value)
        if since is not None:
            where.add("time >= ?", since)
        if until is not None:
            where.add("time < ?", until)
        if text:
            where.add("instr(lower(actor || ' ' || action || ' ' || subject || ' ' || outcome || ' ' || details), ?) > 0",
                      text.lower())
        query = "SELECT seq, time, actor, action, subject, outcome, details, prev, hash FROM audit_log"
        query += where.sql() + " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            return self._db.execute(query, (*where.params, limit)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def verify_rows(rows: list[tuple]) -> Verdict:
    prev, expected_seq = GENESIS, 1
    for seq, when, actor, action, subject, outcome, details, stored_prev, stored_hash in rows:
        if seq != expected_seq:
            return Verdict(False, expected_seq - 1, prev, f"entry {expected_seq} is missing or out of order (found {seq})")
        if stored_prev != prev:
            return Verdict(False, seq - 1, prev, f"entry {seq} does not follow entry {seq - 1} (deleted or reordered)")
        if _digest(prev, seq, when, actor, action, subject, outcome, details) != stored_hash:
            return Verdict(False, seq - 1, prev, f"entry {seq} was altered")
        prev, expected_seq = stored_hash, seq + 1
    return Verdict(True, expected_seq - 1, prev)


def _read(database: Path, query: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def verify_file(database: Path, anchors: list[tuple[int, str]] = ()) -> Verdict:  # type: ignore[assignment]
    """The chain's verdict; with anchors (sequence, hash), also that every anchored
    entry is still there with that hash (a cut-off tail is caught)."""
    if not database.is_file():
        return Verdict(False, 0, GENESIS, f"no database {database}")
    try:
        rows = _read(database, "SELECT seq, time, actor, action, subject, outcome, details, prev, hash FROM audit_log ORDER BY rowid")
    except sqlite3.OperationalError as err:
        return Verdict(False, 0, GENESIS, f"cannot read the audit log: {err}")
    verdict = verify_rows(rows)
    if not verdict.ok:
        return verdict
    hashes = {row[0]: row[8] for row in rows}
    for seq, digest in sorted(anchors):
        if hashes.get(seq) != digest:
            return Verdict(False, verdict.entries, verdict.head,
                           f"entry {seq} anchored elsewhere is {'altered' if seq in hashes else 'missing'}: "
                           f"the log was cut back to {verdict.entries} entries or rewritten")
    return verdict


def anchors_in(database: Path, party: str) -> list[tuple[int, str]]:
    """The heads of `party`'s log that this log recorded at the ends of jobs."""
    rows = _read(database, "SELECT details FROM audit_log WHERE action = 'audit.peer_head'")
    found = [json.loads(r[0]) for r in rows]
    return [(int(d["sequence"]), d["hash"]) for d in found if d.get("party") == party]


class AuditInterceptor(grpc.aio.ServerInterceptor):
    """Records every token-protected RPC (datasets, jobs, results): the verified
    caller, the method, what it named (dataset or job), and the outcome. Placed
    inside the scope check, so it sees the verified identity."""

    def __init__(self, log: AuditLog, audited_methods: set[str]) -> None:
        self._log = log
        self._methods = audited_methods
        self._in_flight = 0

    async def settle(self, timeout: float) -> None:
        """Waits (up to `timeout`) until every audited call has ended and been
        recorded: a call the stopping server cancelled unwinds after `stop` returns,
        and must not find the audit log closed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        from gateway.auth.interceptor import current_identity
        from gateway.transport.rpc import wrap_handler

        handler = await continuation(details)
        if handler is None or details.method not in self._methods:
            return handler
        action = details.method.rsplit("/", 1)[-1]

        def begin(request: Any, context: Any) -> None:
            self._in_flight += 1

        def record(request: Any, context: Any, state: Any, error: BaseException | None) -> None:
            self._in_flight -= 1
            identity = current_identity()
            code = context.code() if hasattr(context, "code") else None
            outcome = getattr(code, "name", None) or ("CANCELLED" if error is not None else "OK")
            subject = (getattr(request, "job_id", "") or getattr(request, "model_id", "") or getattr(request, "name", "")
                       or getattr(getattr(request, "spec", None), "kind", ""))
            self._log.append(str(identity) if identity else "unknown", action, subject, outcome, {})

        return wrap_handler(handler, begin, record)


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """The audit log for its readers (scope audit:read); their reads are audited too."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self.records: Callable[[str], list[apb.JobRecord]] = lambda job_id: []
        """job id -> its co-signed records, checked (the scheduler's, set once it is wired)."""

    @map_errors
    async def ListAuditEntries(self, request: apb.ListAuditEntriesRequest, context: Any) -> apb.ListAuditEntriesResponse:
        size, below = keyset(request.page, PAGE_DEFAULT, PAGE_MAX)
        rows = self._log.entries(size + 1, below, request.action, request.subject, request.actor,
                                 _seconds(request, "since"), _seconds(request, "until"), request.text)
        response = apb.ListAuditEntriesResponse(entries=[_entry(row) for row in rows[:size]])
        response.page.next_page_token = next_token([row[0] for row in rows], size)
        return response

    @map_errors
    async def GetJobRecords(self, request: apb.GetJobRecordsRequest, context: Any) -> apb.GetJobRecordsResponse:
        return apb.GetJobRecordsResponse(records=await asyncio.to_thread(self.records, request.job_id))

    @map_errors
    async def VerifyAuditLog(self, request: apb.VerifyAuditLogRequest, context: Any) -> apb.VerifyAuditLogResponse:
        verdict = self._log.verify()
        return apb.VerifyAuditLogResponse(intact=verdict.ok, entries=verdict.entries, head=verdict.head,
                                          problem=verdict.problem)


PAGE_DEFAULT = 100
PAGE_MAX = 1000


def _seconds(request: apb.ListAuditEntriesRequest, field: Literal["since", "until"]) -> float | None:
    return getattr(request, field).ToDatetime(tzinfo=UTC).timestamp() if request.HasField(field) else None


def _entry(row: tuple) -> apb.AuditEntry:
    seq, when, actor, action, subject, outcome, details, prev, digest = row
    entry = apb.AuditEntry(sequence=seq, actor=actor, action=action, subject=subject, outcome=outcome,
                           details={k: str(v) for k, v in json.loads(details).items()}, hash=digest,
                           previous_hash=prev)
    entry.time.FromDatetime(datetime.fromtimestamp(when, tz=UTC))
    return entry
