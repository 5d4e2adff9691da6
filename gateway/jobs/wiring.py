"""Puts the job machinery on a gateway's gRPC server: the scheduler with its store,
peers and worker runner, the JobService, the CoordinationService, and the
ExchangeService that relays job sessions to workers. The server calls `install`
once at start-up, and at shutdown `JobSystem.stop_work` before it stops serving and
`JobSystem.close` after."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc.aio

from gateway.api.gateway.v1 import coordination_pb2_grpc, jobs_pb2_grpc
from gateway.exchange.inbox import Inbox
from gateway.exchange.service import ExchangeServicer, Sessions, register
from gateway.jobs.contracts import Audit, AuditHead, Datasets, SchedulerConfig
from gateway.jobs.cost import OperatorLedger
from gateway.jobs.peers import PeerGateways
from gateway.jobs.records import JobRecords
from gateway.jobs.scheduler import Scheduler
from gateway.jobs.service import Caller, CoordinationServicer, JobServicer
from gateway.jobs.store import JobStore
from gateway.transport.tls import TlsIdentity
from gateway.workers.runner import WorkerRunner


@dataclass
class JobSystem:
    scheduler: Scheduler
    store: JobStore
    peers: PeerGateways
    records: JobRecords
    greeting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reconciles what a previous run left (running jobs failed, queued resumed),
        and logs which peers answer."""
        await self.scheduler.recover()
        self.greeting = asyncio.create_task(self.peers.greet())

    async def drain(self) -> None:
        """Lets running jobs finish (within the configured grace), refusing new ones."""
        await self.scheduler.drain()

    async def stop_work(self) -> None:
        """Kills the workers and cancels the scheduler's tasks; the store stays open
        for the calls the server still finishes."""
        if self.greeting is not None:
            self.greeting.cancel()
        await self.scheduler.close()

    async def close(self) -> None:
        """After the server stopped: the peers' channels and the database."""
        await self.scheduler.close()  # anything the last calls started
        await self.peers.close()
        self.store.close()


def install(
    server: grpc.aio.Server,
    config: SchedulerConfig,
    identity: TlsIdentity,
    database: Path,
    datasets: Datasets,
    audit: Audit,
    caller: Caller,
    audit_head: AuditHead,
    models: Any = None,
) -> JobSystem:
    peers_allowed = set(config.peer_addresses)
    sessions = Sessions()
    exchange_members = peers_allowed | ({config.dealer[0]} if config.dealer else set())
    store = JobStore(database)
    peers = PeerGateways(identity, config.peer_addresses, config.failure_timeout)
    records = JobRecords(database, config.party_id, identity.key_pem, identity.cert_pem)
    scheduler = Scheduler(config, store, datasets, peers, WorkerRunner(sessions, config.warm_workers), records, audit,
                          audit_head, models, OperatorLedger(database))
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(scheduler, store, caller), server)
    coordination_pb2_grpc.add_CoordinationServiceServicer_to_server(CoordinationServicer(scheduler, peers_allowed), server)
    register(ExchangeServicer(config.party_id, exchange_members, sessions, Inbox(), relay_identity=identity), server)
    return JobSystem(scheduler, store, peers, records)


__all__ = ["install", "JobSystem"]
