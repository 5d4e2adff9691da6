"""Frames received for this party, kept per (session, source party, tag) in
arrival order until the MPC program takes them.

The network side (the asyncio loop) delivers; the program's thread takes, and
blocks until a frame arrives or its source is known to have failed. Taking a frame
acknowledges it to the sender, which is what bounds the sender's window and so the
memory a slow receiver can be made to hold.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import DeadlineExceeded, PeerFailed
from gateway.exchange.frames import Frame

Key = tuple[str, str, str]  # session id, source party, tag

ROOT_CAUSE_GRACE_S = 1.0
"""A peer that closed while frames are still expected from it most likely stopped
because something else failed; waiting this long lets that failure be named."""


@dataclass
class _Entry:
    frame: Frame
    on_taken: Callable[[], None]


class Inbox:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[Key, deque[_Entry]] = defaultdict(deque)
        self._failed: dict[tuple[str, str], str] = {}  # (session, party) -> why: no more frames from it
        self._broken: dict[str, tuple[str, str]] = {}  # session -> (party, why): it crashed or vanished

    def deliver(self, session: str, source: str, frame: Frame, on_taken: Callable[[], None]) -> None:
        with self._cond:
            self._queues[(session, source, frame.tag)].append(_Entry(frame, on_taken))
            self._cond.notify_all()

    def take(self, session: str, source: str, tag: str, timeout: float | None = None) -> Frame:
        """The next frame from `source`, waiting up to `timeout` seconds (None: until
        it arrives or the source fails)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        key = (session, source, tag)
        with self._cond:
            while True:
                queue = self._queues.get(key)
                if queue:
                    entry = queue.popleft()
                    break
                broken = self._broken.get(session)
                if broken is not None:  # an MPC session needs every member: one lost, all lost
                    raise PeerFailed(*broken)
                reason = self._failed.get((session, source))
                if reason is not None:
                    self._cond.wait_for(lambda: session in self._broken, ROOT_CAUSE_GRACE_S)
                    raise PeerFailed(*self._broken.get(session, (source, reason)))
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"no frame from peer {source!r} within {timeout:.1f} s")
                self._cond.wait(remaining)
        entry.on_taken()
        return entry.frame

    def close(self, session: str, source: str, reason: str) -> None:
        """Says no more frames will come from `source` in `session` (it finished):
        takes from it raise PeerFailed once the frames it did deliver are used up."""
        with self._cond:
            self._failed.setdefault((session, source), reason)
            self._cond.notify_all()

    def fail(self, session: str, source: str, reason: str) -> None:
        """`source` crashed or vanished: besides closing it, every take in the
        session that would wait raises PeerFailed naming it."""
        with self._cond:
            self._failed.setdefault((session, source), reason)
            self._broken.setdefault(session, (source, reason))
            self._cond.notify_all()

    def drop_session(self, session: str) -> None:
        """Forgets everything about a finished session."""
        with self._cond:
            for key in [k for k in self._queues if k[0] == session]:
                del self._queues[key]
            for key in [k for k in self._failed if k[0] == session]:
                del self._failed[key]
            self._broken.pop(session, None)
            self._cond.notify_all()
