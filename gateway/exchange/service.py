"""The ExchangeService servicer: accepts peers' streams of frames into the inbox.

The sending party is the one its client certificate names (never a field); it must
be a peer of this gateway and a member of the session it opens. A stream that
breaks without the sender closing it marks that party failed for the session, which
is how a killed peer surfaces as an error naming it, not as a hang.

A gateway runs jobs in worker processes: for a session hosted by a worker, the
gateway relays the peer's stream to the worker's loopback port, naming the
authenticated source in call metadata. The worker believes that metadata only from
a client holding its own party's certificate, i.e. from its own gateway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Collection

import grpc
import grpc.aio

from gateway.api.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from gateway.exchange import frames as messages
from gateway.exchange.frames import DEFAULT_MAX_FRAME_BYTES, Reassembler
from gateway.exchange.inbox import Acknowledger, Inbox
from gateway.metrics import EXCHANGE_BYTES
from gateway.transport import rpc
from gateway.transport.rpc import map_errors
from gateway.transport.tls import TlsIdentity, authenticated_peer
from mpc.errors import InvalidArgument, MpcgateError, NotFound, PermissionDenied, Unavailable

log = logging.getLogger(__name__)

DEFAULT_WINDOW_FRAMES = 64
"""Frames a sender may have unacknowledged on one stream (advertised on accept)."""

SOURCE_METADATA = "mpcgate-source-party"
"""Call metadata naming the original sender of a stream relayed by a gateway."""


EXCHANGE_METHOD = "/mpcgate.exchange.v1.ExchangeService/Exchange"


def register(servicer: ExchangeServicer, server: grpc.aio.Server) -> None:
    """Adds the ExchangeService to `server`, its requests read by
    gateway.exchange.frames (chunks as views of their bytes)."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.Exchange, request_deserializer=messages.parse,
        response_serializer=exchange_pb2.ExchangeResponse.SerializeToString)
    service, method = EXCHANGE_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))


def exchange_call(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    """The client side of the ExchangeService, its requests written by
    gateway.exchange.frames (chunk messages already serialized)."""
    return channel.stream_stream(EXCHANGE_METHOD, request_serializer=messages.serialize,
                                 response_deserializer=exchange_pb2.ExchangeResponse.FromString)


class Sessions:
    """The MPC sessions this party takes part in: their members, and for sessions
    run by a local worker, the worker's loopback address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, frozenset[str]] = {}
        self._workers: dict[str, str] = {}
        self._starting: set[str] = set()

    def expect(self, session: str, parties: Collection[str]) -> None:
        """A session whose worker is starting: peers' streams wait for it (as long as
        the job runs here) instead of failing "no session" when the worker is slow to
        start (a cold pool after a restart, a loaded machine)."""
        with self._lock:
            self._members[session] = frozenset(parties)
            self._starting.add(session)

    def add(self, session: str, parties: Collection[str], worker: str | None = None) -> None:
        with self._lock:
            self._members[session] = frozenset(parties)
            self._starting.discard(session)
            if worker is not None:
                self._workers[session] = worker

    def remove(self, session: str) -> None:
        with self._lock:
            self._members.pop(session, None)
            self._workers.pop(session, None)
            self._starting.discard(session)

    def starting(self, session: str) -> bool:
        with self._lock:
            return session in self._starting

    def members(self, session: str) -> frozenset[str] | None:
        with self._lock:
            return self._members.get(session)

    def worker(self, session: str) -> str | None:
        with self._lock:
            return self._workers.get(session)


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(
        self,
        party_id: str,
        peers: Collection[str],
        sessions: Sessions,
        inbox: Inbox,
        open_timeout: float = 30.0,
        window_frames: int = DEFAULT_WINDOW_FRAMES,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        relay_identity: TlsIdentity | None = None,
        accept_relayed: bool = False,
    ) -> None:
        """`relay_identity`: this gateway's identity, used to relay streams of
        worker-hosted sessions. `accept_relayed`: this is a worker, which takes the
        source from metadata when its own gateway relays."""
        self._party = party_id
        self._peers = frozenset(peers)
        self._relay_identity = relay_identity
        self._accept_relayed = accept_relayed
        self._sessions = sessions
        self._inbox = inbox
        self._open_timeout = open_timeout
        self._window = window_frames
        self._max_frame_bytes = max_frame_bytes

    @map_errors
    async def Exchange(
        self, request_iterator: AsyncIterator[exchange_pb2.ExchangeRequest | memoryview], context: object
    ) -> AsyncIterator[exchange_pb2.ExchangeResponse]:
        source = self._source(context)
        opening, session = await self._open(source, request_iterator)
        while self._sessions.starting(session):
            await asyncio.sleep(0.05)
        if self._sessions.members(session) is None:
            raise Unavailable(f"session {session!r} ended at party {self._party!r} before its worker started")
        worker = self._sessions.worker(session)
        if worker is not None:
            async for response in self._relay(worker, source, opening, request_iterator):
                yield response
            return
        loop = asyncio.get_running_loop()
        acks: asyncio.Queue[int | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(session, source, request_iterator, loop, acks))
        log.info("exchange stream opened session=%s source=%s", session, source)
        yield exchange_pb2.ExchangeResponse(
            accepted=exchange_pb2.StreamAccepted(session_id=session, window=self._window)
        )
        try:
            while (sequence := await acks.get()) is not None:
                yield exchange_pb2.ExchangeResponse(ack=exchange_pb2.FrameAck(sequence=sequence))
            await reader  # re-raises a protocol error found by the reader
        finally:
            clean = reader.done() and not reader.cancelled() and reader.exception() is None
            if not reader.done():
                reader.cancel()
            if not clean:  # a clean close was recorded by the reader
                self._inbox.fail(session, source, "its connection to this party broke")

    def _source(self, context: object) -> str:
        if not self._accept_relayed:
            return authenticated_peer(context, self._peers)
        caller = authenticated_peer(context, self._peers | {self._party})
        if caller != self._party:
            return caller
        relayed = dict(context.invocation_metadata()).get(SOURCE_METADATA)  # type: ignore[attr-defined]
        if relayed not in self._peers:
            raise PermissionDenied(f"relayed source {relayed!r} is not a peer")
        return str(relayed)

    async def _relay(
        self,
        worker: str,
        source: str,
        opening: exchange_pb2.ExchangeRequest,
        requests: AsyncIterator[exchange_pb2.ExchangeRequest | memoryview],
    ) -> AsyncIterator[exchange_pb2.ExchangeResponse]:
        """Pipes a peer's stream to the local worker hosting its session, and back."""
        if self._relay_identity is None:
            raise Unavailable("this gateway does not relay to workers")
        relayed = EXCHANGE_BYTES.labels("in", source)

        async def forward() -> AsyncIterator[messages.Outgoing]:
            yield opening
            async for message in requests:
                relayed.inc(messages.wire_size(message))
                yield messages.outgoing(message)

        # one channel per relayed stream: workers (and their ports) come and go with jobs
        async with rpc.aio_channel(self._relay_identity, worker, self._party) as channel:
            call = exchange_call(channel)(forward(), metadata=((SOURCE_METADATA, source),), wait_for_ready=True)
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as err:
                raise Unavailable(f"the worker for this session failed: {err.details()}") from None

    async def _open(
        self, source: str, requests: AsyncIterator[exchange_pb2.ExchangeRequest | memoryview]
    ) -> tuple[exchange_pb2.ExchangeRequest, str]:
        try:
            first = await asyncio.wait_for(anext(requests), self._open_timeout)
        except (TimeoutError, StopAsyncIteration):
            raise InvalidArgument("a stream must start with an open message") from None
        if isinstance(first, memoryview) or first.WhichOneof("payload") != "open":
            raise InvalidArgument("a stream must start with an open message")
        session, destination = first.open.session_id, first.open.destination_party
        if destination != self._party:
            raise InvalidArgument(f"this is party {self._party!r}, not {destination!r}")
        deadline = time.monotonic() + self._open_timeout
        while (members := self._sessions.members(session)) is None:
            # the peer may be a moment ahead of this party in starting the session
            if time.monotonic() > deadline:
                raise NotFound(f"no session {session!r} at party {self._party!r}")
            await asyncio.sleep(0.02)
        if source not in members:
            raise PermissionDenied(f"party {source!r} is not a member of session {session!r}")
        return first, session

    async def _read(
        self,
        session: str,
        source: str,
        requests: AsyncIterator[exchange_pb2.ExchangeRequest | memoryview],
        loop: asyncio.AbstractEventLoop,
        acks: asyncio.Queue[int | None],
    ) -> None:
        frames = Reassembler(self._max_frame_bytes)

        def acknowledge(sequence: int) -> None:
            loop.call_soon_threadsafe(acks.put_nowait, sequence)

        acknowledger = Acknowledger(self._window, acknowledge)
        try:
            async for message in requests:
                if isinstance(message, memoryview):
                    frame = frames.chunk(message)
                elif (kind := message.WhichOneof("payload")) == "chunk":
                    frame = frames.chunk(message.chunk)
                elif kind == "header":
                    frame = frames.header(message.header)
                else:
                    raise InvalidArgument(f"unexpected {kind!r} message inside a stream")
                if frame is not None:
                    self._inbox.deliver(session, source, frame, acknowledger)
            self._inbox.close(session, source, "it closed its stream")
        except MpcgateError as err:
            self._inbox.fail(session, source, f"it sent a malformed stream: {err.message}")
            raise
        finally:
            acks.put_nowait(None)

