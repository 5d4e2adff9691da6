"""Runs one CrypTen program in one OS process per party on this machine.

This is how tests, benchmarks and the smoke check run real multi-party CrypTen
locally. Processes are started with `spawn` (never fork: torch and gRPC state must
not be copied), each initializes CrypTen for its rank, runs the program, and
reports its result or its traceback. The first failure or a timeout ends every
party: nothing is left running.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Program = Callable[[int, int, Any], Any]
"""program(rank, world_size, args) -> a picklable result; runs after crypten.init()."""


class PartyFailed(RuntimeError):
    """A party's program raised, died or ran out of time."""

    def __init__(self, rank: int, detail: str) -> None:
        super().__init__(f"party {rank} failed: {detail}")
        self.rank = rank
        self.detail = detail


@dataclass(frozen=True)
class _Outcome:
    rank: int
    ok: bool
    value: Any


def _run_party(rank: int, world_size: int, program: Program, args: Any, rendezvous: str, results: mp.Queue) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), RENDEZVOUS=rendezvous, DISTRIBUTED_BACKEND="gloo"
    )
    try:
        import mpc  # noqa: F401  (makes crypten importable)
        import crypten

        crypten.init()
        value = program(rank, world_size, args)
    except BaseException:  # noqa: BLE001  (report every failure to the parent, then exit non-zero)
        # Report before tearing anything down, so the failing party is named
        # before its peers notice the broken connection and fail in turn.
        results.put(_Outcome(rank, False, traceback.format_exc()))
        raise SystemExit(1)
    results.put(_Outcome(rank, True, value))
    crypten.uninit()


def run_parties(program: Program, world_size: int, args: Any = None, timeout: float = 300.0) -> list[Any]:
    """Runs `program` on `world_size` parties over CrypTen's gloo transport and
    returns their results by rank."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="mpcgate-rdv-") as scratch:
        rendezvous = f"file://{Path(scratch, 'rendezvous')}"
        procs = [
            ctx.Process(target=_run_party, args=(r, world_size, program, args, rendezvous, results), daemon=True)
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        try:
            return _collect(procs, results, timeout)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()


def _collect(procs: list[mp.Process], results: mp.Queue, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    values: dict[int, Any] = {}
    while len(values) < len(procs):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(set(range(len(procs))) - set(values))
            raise PartyFailed(missing[0], f"no result within {timeout:.0f} s")
        try:
            outcome: _Outcome = results.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            for rank, p in enumerate(procs):
                if rank not in values and p.exitcode is not None and p.exitcode != 0:
                    raise PartyFailed(rank, f"process exited with code {p.exitcode}") from None
            continue
        if not outcome.ok:
            raise PartyFailed(outcome.rank, outcome.value)
        values[outcome.rank] = outcome.value
    return [values[r] for r in range(len(procs))]
