"""ECDH private set intersection among the job's parties, over the job's
communicator (the gateways' mutual-TLS exchange), and the common row order.

Each party i draws a fresh secret scalar a_i and a secret permutation of its
rows, hashes its keys to points H(k) (keys.py) in that order and blinds them:
a_i H(k). The lists travel the ring of parties (rank i sends to i + 1), each
party applying its own scalar, so after world - 1 steps party i holds party
(i + 1)'s list as F(k) = a_0 a_1 ... a_{n-1} H(k), in (i + 1)'s secret order; it
returns that list (truncated to 16 bytes: no collision among 2^40 keys but with
probability 2^-48) to its owner. Every party now knows F of each of its own rows;
F of a key nobody else holds is a pseudorandom value to the others.

Matching. With two parties each holds the other's F-set and intersects locally.
With more, the running intersection travels a chain: party 0 intersects its own
F-set with party 1's (which it holds), party 1 intersects that with party 2's,
..., and party n - 2 sends the intersection of all to every party.

What each party learns (documented in the README): with two parties, which of
its own rows are in the intersection, and the intersection's size (and the
other party's row count, public for every job). With three or more, also which
of its rows its successor (rank + 1) holds, and party k (k < n - 1) which of its
rows are in the intersection of parties 0 .. k + 1; nothing about keys that are
not its own. Raw keys and unblinded hashes never leave the party.

A party that holds no rows of the job (a model's holder in model.predict) is not
counted: it blinds and relays the others' lists like every party, brings no keys,
and its (empty) set is left out of the matching; it learns the intersection's
size, as every party does.

Common order: the intersection's F-values, sorted; row i is the same entity at
every party.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mpc.catalogue import keys as keyspace
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import secure
from mpc.programs.intersection.blinding import POINT_BYTES, Blinder

MATCH_BYTES = 16
CHUNK_ROWS = 1 << 18  # 8 MiB of points per message


@dataclass(frozen=True)
class Alignment:
    rows: np.ndarray  # this party's row indices, in the common order
    size: int  # the intersection's size (public to every party)


def intersect(rank: int, world: int, keys: Sequence[object] | np.ndarray, salt: bytes,
              progress: Callable[[str, float], None] = lambda phase, percent: None,
              cores: int | None = None, where: str = "keys", parties: list[str] | None = None,
              counted: list[bool] | None = None) -> Alignment:
    """This party's rows common to every party, in the common order. `keys`: one
    per row (any sequence: only CHUNK_ROWS of them are encoded at a time).
    `counted` (public, by rank): whose keys the intersection is over; a party not
    counted (one holding no rows of the job, such as a model's holder) still blinds
    and relays, with no keys of its own."""
    import crypten.communicator as comm

    communicator = comm.get()
    n = len(keys)
    sizes = [int(s) for s in secure.public_among(rank, world, n)]
    permutation = np.random.default_rng(np.frombuffer(os.urandom(16), dtype=np.uint64)).permutation(n)
    hashed = np.empty((n, POINT_BYTES), dtype=np.uint8)
    problem = None
    try:
        for start in range(0, n, CHUNK_ROWS):
            hashed[start : start + CHUNK_ROWS] = keyspace.points(
                [keys[i] for i in permutation[start : start + CHUNK_ROWS]], salt, where)
        keyspace.refuse_repeats(hashed, keys, where)
    except InvalidArgument as err:
        problem = err
    flawed = secure.public_among(rank, world, problem is not None)  # every party stops alike
    if problem is not None:
        raise problem  # (the details, which may quote a key, stay at this party)
    if any(flawed):
        name = parties[flawed.index(True)] if parties else f"rank {flawed.index(True)}"
        raise InvalidArgument(f"party {name}'s key column has an empty or repeated key: no intersection was computed")
    with Blinder(cores) as blinder:
        current = _blind(blinder, hashed, lambda done: progress(f"intersection: {done} of {n} keys blinded",
                                                                10 * done / max(n, 1)))
        del hashed
        origin = rank
        for step in range(world - 1):
            origin = (origin - 1) % world
            received = _pass(communicator, current, (rank + 1) % world, (rank - 1) % world, sizes[origin], POINT_BYTES)
            current = _blind(blinder, received)
            progress(f"intersection: {len(received)} keys of another party blinded (ring step {step + 1} of "
                     f"{world - 1})", 10 + 60 * (step + 1) / (world - 1))
    successor = current[:, :MATCH_BYTES]  # party (rank + 1)'s F-set, in its secret order
    mine = _pass(communicator, successor, (rank + 1) % world, (rank - 1) % world, sizes[rank], MATCH_BYTES)
    own = np.empty_like(mine)
    own[permutation] = mine  # F of each of this party's rows, in row order
    values = _as_values(own)
    common = _match(communicator, rank, world, values, _as_values(successor), counted or [True] * world)
    progress(f"intersection: {len(common)} entities common to all parties", 90)
    inside = np.flatnonzero(np.isin(values, common, assume_unique=True))
    rows = inside[np.argsort(values[inside], kind="stable")]
    return Alignment(rows=rows, size=int(len(common)))


def _blind(blinder: Blinder, points: np.ndarray, done: Callable[[int], None] = lambda rows: None) -> np.ndarray:
    """Every row times this party's scalar, CHUNK_ROWS at a time (`done` after each)."""
    out = np.empty_like(points)
    for start in range(0, len(points), CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = blinder.apply(points[start : start + CHUNK_ROWS])
        done(min(start + CHUNK_ROWS, len(points)))
    return out


def _pass(communicator: object, outgoing: np.ndarray, to: int, source: int, incoming: int, width: int) -> np.ndarray:
    """Sends `outgoing` (rows x width uint8) to `to` while receiving `incoming` rows
    from `source`, in chunks (so neither side's window fills with one message)."""
    received = np.empty((incoming, width), dtype=np.uint8)
    chunks = max(-(-len(outgoing) // CHUNK_ROWS), -(-incoming // CHUNK_ROWS))
    for c in range(chunks):
        out = outgoing[c * CHUNK_ROWS : (c + 1) * CHUNK_ROWS]
        request = communicator.isend(torch.from_numpy(np.ascontiguousarray(out)), to) if len(out) else None  # type: ignore[attr-defined]
        size = max(0, min(CHUNK_ROWS, incoming - c * CHUNK_ROWS))
        if size:
            buffer = torch.empty((size, width), dtype=torch.uint8)
            received[c * CHUNK_ROWS : c * CHUNK_ROWS + size] = communicator.recv(buffer, source).numpy()  # type: ignore[attr-defined]
        if request is not None:
            request.wait()
    return received


def _as_values(rows: np.ndarray) -> np.ndarray:
    """rows x 16 uint8 -> comparable fixed-width byte strings."""
    return np.ascontiguousarray(rows).view(f"S{MATCH_BYTES}").reshape(-1)


def _match(communicator: object, rank: int, world: int, own: np.ndarray, successor: np.ndarray,
           counted: list[bool]) -> np.ndarray:
    """The sorted F-values every counted party holds (see the module docstring):
    party 0 brings its own set and its successor's, party k its successor's; an
    uncounted party's set is left out (None stands for "no set yet")."""
    if len(np.unique(own)) != len(own):
        raise FailedPrecondition("two of this party's keys collided after blinding; please resubmit")

    def meet(running: np.ndarray | None, values: np.ndarray, party: int) -> np.ndarray | None:
        if not counted[party]:
            return running
        return values if running is None else np.intersect1d(running, values, assume_unique=True)

    if world == 2:  # each party holds both sets
        common = meet(meet(None, own, rank), successor, 1 - rank)
        return np.sort(common if common is not None else own)
    running = meet(meet(None, own, 0), successor, 1) if rank == 0 else None
    for k in range(1, world - 1):
        if rank == k - 1:
            _send_values(communicator, running, k)
        if rank == k:
            running = meet(_recv_values(communicator, k - 1), successor, k + 1)
    last = world - 2
    if rank == last:
        for r in range(world):
            if r != rank:
                _send_values(communicator, running, r)
    else:
        running = _recv_values(communicator, last)
    return np.sort(running if running is not None else np.zeros(0, dtype=f"S{MATCH_BYTES}"))


def _send_values(communicator: object, values: np.ndarray | None, to: int) -> None:
    """A sorted set of F-values; None ("no set yet") travels as the count -1."""
    if values is None:
        communicator.send_obj(-1, to)  # type: ignore[attr-defined]
        return
    data = np.frombuffer(np.sort(values).tobytes(), dtype=np.uint8)
    communicator.send_obj(len(data) // MATCH_BYTES, to)  # type: ignore[attr-defined]
    if len(data):
        communicator.send(torch.from_numpy(data.copy()), to)  # type: ignore[attr-defined]


def _recv_values(communicator: object, source: int) -> np.ndarray | None:
    count = int(communicator.recv_obj(source))  # type: ignore[attr-defined]
    if count < 0:
        return None
    if not count:
        return np.zeros(0, dtype=f"S{MATCH_BYTES}")
    data = communicator.recv(torch.empty(count * MATCH_BYTES, dtype=torch.uint8), source).numpy()  # type: ignore[attr-defined]
    return _as_values(data.reshape(count, MATCH_BYTES))

