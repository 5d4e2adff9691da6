"""Frames received for this party, kept per (session, source party, tag) in
arrival order until the MPC program takes them.

The network side (the asyncio loop) delivers; the program's thread takes, and
blocks until a frame arrives or its source is known to have failed. Taken frames
are acknowledged to the sender, which is what bounds the sender's window and so
the memory a slow receiver can be made to hold. Acknowledgements go out in
batches (a quarter window), and before the program waits on a sender that may be
near its window: a round trip then costs two messages, not four.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from gateway.exchange.waiting import Waiting
from mpc.errors import DeadlineExceeded, PeerFailed
from mpc.transport import Frame

Key = tuple[str, str, str]  # session id, source party, tag

ROOT_CAUSE_GRACE_S = 1.0
"""A peer that closed while frames are still expected from it most likely stopped
because something else failed; waiting this long lets that failure be named."""


class Acknowledger:
    """One incoming stream's acknowledgements (cumulative: "every frame up to this
    sequence"). `send(sequence)` must not block; it is called on the program's
    thread."""

    def __init__(self, window: int, send: Callable[[int], None]) -> None:
        self._every = max(1, window // 4)
        self._near_full = max(1, window // 2)
        self._send = send
        self._lock = threading.Lock()
        self._delivered = self._taken = self._acked = 0
        self._pending = 0

    def delivered(self, sequence: int) -> None:
        with self._lock:
            self._delivered = max(self._delivered, sequence)

    def taken(self, sequence: int) -> None:
        with self._lock:
            self._taken = max(self._taken, sequence)
            self._pending += 1
            if self._pending >= self._every:
                self._flush()

    def before_wait(self) -> None:
        """The program is about to wait for this sender: release it if it may be
        blocked on its window."""
        with self._lock:
            if self._pending and self._delivered - self._acked >= self._near_full:
                self._flush()

    def _flush(self) -> None:
        self._acked, self._pending = self._taken, 0
        self._send(self._taken)


class Inbox:
    def __init__(self, waiting: Waiting | None = None) -> None:
        self._waiting = waiting or Waiting(None)
        self._cond = threading.Condition()
        self._queues: dict[Key, deque[Frame]] = defaultdict(deque)
        self._failed: dict[tuple[str, str], str] = {}  # (session, party) -> why: no more frames from it
        self._broken: dict[str, tuple[str, str]] = {}  # session -> (party, why): it crashed or vanished
        self._acknowledgers: dict[tuple[str, str], Acknowledger] = {}  # one per incoming stream

    def deliver(self, session: str, source: str, frame: Frame, acknowledger: Acknowledger) -> None:
        acknowledger.delivered(frame.sequence)
        with self._cond:
            self._queues[(session, source, frame.tag)].append(frame)
            self._acknowledgers[(session, source)] = acknowledger
            self._notify()

    def take(self, session: str, source: str, tag: str, timeout: float | None = None) -> Frame:
        """The next frame from `source`, waiting up to `timeout` seconds (None: until
        it arrives or the source fails)."""
        return self.take_any(session, [source], tag, timeout)[1]

    def take_any(self, session: str, sources: list[str], tag: str,
                 timeout: float | None = None) -> tuple[str, Frame]:
        """The next frame from whichever of `sources` has one (the first listed
        first), with its source; waits like `take` until one arrives or every
        source has failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                source = next((s for s in sources if self._queues.get((session, s, tag))), None)
                if source is not None:
                    frame = self._queues[(session, source, tag)].popleft()
                    acknowledger = self._acknowledgers[(session, source)]
                    break
                broken = self._broken.get(session)
                if broken is not None:  # an MPC session needs every member: one lost, all lost
                    raise PeerFailed(*broken)
                reasons = [self._failed.get((session, s)) for s in sources]
                if all(reasons):
                    grace = time.monotonic() + ROOT_CAUSE_GRACE_S
                    while session not in self._broken and (left := grace - time.monotonic()) > 0:
                        self._waiting.wait(self._cond, left)
                    raise PeerFailed(*self._broken.get(session, (sources[0], str(reasons[0]))))
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"no frame from peer {' or '.join(map(repr, sources))} within {timeout:.1f} s")
                for s in sources:
                    waiting_on = self._acknowledgers.get((session, s))
                    if waiting_on is not None:
                        waiting_on.before_wait()
                self._waiting.wait(self._cond, remaining)
        acknowledger.taken(frame.sequence)
        return source, frame

    def close(self, session: str, source: str, reason: str) -> None:
        """Says no more frames will come from `source` in `session` (it finished):
        takes from it raise PeerFailed once the frames it did deliver are used up."""
        with self._cond:
            self._failed.setdefault((session, source), reason)
            self._notify()

    def fail(self, session: str, source: str, reason: str) -> None:
        """`source` crashed or vanished: besides closing it, every take in the
        session that would wait raises PeerFailed naming it."""
        with self._cond:
            self._failed.setdefault((session, source), reason)
            self._broken.setdefault(session, (source, reason))
            self._notify()

    def _notify(self) -> None:
        self._cond.notify_all()
        self._waiting.notify()

    def drop_session(self, session: str) -> None:
        """Forgets everything about a finished session."""
        with self._cond:
            for queue in [k for k in self._queues if k[0] == session]:
                del self._queues[queue]
            for source in [k for k in self._failed if k[0] == session]:
                del self._failed[source]
            for stream in [k for k in self._acknowledgers if k[0] == session]:
                del self._acknowledgers[stream]
            self._broken.pop(session, None)
            self._notify()
