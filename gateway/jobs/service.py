"""The gRPC faces of the scheduler: JobService for operators (JWT-authenticated by
the server's interceptor) and CoordinationService for peer gateways (identified by
their mutual-TLS certificate)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC
from typing import Any

from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import coordination_pb2_grpc, jobs_pb2_grpc
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.db import keyset, next_token
from gateway.jobs.peers import head_of
from gateway.jobs.scheduler import Scheduler
from gateway.jobs.store import JobStore, now
from gateway.transport.rpc import map_errors
from gateway.transport.tls import authenticated_peer

WATCH_POLL_S = 0.2
PAGE_DEFAULT = 100
PAGE_MAX = 1000

Caller = Callable[[Any], str]
"""Who the operator is (e.g. 'issuer/subject'), from the call's verified token."""


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, scheduler: Scheduler, store: JobStore, caller: Caller) -> None:
        self._scheduler = scheduler
        self._store = store
        self._caller = caller

    @map_errors
    async def SubmitJob(self, request: pb.SubmitJobRequest, context: Any) -> pb.SubmitJobResponse:
        return pb.SubmitJobResponse(job=await self._scheduler.submit(request.spec, self._caller(context)))

    @map_errors
    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=self._scheduler.described(self._store.get(request.job_id)))

    @map_errors
    async def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        size, below = keyset(request.page, PAGE_DEFAULT, PAGE_MAX)
        since = request.since.ToDatetime(tzinfo=UTC).timestamp() if request.HasField("since") else None
        found = self._store.page(list(request.states), limit=size + 1, kind=request.kind, since=since,
                                 party=request.party_id, below=below)
        response = pb.ListJobsResponse(jobs=[job for _, job in found[:size]])
        response.page.next_page_token = next_token([key for key, _ in found], size)
        return response

    @map_errors
    async def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> AsyncIterator[pb.WatchJobResponse]:
        self._store.get(request.job_id)  # NOT_FOUND for an unknown job
        after = request.after_sequence
        while True:
            ended = self._store.get(request.job_id).state in states.TERMINAL  # read before the events it precedes
            for event in self._store.events(request.job_id, after):
                after = event.sequence
                yield pb.WatchJobResponse(event=event)
                if event.state in states.TERMINAL:
                    return
            if ended:  # resumed at or past the job's last event: nothing more will come
                return
            await asyncio.sleep(WATCH_POLL_S)

    @map_errors
    async def CancelJob(self, request: pb.CancelJobRequest, context: Any) -> pb.CancelJobResponse:
        return pb.CancelJobResponse(job=await self._scheduler.cancel(request.job_id, request.reason, self._caller(context)))

    @map_errors
    async def ApproveJob(self, request: pb.ApproveJobRequest, context: Any) -> pb.ApproveJobResponse:
        job = await self._scheduler.approve(request.job_id, request.approve, request.reason, self._caller(context))
        return pb.ApproveJobResponse(job=job)

    @map_errors
    async def GetResult(self, request: pb.GetResultRequest, context: Any) -> pb.GetResultResponse:
        return pb.GetResultResponse(result=self._scheduler.result(request.job_id))


class CoordinationServicer(coordination_pb2_grpc.CoordinationServiceServicer):
    def __init__(self, scheduler: Scheduler, peers: Collection[str]) -> None:
        self._scheduler = scheduler
        self._peers = frozenset(peers)

    @map_errors
    async def ProposeJob(self, request: cpb.ProposeJobRequest, context: Any) -> cpb.ProposeJobResponse:
        caller = authenticated_peer(context, self._peers)
        return cpb.ProposeJobResponse(status=await self._scheduler.on_propose(request.job, caller))

    @map_errors
    async def StartJob(self, request: cpb.StartJobRequest, context: Any) -> cpb.StartJobResponse:
        caller = authenticated_peer(context, self._peers)
        await self._scheduler.on_start(request.job_id, request.session_id, list(request.parties), caller)
        return cpb.StartJobResponse()

    @map_errors
    async def StopJob(self, request: cpb.StopJobRequest, context: Any) -> cpb.StopJobResponse:
        caller = authenticated_peer(context, self._peers)
        await self._scheduler.on_stop(request.job_id, request.state, request.error, caller, head_of(request.audit_head),
                                      list(request.records), list(request.parties), request.progress)
        return cpb.StopJobResponse()

    @map_errors
    async def ReportJob(self, request: cpb.ReportJobRequest, context: Any) -> cpb.ReportJobResponse:
        caller = authenticated_peer(context, self._peers)
        await self._scheduler.on_report(request.job_id, request.status, request.progress, caller,
                                        head_of(request.audit_head), request.record if request.HasField("record") else None)
        return cpb.ReportJobResponse()

    @map_errors
    async def SyncJob(self, request: cpb.SyncJobRequest, context: Any) -> cpb.SyncJobResponse:
        caller = authenticated_peer(context, self._peers)
        state, error = await self._scheduler.on_sync(request.job_id, caller)
        return cpb.SyncJobResponse(state=state, error=error)

    @map_errors
    async def Hello(self, request: cpb.HelloRequest, context: Any) -> cpb.HelloResponse:
        authenticated_peer(context, self._peers)
        return cpb.HelloResponse(party_id=self._scheduler.me, time=now())
