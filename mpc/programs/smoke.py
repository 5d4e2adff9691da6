"""A multi-party CrypTen self-check: each party secret-shares a private vector and
the parties jointly compute arithmetic, comparisons, division and a matmul.

Used by `mpcgate smoke` and the tests; `expected()` is the plaintext answer the
joint result must match within fixed-point tolerance.
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 8
TOLERANCE = 1e-2
"""Absolute tolerance for CrypTen's 16-bit fixed point through a division."""


def private_input(rank: int, size: int = SIZE) -> torch.Tensor:
    """The vector party `rank` holds (in a real job: its own data)."""
    gen = torch.Generator().manual_seed(1000 + rank)
    return torch.rand(size, generator=gen) * 10 - 5


def expected(world_size: int, size: int = SIZE) -> dict[str, np.ndarray]:
    xs = [private_input(r, size).double().numpy() for r in range(world_size)]
    total = sum(xs)
    first, last = xs[0], xs[-1]
    return {
        "sum": total,
        "product": first * last,
        "less": (first < last).astype(np.float64),
        "ratio": first / (np.abs(last) + 1.0),
        "outer_trace": np.array(np.trace(np.outer(first, last))),
    }


def program(rank: int, world_size: int, size: int | None = None) -> dict[str, np.ndarray]:
    """Runs on every party after crypten.init(); every party gets the revealed results."""
    import crypten

    from mpc.programs.secure import opened

    size = size or SIZE
    mine = private_input(rank, size)
    shared = [crypten.cryptensor(mine if r == rank else torch.zeros(size), src=r) for r in range(world_size)]
    total = shared[0]
    for s in shared[1:]:
        total = total + s
    first, last = shared[0], shared[-1]
    outer = first.unsqueeze(1).matmul(last.unsqueeze(0))
    revealed = {
        "sum": total,
        "product": first * last,
        "less": first < last,
        "ratio": first / (last.abs() + 1.0),
        "outer_trace": outer.trace(),
    }
    return {name: opened(value) for name, value in revealed.items()}


def max_error(world_size: int, results: dict[str, np.ndarray], size: int = SIZE) -> float:
    want = expected(world_size, size)
    return max(float(np.max(np.abs(results[k] - want[k]))) for k in want)
