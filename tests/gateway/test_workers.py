"""Job workers: a warm worker (torch and CrypTen imported ahead) serves exactly one
job and exits; the pool refills; with the pool off, each job starts its own."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from gateway.exchange.service import Sessions
from gateway.workers.plan import WorkerPlan
from gateway.workers.runner import WorkerRunner
from mpc.catalogue.schemas import StatsParameters
from mpc.errors import MpcgateError

pytestmark = pytest.mark.multiprocess


def _plan(tmp_path: Path, job_id: str) -> WorkerPlan:
    """A plan whose worker fails at once (no TLS files): enough to see which process ran it."""
    missing = str(tmp_path / "missing")
    return WorkerPlan(job_id=job_id, session_id=f"{job_id}-s", party_id="bank-a", parties=["bank-a", "bank-b"],
                      addresses={"bank-b": "127.0.0.1:9"}, tls=(missing, missing, missing), kind="stats.describe",
                      partitioning="horizontal", receivers=[0], layout=[], parameters=StatsParameters(), source=None)


async def _progress(*_: object) -> None:
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _exits(pid: int) -> bool:
    """Whether the process is gone within 15 s (workers are reaped in the background)."""
    deadline = time.monotonic() + 15
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("warm", [1, 0])
def test_a_worker_serves_one_job_and_exits(tmp_path: Path, warm: int) -> None:
    runner = WorkerRunner(Sessions(), warm=warm)
    try:
        ready = runner.idle
        assert len(ready) == warm
        for n in range(2):
            with pytest.raises(MpcgateError):
                asyncio.run(runner.run(_plan(tmp_path, f"job{n}"), _progress))
            assert len(runner.idle) == warm
            if warm:
                assert _exits(ready[0]), "the warm worker that ran the job exits"
                assert runner.idle != ready, "a fresh worker waits for the next job"
                ready = runner.idle
    finally:
        runner.kill_all()
    assert all(_exits(pid) for pid in ready)


def test_the_pool_refills_only_once_no_job_runs(tmp_path: Path) -> None:
    """A refill imports torch and CrypTen (~1 CPU-second): never while a job runs."""
    runner = WorkerRunner(Sessions(), warm=1)
    running_at_refill: list[int] = []
    refill = runner._refill

    def spy() -> None:
        running_at_refill.append(len(runner._running))
        refill()

    runner._refill = spy  # type: ignore[method-assign]
    try:
        for n in range(2):
            with pytest.raises(MpcgateError):
                asyncio.run(runner.run(_plan(tmp_path, f"job{n}"), _progress))
            assert len(runner.idle) == 1
        assert running_at_refill == [0, 0]  # one refill after each job, none during
    finally:
        runner.kill_all()


_ORPHAN = """
import multiprocessing as mp, os, signal, sys
from pathlib import Path
from gateway.transport import pki
from gateway.workers.plan import Listening, WorkerPlan
from gateway.workers.process import main
from mpc.catalogue.schemas import StatsParameters

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    pki.init_ca(folder)
    files = pki.issue(folder, "bank-a")
    plan = WorkerPlan(job_id="orphan", session_id="orphan-s", party_id="bank-a", parties=["bank-a", "bank-b"],
                      addresses={"bank-b": "127.0.0.1:9"}, tls=(str(files.ca), str(files.cert), str(files.key)),
                      kind="stats.describe", partitioning="horizontal", receivers=[0], layout=[], parameters=StatsParameters(),
                      source=None, failure_timeout=120.0)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    worker = ctx.Process(target=main, args=(plan, child), daemon=True)
    worker.start()
    assert isinstance(parent.recv(), Listening)  # past its imports, waiting for a peer that never comes
    print(worker.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the gateway dies without a word
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux only (PR_SET_PDEATHSIG)")
def test_a_worker_dies_with_its_gateway(tmp_path: Path) -> None:
    """Defect 13 of the partner-API issue: a worker outlived its gateway by ~30 s
    (until its peers' failure timeout), holding shares and ports."""
    import subprocess
    import sys

    script = tmp_path / "dying_gateway.py"
    script.write_text(_ORPHAN)
    gateway = subprocess.Popen([sys.executable, str(script), str(tmp_path / "pki")], stdout=subprocess.PIPE, text=True)
    assert gateway.stdout is not None
    line = gateway.stdout.readline()  # (not read to its end: the worker holds the pipe while it lives)
    assert gateway.wait(60) == -9 and line, line
    pid = int(line)
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(pid):
        os.kill(pid, 9)
        pytest.fail("the worker outlived its gateway")
