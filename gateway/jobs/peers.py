"""Calls to other gateways' CoordinationService over mutual TLS, with deadlines;
failures come back as typed errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import grpc.aio

from gateway.api.common.v1 import error_pb2
from gateway.api.dealer.v1 import dealer_pb2, dealer_pb2_grpc
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import coordination_pb2_grpc
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.transport import rpc
from gateway.transport.tls import TlsIdentity
from mpc.errors import InvalidArgument, MpcgateError, from_rpc_error

log = logging.getLogger(__name__)

CALL_TIMEOUT = 15.0
RECONNECT_WAIT = 2.0
"""How long a proposal waits for a channel that is between reconnection attempts
(gRPC fails a call there at once; rpc.channel_options bounds the gap to 1 s), so a
peer that is back is not refused as unreachable."""


class PeerGateways:
    def __init__(self, identity: TlsIdentity, addresses: dict[str, str], failure_timeout: float = rpc.DEFAULT_FAILURE_TIMEOUT) -> None:
        self._identity = identity
        self._addresses = addresses
        self._failure_timeout = failure_timeout
        self._stubs: dict[str, Any] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, party: str) -> coordination_pb2_grpc.CoordinationServiceStub:
        if party not in self._stubs:
            address = self._addresses.get(party)
            if address is None:
                raise InvalidArgument(f"unknown party {party!r}")
            channel = rpc.aio_channel(self._identity, address, party, self._failure_timeout)
            self._channels[party] = channel
            self._stubs[party] = coordination_pb2_grpc.CoordinationServiceStub(channel)
        return self._stubs[party]

    async def _reconnected(self, party: str) -> None:
        """Gives a channel waiting to reconnect up to RECONNECT_WAIT to do so."""
        channel = self._channels[party]
        if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            try:
                await asyncio.wait_for(channel.channel_ready(), RECONNECT_WAIT)
            except TimeoutError:
                pass  # the call that follows reports the peer unreachable

    async def join_dealer(self, dealer: str, address: str, session_id: str, ranks: list[pb.PartyStatus]) -> None:
        """Asks the federation's dealer to serve the session's Beaver triples."""
        if dealer not in self._stubs:
            channel = rpc.aio_channel(self._identity, address, dealer, self._failure_timeout)
            self._channels[dealer] = channel
            self._stubs[dealer] = dealer_pb2_grpc.DealerServiceStub(channel)
        request = dealer_pb2.JoinSessionRequest(
            session_id=session_id, parties=[dealer_pb2.SessionMember(party_id=p.party_id, rank=p.rank) for p in ranks])
        try:
            await self._stubs[dealer].JoinSession(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(f"dealer {dealer} ({address})", err) from None

    async def propose(self, party: str, job: pb.Job) -> pb.PartyStatus:
        stub = self._stub(party)
        await self._reconnected(party)
        try:
            response = await stub.ProposeJob(cpb.ProposeJobRequest(job=job), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None
        return response.status

    async def start(self, party: str, job_id: str, session_id: str, ranks: list[pb.PartyStatus]) -> None:
        request = cpb.StartJobRequest(job_id=job_id, session_id=session_id, parties=ranks)
        try:
            await self._stub(party).StartJob(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None

    async def stop(self, party: str, job: pb.Job, state: states.State, error: error_pb2.ErrorInfo,
                   head: tuple[int, str] | None = None, records: list[cpb.SignedRecord] = ()) -> None:  # type: ignore[assignment]
        request = cpb.StopJobRequest(job_id=job.job_id, state=state, error=error, audit_head=_head(head), records=records,
                                     parties=job.parties, progress=job.progress)
        try:
            await self._stub(party).StopJob(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None

    async def report(self, party: str, job_id: str, status: pb.PartyStatus, progress: pb.Progress,
                     head: tuple[int, str] | None = None, record: cpb.SignedRecord | None = None) -> None:
        request = cpb.ReportJobRequest(job_id=job_id, status=status, progress=progress, audit_head=_head(head),
                                       record=record)
        try:
            await self._stub(party).ReportJob(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None

    async def sync(self, party: str, job_id: str) -> tuple[states.State, error_pb2.ErrorInfo]:
        try:
            response = await self._stub(party).SyncJob(cpb.SyncJobRequest(job_id=job_id), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None
        return response.state, response.error

    async def hello(self, party: str) -> cpb.HelloResponse:
        try:
            return await self._stub(party).Hello(cpb.HelloRequest(), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            raise _named(self._named_party(party), err) from None

    async def greet(self) -> None:
        """Says in the log, at start-up, which peers answer and which do not
        (naming each peer and the address dialled): a deployment's first question."""
        for party in sorted(self._addresses):
            try:
                answer = await self.hello(party)
                log.info("peer %s at %s answers as %s", party, self._addresses[party], answer.party_id)
            except MpcgateError as err:
                log.warning("peer %s is not reachable yet: %s", party, err.message)

    def _named_party(self, party: str) -> str:
        return f"party {party} ({self._addresses.get(party, 'no address configured')})"

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _head(head: tuple[int, str] | None) -> cpb.AuditHead | None:
    return cpb.AuditHead(sequence=head[0], hash=head[1]) if head else None


def head_of(message: cpb.AuditHead) -> tuple[int, str] | None:
    return (message.sequence, message.hash) if message.hash else None


def _named(who: str, err: grpc.aio.AioRpcError) -> MpcgateError:
    typed = from_rpc_error(err)
    typed.message = f"{who}: {typed.message}"
    typed.args = (typed.message,)
    return typed
