"""A party's endpoint on the exchange, with a blocking API for MPC programs.

The node's asyncio loop serves the ExchangeService on the party's one public port
(mutual TLS) and runs one outbound stream per peer and session. The program's
thread calls `Session.send` and `Session.recv`; sends return as soon as the frame is
queued (window permitting) and receives block until the frame arrives or its sender
is known to have failed.

The loop runs on a thread of its own, or, for a node `driven` by its process's one
program thread (a job's worker, a benchmark's party), on that thread while it waits
(see gateway.exchange.waiting). A driven node's queued frames leave at the
program's next wait, and peers' streams are accepted then too: every MPC program
waits on its peers soon after it opens a session.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc.aio
import numpy as np

from gateway.exchange import frames
from gateway.exchange.inbox import Inbox
from gateway.exchange.links import PeerLink
from gateway.exchange.service import ExchangeServicer, Sessions, register
from gateway.exchange.waiting import Waiting
from gateway.transport import rpc
from gateway.transport.tls import TlsIdentity
from mpc.errors import FailedPrecondition, InvalidArgument, PeerFailed
from mpc.transport import TENSOR, Frame

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ExchangeConfig:
    failure_timeout: float = rpc.DEFAULT_FAILURE_TIMEOUT
    """A silent peer (no TCP close, no keepalive answer) is declared dead within this."""
    open_timeout: float = 60.0
    """How long to wait for peers to come up and accept a new session."""
    window_frames: int = 64
    """Unacknowledged frames per stream: bounds a slow receiver's memory."""
    max_frame_bytes: int = frames.DEFAULT_MAX_FRAME_BYTES
    recv_timeout: float | None = None
    """Optional bound on one receive; None waits until the frame or a failure."""


class ExchangeNode:
    def __init__(
        self,
        identity: TlsIdentity,
        allowed_peers: Collection[str],
        listen: str | None = "127.0.0.1:0",
        config: ExchangeConfig = ExchangeConfig(),
        accept_relayed: bool = False,
        driven: bool = False,
    ) -> None:
        """`accept_relayed`: this node runs in a job worker behind its own gateway,
        which relays peers' streams to it (see gateway.exchange.service). `driven`:
        one thread makes every call on this node and runs its loop (see above)."""
        self.identity = identity
        self.party_id = identity.name
        self.config = config
        self.port: int | None = None
        self._listen = listen
        self._allowed = frozenset(allowed_peers)
        self._accept_relayed = accept_relayed
        self._loop = asyncio.new_event_loop()
        self._waiting = Waiting(self._loop if driven else None)
        self._inbox = Inbox(self._waiting)
        self._sessions = Sessions()
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"exchange-{self.party_id}", daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> ExchangeNode:
        if not self._waiting.driven:
            self._thread.start()
        if self._listen is not None:
            self.port = self._run(self._serve(self._listen), timeout=30)
        return self

    async def _serve(self, listen: str) -> int:
        server, port = rpc.aio_server(self.identity, listen, self.config.failure_timeout)
        register(
            ExchangeServicer(
                self.party_id, self._allowed, self._sessions, self._inbox,
                open_timeout=self.config.open_timeout,
                window_frames=self.config.window_frames,
                max_frame_bytes=self.config.max_frame_bytes,
                accept_relayed=self._accept_relayed,
            ),
            server,
        )
        await server.start()
        self._server = server
        return port

    def open_session(self, session_id: str, addresses: Mapping[str, str]) -> Session:
        """Joins `session_id` with every party in `addresses` (party -> host:port of its
        gateway); returns once every peer has accepted this party's stream."""
        if self.party_id not in addresses:
            raise InvalidArgument(f"party {self.party_id!r} is not a member of session {session_id!r}")
        strangers = set(addresses) - self._allowed - {self.party_id}
        if strangers:
            raise InvalidArgument(f"not peers of {self.party_id!r}: {', '.join(sorted(strangers))}")
        self._sessions.add(session_id, addresses)
        peers = {p: a for p, a in addresses.items() if p != self.party_id}
        links = self._run(self._open_links(session_id, peers), timeout=self.config.open_timeout + 5)
        return Session(self, session_id, links)

    async def _open_links(self, session_id: str, peers: Mapping[str, str]) -> dict[str, PeerLink]:
        links = {
            party: PeerLink(self._loop, self._channel(party, address), session_id, party, self._inbox, self._waiting)
            for party, address in peers.items()
        }
        results = await asyncio.gather(
            *(link.open(self.config.open_timeout) for link in links.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(link.close(0) for link in links.values()), return_exceptions=True)
            raise errors[0]
        return links

    def _channel(self, party: str, address: str) -> grpc.aio.Channel:
        key = (party, address)
        if key not in self._channels:
            self._channels[key] = rpc.aio_channel(self.identity, address, party, self.config.failure_timeout)
        return self._channels[key]

    def _close_session(self, session: Session, timeout: float) -> None:
        async def close_links() -> None:
            await asyncio.gather(*(link.close(timeout) for link in session.links.values()), return_exceptions=True)

        try:
            self._run(close_links(), timeout=timeout + 5)
        finally:
            self._sessions.remove(session.id)
            self._inbox.drop_session(session.id)

    def stop(self, grace: float = 1.0) -> None:
        if self._waiting.driven:
            if not self._loop.is_closed():
                try:
                    self._run(self._shutdown(grace), timeout=grace + 10)
                finally:
                    self._loop.run_until_complete(_cancel_all())
                    self._loop.close()
            return
        if not self._thread.is_alive():
            return
        try:
            self._run(self._shutdown(grace), timeout=grace + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _shutdown(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._waiting.driven:
            return self._loop.run_until_complete(asyncio.wait_for(coro, timeout))
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def inbox(self) -> Inbox:
        return self._inbox


async def _cancel_all() -> None:
    """Cancels the loop's other tasks and waits for them, as asyncio.run ends."""
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


class Session:
    """This party's view of one MPC session: ordered frames to and from each peer."""

    def __init__(self, node: ExchangeNode, session_id: str, links: dict[str, PeerLink]) -> None:
        self.id = session_id
        self.links = links
        self._node = node
        self._closed = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self.frames_received = 0
        self.sent_to: dict[str, int] = dict.fromkeys(links, 0)
        self.received_from: dict[str, int] = dict.fromkeys(links, 0)

    @property
    def parties(self) -> list[str]:
        return sorted([self._node.party_id, *self.links])

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, party: str, tag: str, array: np.ndarray, payload_type: int = TENSOR) -> None:
        link = self._link(party)
        messages = frames.encode(0, tag, payload_type, array)  # the link numbers the frame
        link.send(messages, stall_timeout=self._node.config.recv_timeout)
        size = sum(frames.wire_size(m) for m in messages)
        self.bytes_sent += size
        self.sent_to[party] += size
        self.frames_sent += 1

    def recv(self, party: str, tag: str) -> Frame:
        return self.recv_any([party], tag)[1]

    def recv_any(self, parties: list[str], tag: str) -> tuple[str, Frame]:
        """The next frame from whichever of `parties` sends one first, and who sent it."""
        for party in parties:
            self._link(party)
        party, frame = self._node.inbox.take_any(self.id, parties, tag, self._node.config.recv_timeout)
        self.bytes_received += frame.array.nbytes
        self.received_from[party] += frame.array.nbytes
        self.frames_received += 1
        return party, frame

    def _link(self, party: str) -> PeerLink:
        if self._closed:
            raise FailedPrecondition(f"session {self.id!r} is closed")
        link = self.links.get(party)
        if link is None:
            raise InvalidArgument(f"party {party!r} is not a peer in session {self.id!r}")
        return link

    def failed_peers(self) -> dict[str, str]:
        """Peers known to have failed, with why."""
        return {p: reason for p, link in self.links.items() if (reason := link.failure) is not None}

    def close(self, timeout: float = 10.0) -> None:
        """Finishes the session: every peer has read what this party sent."""
        if not self._closed:
            self._closed = True
            self._node._close_session(self, timeout)


__all__ = ["ExchangeConfig", "ExchangeNode", "Session", "PeerFailed"]
