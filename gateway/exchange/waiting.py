"""How a party's program thread waits for the network.

A node either runs its asyncio loop on a thread of its own (several threads may
then use it, as the exchange tests do), or is *driven*: its one program thread runs
the loop itself, only while it waits for a frame, an acknowledgement or a session
step. Driven, a frame crosses no thread on its way in or out: measured on 2 cores,
a 1 KB round trip took 0.61 ms instead of 0.80, and the thread switches it saves
are CPU that 3 parties on 2 cores share.

Either way, state lives under a `threading.Condition` and a waiter re-checks it
after every wake-up; changes made on the loop `notify` the waiter.
"""

from __future__ import annotations

import asyncio
import threading


class Waiting:
    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """`loop`: the node's loop, when the waiting thread drives it; None when the
        loop runs on its own thread."""
        self._loop = loop
        self._woken: asyncio.Future[None] | None = None

    @property
    def driven(self) -> bool:
        return self._loop is not None

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Called holding `cond`: returns after a `notify`, the timeout, or
        spuriously (callers re-check)."""
        if self._loop is None:
            cond.wait(timeout)
            return
        woken = self._woken = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(max(0.0, timeout), _wake, woken)
        cond.release()  # the loop's callbacks take it to deliver
        try:
            self._loop.run_until_complete(woken)
        finally:
            cond.acquire()
            self._woken = None
            if timer is not None:
                timer.cancel()

    def notify(self) -> None:
        """Wakes a driven waiter (after `cond.notify_all()`, called on the loop)."""
        if self._woken is not None:
            _wake(self._woken)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
