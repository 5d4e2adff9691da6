"""This party's outbound stream to one peer in one session.

`send` is called from the MPC program's thread and never waits for the network,
only for window space: at most `window` frames may be unacknowledged (a frame is
acknowledged when the peer's program takes it), so a slow receiver bounds what the
sender buffers. The stream itself runs on the node's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from gateway.api.exchange.v1 import exchange_pb2
from gateway.exchange.frames import Outgoing
from gateway.exchange.inbox import Inbox
from gateway.exchange.service import exchange_call
from gateway.exchange.waiting import Waiting
from mpc.errors import InvalidArgument, PeerFailed

log = logging.getLogger(__name__)

_END = None


class PeerLink:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: grpc.aio.Channel,
        session: str,
        peer: str,
        inbox: Inbox,
        waiting: Waiting,
    ) -> None:
        self._loop = loop
        self._waiting = waiting
        self._channel = channel
        self._session = session
        self.peer = peer
        self._inbox = inbox
        self._outbox: asyncio.Queue[list[Outgoing] | None] = asyncio.Queue()
        self._cond = threading.Condition()
        self._unacked: deque[int] = deque()
        self._window = 1
        self._sequence = 0
        self._failure: str | None = None
        self._closing = False
        self._call: grpc.aio.StreamStreamCall | None = None
        self._acks: asyncio.Task[None] | None = None

    # -- on the loop --------------------------------------------------------

    async def open(self, timeout: float) -> None:
        """Opens the stream and waits until the peer accepted the session."""
        self._call = exchange_call(self._channel)(self._requests(), wait_for_ready=True)
        try:
            first = await asyncio.wait_for(self._call.read(), timeout)
        except TimeoutError:
            self._call.cancel()
            raise PeerFailed(self.peer, f"did not accept session {self._session!r} within {timeout:.0f} s") from None
        except grpc.aio.AioRpcError as err:
            raise PeerFailed(self.peer, f"refused the stream: {err.code().name}: {err.details()}") from None
        if first is grpc.aio.EOF or first.WhichOneof("payload") != "accepted":
            raise PeerFailed(self.peer, "closed the stream instead of accepting it")
        with self._cond:
            self._window = max(1, first.accepted.window)
        self._acks = asyncio.create_task(self._read_acks())

    async def _requests(self) -> AsyncIterator[Any]:
        yield exchange_pb2.ExchangeRequest(
            open=exchange_pb2.OpenStream(session_id=self._session, destination_party=self.peer)
        )
        while (messages := await self._outbox.get()) is not _END:
            for message in messages:
                yield message

    async def _read_acks(self) -> None:
        assert self._call is not None
        try:
            # read(), not `async for`: the call was already read from in open()
            while (response := await self._call.read()) is not grpc.aio.EOF:
                if response.WhichOneof("payload") == "ack":
                    self._acknowledge(response.ack.sequence)
            reason = "closed its end of the stream"
        except grpc.aio.AioRpcError as err:
            reason = f"stream failed: {err.code().name}: {err.details()}"
        except asyncio.CancelledError:
            reason = "the stream was cancelled"
        self._failed(reason)

    async def close(self, timeout: float) -> None:
        """Half-closes the stream and waits for the peer to have read every frame."""
        if self._call is None:
            return
        self._closing = True
        self._outbox.put_nowait(_END)
        if self._acks is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._acks), timeout)
            except TimeoutError:
                log.warning("peer %s did not finish session %s within %.0f s", self.peer, self._session, timeout)
        self._call.cancel()

    # -- on the program's thread --------------------------------------------

    def send(self, messages: list[Outgoing], stall_timeout: float | None) -> None:
        """Queues one frame's messages (the first is its header) once the window allows."""
        deadline = None if stall_timeout is None else time.monotonic() + stall_timeout
        with self._cond:
            while self._failure is None and len(self._unacked) >= self._window:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PeerFailed(self.peer, f"took no frame for {stall_timeout:.0f} s (window full)")
                self._waiting.wait(self._cond, remaining)
            if self._failure is not None:
                raise PeerFailed(self.peer, self._failure)
            self._sequence += 1
            header = messages[0]
            if not isinstance(header, exchange_pb2.ExchangeRequest):
                raise InvalidArgument("a frame starts with its header message")
            header.header.sequence = self._sequence
            self._unacked.append(self._sequence)
        if self._waiting.driven:  # out when the program next waits
            self._outbox.put_nowait(messages)
        else:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, messages)

    # -- either side ----------------------------------------------------------

    def _acknowledge(self, sequence: int) -> None:
        with self._cond:
            while self._unacked and self._unacked[0] <= sequence:
                self._unacked.popleft()
            self._cond.notify_all()
        self._waiting.notify()

    def _failed(self, reason: str) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = reason
            self._cond.notify_all()
        self._waiting.notify()
        # what we cannot send to, we will not hear from either
        if self._closing:
            self._inbox.close(self._session, self.peer, reason)
        else:
            self._inbox.fail(self._session, self.peer, reason)

    @property
    def failure(self) -> str | None:
        with self._cond:
            return self._failure
