"""The audit log (scope audit:read): search by action, subject, actor, text and
time; export what the search found as JSON lines or CSV; verify the whole chain
with one click. Each read is itself an audit entry at the gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.client.audit import as_row, export
from gateway.console.pages import call, form, render, signed_in
from mpc.errors import InvalidArgument

routes = web.RouteTableDef()
SHOWN = 500
"""Entries a search shows (the export has all it found)."""
FILTERS = ("action", "subject", "actor", "text", "since", "until")


def _search(request: web.Request) -> tuple[dict[str, str], dict[str, Any]]:
    """The search form's fields, and the reader's arguments for them."""
    fields = {key: request.query.get(key, "").strip() for key in FILTERS}
    arguments: dict[str, Any] = {key: fields[key] for key in ("action", "subject", "actor", "text")}
    for key in ("since", "until"):
        if fields[key]:
            try:
                arguments[key] = datetime.fromisoformat(fields[key]).replace(tzinfo=UTC)
            except ValueError:
                raise InvalidArgument(f"{key} {fields[key][:40]!r} is not a date or time (YYYY-MM-DD[THH:MM])") from None
    return fields, arguments


def _newest(client: Any, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The newest SHOWN entries the search finds."""
    found = []
    for entry in client.audit.entries(**arguments, page_size=SHOWN):
        found.append(as_row(entry))
        if len(found) == SHOWN:
            break
    return found


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    client = signed_in(request).client
    fields, arguments = _search(request)
    entries = await call(lambda: _newest(client, arguments))
    return render(request, "audit.html", entries=entries, search=fields, shown=SHOWN,
                  query=request.query_string, verdict=None)


@routes.post("/audit/verify")
async def verify(request: web.Request) -> web.Response:
    await form(request)
    client = signed_in(request).client
    verdict = await call(client.audit.verify)
    entries = await call(lambda: _newest(client, {}))
    return render(request, "audit.html", entries=entries, search=dict.fromkeys(FILTERS, ""), shown=SHOWN, query="",
                  verdict={"intact": verdict.intact, "entries": verdict.entries, "head": verdict.head,
                           "problem": verdict.problem})


@routes.get("/audit/export.{format:jsonl|csv}")
async def download(request: web.Request) -> web.Response:
    client = signed_in(request).client
    _, arguments = _search(request)
    rows = await call(lambda: [as_row(e) for e in client.audit.entries(**arguments)])
    out_format = request.match_info["format"]
    return web.Response(text=export(rows, out_format),
                        content_type="application/x-ndjson" if out_format == "jsonl" else "text/csv",
                        headers={"Content-Disposition": f'attachment; filename="audit.{out_format}"'})
