"""Starts and watches job worker processes for the gateway.

A worker is a spawned process (never forked from the gateway: its gRPC and torch
state must not be copied). With `warm` > 0 the runner keeps that many workers
started ahead, torch and CrypTen imported (~2 s saved per job); a job takes one and
sends it its plan (no table: the worker reads its input itself). A worker serves one
job and exits. The pool refills once no job runs here: the imports cost ~1
CPU-second per worker, which a running job would otherwise share (on 2 cores, a
3-party job took twice as long while four pools refilled). A job that finds a worker
still importing sends it its plan all the same; it starts as soon as it is ready.

The gateway learns the worker's loopback port, lets the exchange relay the job's
session to it, and turns what the worker reports into progress, a result, or a
failure; a worker that dies without a word is a failure too. Cancelling terminates
the process, then kills it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.exchange.service import Sessions
from gateway.workers.plan import (
    AskRelease,
    Audit,
    Failed,
    Finished,
    Listening,
    Progress,
    ReleaseAnswer,
    WorkerPlan,
)
from gateway.workers.process import main, warm
from mpc.errors import Cancelled, MpcgateError

log = logging.getLogger(__name__)

OnProgress = Callable[[Progress], Awaitable[None]]
OnRelease = Callable[[], str]
OnAudit = Callable[[str, dict[str, str]], None]
"""Asked right before the worker reveals anything: '' allows, else the refusal."""


class WorkerFailed(MpcgateError):
    reason = "WORKER_FAILED"

    def __init__(self, message: str, reason: str = "WORKER_FAILED", **metadata: str) -> None:
        super().__init__(message, **metadata)
        self.reason = reason  # type: ignore[misc]


@dataclass
class _Running:
    process: Any
    cancelled: bool = False


class WorkerRunner:
    def __init__(self, sessions: Sessions, warm: int = 0) -> None:
        self._sessions = sessions
        self._running: dict[str, _Running] = {}
        self._ctx = mp.get_context("spawn")
        self._warm = warm
        self._idle: list[tuple[Any, Any]] = []  # (process, parent end of its pipe)
        self._refill()

    def _refill(self) -> None:
        while len(self._idle) < self._warm:
            parent, child = self._ctx.Pipe(duplex=True)
            process = self._ctx.Process(target=warm, args=(child,), name="mpcgate-worker-warm", daemon=True)
            process.start()
            child.close()
            self._idle.append((process, parent))

    def _start(self, plan: WorkerPlan) -> tuple[Any, Any]:
        """A warm worker given `plan`, or a new one started with it."""
        while self._idle:
            process, parent = self._idle.pop(0)
            try:
                if process.is_alive():
                    parent.send(plan)
                    return process, parent
            except OSError:
                pass
            parent.close()
            _reap(process)
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=main, args=(plan, child), name=f"mpcgate-worker-{plan.job_id}", daemon=True)
        process.start()
        child.close()  # so that a dead worker reads as EOF
        return process, parent

    async def run(self, plan: WorkerPlan, on_progress: OnProgress,
                  on_release: OnRelease = lambda: "", on_audit: OnAudit = lambda action, details: None,
                  ) -> Finished:
        """Runs the worker to the end; returns what it finished with: its results
        (None for a non-receiver), this party's shares of what the program kept
        secret-shared, and the public values that go with them."""
        running = self._running[plan.job_id] = _Running(None)  # running from the moment it takes a worker
        process, parent = self._start(plan)
        running.process = process
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    message = await loop.run_in_executor(None, parent.recv)
                except (EOFError, OSError):
                    if running.cancelled:
                        raise Cancelled(f"job {plan.job_id} was cancelled") from None
                    await loop.run_in_executor(None, process.join, 5)
                    raise WorkerFailed(f"the worker process died (exit code {process.exitcode})") from None
                match message:
                    case Listening(port):
                        self._sessions.add(plan.session_id, plan.members, worker=f"127.0.0.1:{port}")
                    case Progress():
                        await on_progress(message)
                    case AskRelease():
                        parent.send(ReleaseAnswer(on_release()))
                    case Audit(action, details):
                        on_audit(action, details)
                    case Finished():
                        return message
                    case Failed(reason, text, metadata):
                        raise WorkerFailed(text, reason=reason, **metadata)
        finally:
            self._sessions.remove(plan.session_id)
            self._running.pop(plan.job_id, None)
            parent.close()
            if not self._running:
                self._refill()
            # the worker may take a moment to close its exchange and exit: reap it on a
            # thread of its own (not the loop's executor, which reads the workers'
            # pipes), so the job's outcome is reported as soon as it is known
            threading.Thread(target=_reap, args=(process,), name=f"reap-{plan.job_id}", daemon=True).start()

    def expect(self, session_id: str, members: list[str]) -> None:
        """The job is starting here: peers may dial its session before the worker
        listens (they wait); `forget` ends that if no worker ever does."""
        self._sessions.expect(session_id, members)

    def forget(self, session_id: str) -> None:
        self._sessions.remove(session_id)

    def cancel(self, job_id: str) -> bool:
        """Stops the job's worker, if it runs here; the pending `run` raises Cancelled."""
        running = self._running.get(job_id)
        if running is None:
            return False
        running.cancelled = True
        running.process.terminate()
        return True

    def kill_all(self) -> None:
        self._warm = 0
        for process, parent in self._idle:
            parent.close()  # a waiting warm worker reads end of input and exits
            process.kill()
            process.join(5)
        self._idle = []
        for running in list(self._running.values()):
            running.cancelled = True
            running.process.kill()

    @property
    def idle(self) -> list[int]:
        """The process ids of the warm workers waiting for a job."""
        return [process.pid for process, _ in self._idle]


def _reap(process: Any) -> None:
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)



