"""The audit log of the gateway a Client talks to (scope audit:read): its entries,
filtered and paged, and the gateway's check of its own chain."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from gateway.api.common.v1 import paging_pb2
from gateway.api.gateway.v1 import audit_pb2 as apb
from gateway.api.gateway.v1 import audit_pb2_grpc

FIELDS = ("sequence", "time", "actor", "action", "subject", "outcome", "details", "hash")
"""An entry's fields as `as_row` gives them (the CLI's CSV and JSON-lines columns)."""


class AuditReader:
    def __init__(self, channel: Any, call: Callable[[Any, Any], Any]) -> None:
        self._stub = audit_pb2_grpc.AuditServiceStub(channel)
        self._call = call

    def entries(self, action: str = "", subject: str = "", actor: str = "", since: datetime | None = None,
                until: datetime | None = None, text: str = "", page_size: int = 500) -> Iterator[apb.AuditEntry]:
        """Entries newest first, fetched a page at a time (datetimes: UTC where naive)."""
        request = apb.ListAuditEntriesRequest(action=action, subject=subject, actor=actor, text=text)
        for field, value in (("since", since), ("until", until)):
            if value is not None:
                getattr(request, field).FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
        token = ""
        while True:
            request.page.CopyFrom(paging_pb2.PageRequest(page_size=page_size, page_token=token))
            response = self._call(self._stub.ListAuditEntries, request)
            yield from response.entries
            token = response.page.next_page_token
            if not token:
                return

    def records(self, job_id: str) -> list[apb.JobRecord]:
        """The job's co-signed records at the gateway, each checked against the federation CA."""
        response: apb.GetJobRecordsResponse = self._call(self._stub.GetJobRecords, apb.GetJobRecordsRequest(job_id=job_id))
        return list(response.records)

    def verify(self) -> apb.VerifyAuditLogResponse:
        """The gateway's verdict on its whole chain."""
        verdict: apb.VerifyAuditLogResponse = self._call(self._stub.VerifyAuditLog, apb.VerifyAuditLogRequest())
        return verdict


def as_row(entry: apb.AuditEntry) -> dict[str, Any]:
    """An entry as plain values (time in ISO 8601, UTC)."""
    return {"sequence": entry.sequence, "time": entry.time.ToDatetime(tzinfo=UTC).isoformat(), "actor": entry.actor,
            "action": entry.action, "subject": entry.subject, "outcome": entry.outcome,
            "details": dict(entry.details), "hash": entry.hash}


def export(rows: list[dict[str, Any]], out_format: str) -> str:
    """`as_row` rows as JSON lines ("jsonl") or CSV ("csv", details as JSON): the
    CLI's and the console's exports."""
    if out_format == "jsonl":
        return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if out_format != "csv":
        raise ValueError(f"no export format {out_format!r}")
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "details": json.dumps(row["details"], sort_keys=True)} for row in rows)
    return out.getvalue()
