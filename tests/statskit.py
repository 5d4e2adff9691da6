"""A standing CrypTen session (one OS process per party, gloo) that runs job
programs on tables the test sends, so a property-based test can try many inputs
without paying process start-up for each. Rank 0 is the result receiver."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.exchange.local_parties import run_parties


@dataclass
class Task:
    kind: str
    partitioning: str
    tables: list[np.ndarray]  # by rank
    columns: list[list[str]]  # by rank
    parameters: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    keys: list[np.ndarray] | None = None
    receivers: list[int] = field(default_factory=lambda: [0])
    models: list[dict[str, Any] | None] | None = None  # by rank: what a model's holder holds (model.predict)
    categories: list[dict[str, Any]] | None = None  # by rank: its categorical columns' Vocabulary (cells: codes)


def _serve(rank: int, world_size: int, args: Any) -> None:
    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules
    from mpc.catalogue.kinds import parse
    from mpc.errors import MpcgateError
    from mpc.programs import run

    tasks, answers, kept = args
    while True:
        task: Task | None = tasks[rank].get()
        if task is None:
            return
        ctx = None
        phases: list[str] = []
        try:
            ctx = JobContext(
                kind=task.kind, partitioning=task.partitioning, rank=rank, world_size=world_size,
                layout=[PartyLayout(r, f"party{r}", task.columns[r], -1) for r in range(world_size)],
                receivers=task.receivers, parameters=parse(task.kind, task.parameters), table=task.tables[rank],
                keys=task.keys[rank] if task.keys else None, rules=ReleaseRules(**task.rules),
                model=task.models[rank] if task.models else None,
                categories=task.categories[rank] if task.categories else {},
                progress=lambda phase, percent: phases.append(phase),
            )
            result = run(ctx)
            outcome: Any = ("ok", {k: (v.values, v.labels, v.column_labels, v.suppressed) for k, v in result.items()}
                            if result else None, ctx.kept)
        except MpcgateError as err:
            outcome = ("refused", f"{err.reason}: {err.message}", {})
        if rank == 0:
            answers.put(outcome[:2])
        kept.put((rank, outcome[2], outcome[1], ctx.public if ctx is not None else {}, phases))


class Session:
    def __init__(self, world_size: int) -> None:
        ctx = mp.get_context("spawn")
        self.world_size = world_size
        self._tasks = [ctx.Queue() for _ in range(world_size)]
        self._answers = ctx.Queue()
        self._kept = ctx.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            run_parties(_serve, self.world_size, (self._tasks, self._answers, self._kept), timeout=4 * 3600)  # (shared by the whole run: conftest.standing)
        except BaseException as err:  # noqa: BLE001  (surfaced by the next `run`)
            self._error = err

    def run(self, task: Task, timeout: float = 120) -> tuple[str, Any]:
        """(status, results at rank 0); each rank's kept shares go to `self.shares`,
        its results (or refusal) to `self.results`, its public values to `self.public`,
        the progress phases it reported (what its job's watchers see) to `self.phases`."""
        for q in self._tasks:
            q.put(task)
        while True:
            try:
                answer = self._answers.get(timeout=1)
                kept = [self._kept.get(timeout=timeout) for _ in range(self.world_size)]
                self.shares = {rank: shares for rank, shares, *_ in kept}
                self.results = {rank: results for rank, _, results, *_ in kept}
                self.public = {rank: public for rank, _, _, public, _ in kept}
                self.phases = {rank: phases for rank, *_, phases in kept}
                return answer
            except queue.Empty:
                if self._error is not None or not self._thread.is_alive():
                    raise RuntimeError(f"the parties failed: {self._error}")
                timeout -= 1
                if timeout <= 0:
                    raise TimeoutError("no answer from the parties")

    def close(self) -> None:
        for q in self._tasks:
            q.put(None)
        self._thread.join(30)


def capture_sends(to: str | None = None) -> list[np.ndarray]:
    """From now on, every array this party sends over the gRPC exchange (before
    TLS), or only those it sends to the party named `to`, is also appended to the
    returned list."""
    import crypten.communicator as comm

    session = comm.get().session
    captured: list[np.ndarray] = []
    send = session.send

    def tap(party: str, tag: str, array: np.ndarray, payload_type: int = 1) -> None:
        if to is None or party == to:
            captured.append(np.array(array, copy=True))
        send(party, tag, array, payload_type)

    session.send = tap
    return captured


SMALL_ELEMENT = 2**12  # zeros, counts and lengths the protocol sends in the clear stay below this
SMALL_IN_BYTES = 2**24  # a pickled message's frame lengths stay below this


def encodings_sent(sent: list[np.ndarray], values: np.ndarray, bits: tuple[int, ...] = (16,)) -> int:
    """How many of the patterns that would betray `values` appear in what a party
    sent: float64, float32, or fixed point round(v * 2^b) as int64 for b in `bits`.

    A pattern counts only as a whole element of a sent array of its width, or
    inside a message of bytes (a pickled object) in either byte order. Matching
    byte strings across element or array boundaries would find chance matches; a
    share is uniform over 2^64, so an element equal to an encoding is a real leak.
    Fixed-point encodings smaller than the public integers the protocol sends are
    not searched: nothing could tell them apart, nor zero from the zeros every
    message holds."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[values != 0]
    floats64 = set(values.view(np.int64).tolist())
    floats32 = set(values.astype(np.float32).view(np.int32).tolist())
    as_float32 = values.astype(np.float32).astype(np.float64)  # what a party holding float32 would encode
    fixed = {int(e) for b in bits for v in (values, as_float32) for e in np.round(v * 2.0**b).astype(np.int64)}
    wide = floats64 | {e for e in fixed if abs(e) >= SMALL_ELEMENT}
    little = ([np.int64(p).tobytes() for p in floats64 | {e for e in fixed if abs(e) >= SMALL_IN_BYTES}]
              + [np.int32(p).tobytes() for p in floats32])
    in_bytes = little + [p[::-1] for p in little]  # pickle writes floats big-endian
    found: set[bytes] = set()
    for array in sent:
        if array.dtype.itemsize == 8:
            found |= {np.int64(p).tobytes() for p in wide.intersection(array.view(np.int64).ravel().tolist())}
        elif array.dtype.itemsize == 4:
            found |= {np.int32(p).tobytes() for p in floats32.intersection(array.view(np.int32).ravel().tolist())}
        else:
            data = array.tobytes()
            found |= {p for p in in_bytes if p in data}
    return len(found)
