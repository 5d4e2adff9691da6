"""Approvals and jobs: what waits for this party's approval (described as
`mpcgate jobs get` describes it), the decision with a reason, the job list with
its filters, one job with live progress (WatchJob, as server-sent events), its
results as tables and charts, and their downloads."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from aiohttp import web

from gateway.api.gateway.v1 import jobs_pb2
from gateway.client import describe
from gateway.console import charts
from gateway.console.pages import PARTY, call, form, render, signed_in
from gateway.contract import states
from mpc.errors import InvalidArgument, MpcgateError

routes = web.RouteTableDef()
STATES = [states.name(s) for s in jobs_pb2.JobState.values() if s != jobs_pb2.JOB_STATE_UNSPECIFIED]


def summary(record: Any) -> dict[str, Any]:
    """A job as the pages show it: the shared description plus its times."""
    return {"id": record.job_id, "state": states.name(record.state), "kind": record.spec.kind,
            "purpose": record.spec.purpose, "coordinator": record.coordinator, "submitted_by": record.submitted_by,
            "created": record.created_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds"),
            "reads": describe.reads(record), "reveals": describe.reveals(record), "charges": describe.charges(record),
            "parameters": describe.parameters(record),
            "error": record.error.message, "percent": record.progress.percent, "phase": record.progress.phase,
            "done": record.state in states.TERMINAL}


@routes.get("/approvals")
async def approvals(request: web.Request) -> web.Response:
    client = signed_in(request).client
    party = request.app[PARTY]
    # GetJob for each: it carries the reveals and charges (generated for the reviewer), which ListJobs leaves out
    waiting = await call(lambda: [client.job(job.id) for job in
                                  client.list_jobs([jobs_pb2.JOB_STATE_AWAITING_APPROVAL], party=party)])
    return render(request, "approvals.html", jobs=[summary(job.record) for job in waiting],
                  done=request.query.get("done", ""))


@routes.post("/jobs/{job_id}/decision")
async def decide(request: web.Request) -> web.Response:
    posted = await form(request)
    decision = posted.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidArgument("the decision must be approve or reject")
    reason = posted.get("reason", "").strip()
    if decision == "reject" and not reason:
        raise InvalidArgument("say why the job is rejected: the submitter sees the reason")
    client = signed_in(request).client
    job_id = request.match_info["job_id"]
    job = await call(lambda: client.approve(job_id, decision == "approve", reason))
    raise web.HTTPSeeOther(f"/approvals?done={job.id}:{job.state}")


@routes.get("/jobs")
async def job_list(request: web.Request) -> web.Response:
    client = signed_in(request).client
    query = request.query
    wanted = [jobs_pb2.JobState.Value(f"JOB_STATE_{s}") for s in query.getall("state", []) if s in STATES]
    since = None
    if query.get("since"):
        try:
            since = datetime.fromisoformat(query["since"]).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidArgument(f"since {query['since'][:40]!r} is not a date (YYYY-MM-DD)") from None
    found = await call(lambda: client.list_jobs(wanted, page_size=200, kind=query.get("kind", ""), since=since,
                                                party=query.get("participant", "")))
    return render(request, "jobs.html", jobs=[summary(job.record) for job in found[:500]], states=STATES,
                  query={"state": query.getall("state", []), "kind": query.get("kind", ""),
                         "since": query.get("since", ""), "participant": query.get("participant", "")})


@routes.get("/jobs/{job_id}")
async def job_page(request: web.Request) -> web.Response:
    client = signed_in(request).client
    job = await call(lambda: client.job(request.match_info["job_id"]))
    result, missing = None, ""
    if job.record.state == jobs_pb2.JOB_STATE_SUCCEEDED:
        try:
            result = await call(job.result)
        except MpcgateError as err:  # not a receiver here, or no results:read scope: the page says so
            missing = err.message
    records, unreadable = [], ""
    if job.record.state in states.TERMINAL:
        try:
            records = [_record(r) for r in await call(lambda: client.audit.records(job.id))]
        except MpcgateError as err:  # no audit:read scope: the page says so
            unreadable = err.message
    return render(request, "job.html", job=summary(job.record), parties=[
        (p.party_id, states.name(p.state), p.error.message) for p in job.record.parties],
        tables=charts.tables(result) if result is not None else [], charts=charts.of(result) if result else [],
        missing=missing, records=records, unreadable=unreadable)


def _record(signed: Any) -> dict[str, Any]:
    """A co-signed record for the page: its verdict and the fields a reviewer compares."""
    try:
        fields = json.loads(signed.record)
    except ValueError:
        fields = {}
    head = fields.get("audit_head") or {}
    return {"party": signed.party_id, "verified": signed.verified, "problem": signed.problem,
            "state": fields.get("state", ""), "spec": str(fields.get("spec_sha256", ""))[:16],
            "result": str(fields.get("result_sha256", ""))[:16] or "-",
            "head": f"#{head.get('sequence', '?')} {str(head.get('hash', ''))[:16]}",
            "json": json.dumps(fields, indent=2, sort_keys=True)}


@routes.get("/jobs/{job_id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The job's events as server-sent events (`data: {state, percent, phase}`),
    from WatchJob, until it ends or the page goes away."""
    client = signed_in(request).client
    job = await call(lambda: client.job(request.match_info["job_id"]))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    loop, queue = asyncio.get_running_loop(), asyncio.Queue[dict[str, Any] | None]()

    def pump() -> None:
        try:
            for event in job.watch(timeout=3600):
                loop.call_soon_threadsafe(queue.put_nowait, {
                    "state": states.name(event.state), "percent": event.progress.percent,
                    "phase": event.progress.phase or event.message})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    watching = asyncio.create_task(asyncio.to_thread(pump))
    try:
        while (event := await queue.get()) is not None:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"event: end\ndata: {}\n\n")
    except ConnectionResetError:
        pass  # the page went away; the watch ends with the job or its timeout
    finally:
        if watching.done():
            watching.result()
    return response


@routes.get("/jobs/{job_id}/result.{format:csv|json}")
async def download(request: web.Request) -> web.Response:
    client = signed_in(request).client
    job_id = request.match_info["job_id"]
    result = await call(lambda: client.job(job_id).result())
    table = result.table()
    if request.match_info["format"] == "csv":
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        body, kind = sink.getvalue().to_pybytes(), "text/csv"
    else:
        body, kind = (json.dumps(table.to_pylist(), indent=2, allow_nan=False) + "\n").encode(), "application/json"
    return web.Response(body=body, content_type=kind,
                        headers={"Content-Disposition": f'attachment; filename="{job_id}.{request.match_info["format"]}"'})
