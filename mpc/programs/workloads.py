"""Reference CrypTen workloads: the same programs run over gloo and over the gRPC
exchange by the transport tests and benchmarks/transport.py, so that results and
costs compare like for like.

Every workload is `workload(rank, world_size, params) -> dict` of revealed numpy
results plus this party's communication statistics. Inputs are deterministic per
party (seeded), each secret-shared by the party that owns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mpc.programs import compare as comparison
from mpc.programs.models.sigmoid import activations


@dataclass(frozen=True)
class Params:
    size: int = 1000
    rows: int = 200
    features: int = 5
    batch: int = 50
    seed: int = 0


def owned_input(rank: int, shape: tuple[int, ...], seed: int = 0, scale: float = 4.0) -> torch.Tensor:
    """The tensor party `rank` holds."""
    gen = torch.Generator().manual_seed(10_000 * seed + 97 * rank + 1)
    return (torch.rand(shape, generator=gen) * 2 - 1) * scale


def _share(rank: int, owner: int, value: torch.Tensor) -> Any:
    import crypten

    return crypten.cryptensor(value if rank == owner else torch.zeros_like(value), src=owner)


def _finish(started: float, **revealed: Any) -> dict[str, Any]:
    import crypten.communicator as comm

    from mpc.programs.secure import opened

    out: dict[str, Any] = {k: opened(v) for k, v in revealed.items()}
    out["seconds"] = time.perf_counter() - started
    stats = dict(comm.get().get_communication_stats())
    session = getattr(comm.get(), "session", None)
    if session is not None:  # gRPC: real bytes per peer since _start
        stats["sent_to"] = {p: n - _BASELINE[0].get(p, 0) for p, n in session.sent_to.items()}
        stats["received_from"] = {p: n - _BASELINE[1].get(p, 0) for p, n in session.received_from.items()}
    out["stats"] = stats
    return out


_BASELINE: list[dict[str, int]] = [{}, {}]


def _start() -> float:
    import crypten.communicator as comm

    comm.get().reset_communication_stats()
    session = getattr(comm.get(), "session", None)
    if session is not None:
        _BASELINE[:] = [dict(session.sent_to), dict(session.received_from)]
    return time.perf_counter()


def multiply(rank: int, world_size: int, p: Params) -> dict[str, Any]:
    a = _share(rank, 0, owned_input(0, (p.size,), p.seed))
    b = _share(rank, world_size - 1, owned_input(world_size - 1, (p.size,), p.seed))
    started = _start()
    return _finish(started, product=a * b)


def compare(rank: int, world_size: int, p: Params) -> dict[str, Any]:
    a = _share(rank, 0, owned_input(0, (p.size,), p.seed))
    b = _share(rank, world_size - 1, owned_input(world_size - 1, (p.size,), p.seed))
    started = _start()
    return _finish(started, less=comparison.less_than(a, b))  # mpcgate's comparison


def matmul(rank: int, world_size: int, p: Params) -> dict[str, Any]:
    n = p.size
    a = _share(rank, 0, owned_input(0, (n, n), p.seed, scale=1.0))
    b = _share(rank, world_size - 1, owned_input(world_size - 1, (n, n), p.seed, scale=1.0))
    started = _start()
    return _finish(started, product=a.matmul(b))


def divide(rank: int, world_size: int, p: Params) -> dict[str, Any]:
    a = _share(rank, 0, owned_input(0, (p.size,), p.seed))
    b = _share(rank, world_size - 1, owned_input(world_size - 1, (p.size,), p.seed))
    started = _start()
    return _finish(started, ratio=a / (b.abs() + 1.0))


def logistic_data(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (held by party 0) and labels (held by the last party)."""
    features = owned_input(0, (p.rows, p.features), p.seed, scale=1.0)
    gen = torch.Generator().manual_seed(p.seed + 5)
    true_w = torch.randn(p.features, 1, generator=gen)
    labels = (features @ true_w > 0).double()
    return features, labels


def logistic_epoch(rank: int, world_size: int, p: Params) -> dict[str, Any]:
    """One epoch of mini-batch gradient descent on encrypted features and labels."""
    import crypten

    features, labels = logistic_data(p)
    x = _share(rank, 0, features.float())
    y = _share(rank, world_size - 1, labels.float())
    w = crypten.cryptensor(torch.zeros(p.features, 1))
    started = _start()
    for begin in range(0, p.rows, p.batch):
        xb, yb = x[begin : begin + p.batch], y[begin : begin + p.batch]
        error = activations(xb.matmul(w))[0] - yb  # mpcgate's sigmoid (its models'), not CrypTen's
        w = w - xb.t().matmul(error) * (LEARNING_RATE / xb.size(0))
    return _finish(started, weights=w)


LEARNING_RATE = 0.5


def logistic_epoch_plaintext(p: Params) -> np.ndarray:
    features, labels = logistic_data(p)
    x, y = features.double(), labels.double()
    w = torch.zeros(p.features, 1, dtype=torch.float64)
    for begin in range(0, p.rows, p.batch):
        xb, yb = x[begin : begin + p.batch], y[begin : begin + p.batch]
        w = w - xb.t() @ (torch.sigmoid(xb @ w) - yb) * (LEARNING_RATE / xb.size(0))
    return w.numpy()


WORKLOADS = {"multiply": multiply, "compare": compare, "matmul": matmul, "divide": divide, "logistic_epoch": logistic_epoch}


def run(rank: int, world_size: int, args: tuple[str, Params]) -> dict[str, Any]:
    """Program entry for gateway.exchange.local_parties.run_parties: args = (workload name, params)."""
    name, params = args
    return WORKLOADS[name](rank, world_size, params)


def run_many(rank: int, world_size: int, args: list[tuple[str, Params]]) -> list[dict[str, Any]]:
    """Several workloads in one session (one process start for all of them)."""
    return [WORKLOADS[name](rank, world_size, params) for name, params in args]
