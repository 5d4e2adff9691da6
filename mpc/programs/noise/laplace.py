"""Differential privacy inside MPC: noise that no party knows, added to shared
aggregates before anything is opened.

The mechanism is the geometric (discrete Laplace) mechanism of Ghosh, Roughgarden
and Sundararajan (2009) on a fixed grid: every party rounds its clipped values to
the grid `GRID` (2^-10 of a column's clipping half-range) before it aggregates,
so each pooled sum is an exact multiple of the grid, and the noise is a whole
number k of grid steps with P(k) proportional to exp(-|k| / t), t = b / GRID,
b = sensitivity / epsilon. Noise on the same grid as the sum is what makes the
guarantee exact: continuous noise added to fixed-point values can leak through
the low bits (Mironov 2012).

Randomness no party knows. For every uniform draw each party takes 62 bits from
its operating system and holds them as its XOR share of a binary secret (nothing
is sent): the secret u in [0, 2^62) is the XOR of every party's bits, uniform to
each party and to any coalition short of all of them.

Geometric noise from independent digits. The integer part G of an exponential
variable with mean t is geometric (P(G = g) proportional to exp(-g / t)), and its
binary digits are independent (Marsaglia 1971): digit j is 1 with probability
p_j = 1 / (1 + exp(2^j / t)). Each digit is one secure comparison u_j < p_j 2^62,
a carry tree on u_j's binary shares (exact; mpc.programs.compare), whose one-bit
result alone is converted to an arithmetic share; G = sum 2^j digit_j over the
digits j < J whose p_j is at least 2^-63 (G >= 2^J has probability exp(-2^J / t)
< 2^-63). The noise is G1 - G2 (two-sided geometric). What differs from the exact
mechanism: each p_j is rounded to 2^-63, and digits from J on are dropped; both
together move the noise's distribution by less than `TOTAL_VARIATION` in total
variation per value, which adds at most (1 + e^epsilon) times that to delta.
"""

from __future__ import annotations

import os
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import ReleaseRules
from mpc.errors import FailedPrecondition
from mpc.privacy.plan import GRID, GRID_BITS
from mpc.programs import compare

UNIFORM_BITS = 62
TAIL = Decimal(2) ** -63  # digits less likely than this are dropped
TOTAL_VARIATION = 1e-16
"""Bound on the total variation distance between one value's noise and the exact
two-sided geometric distribution (two variables of at most 64 digits, each p_j
rounded to 2^-63 or dropped below it)."""


def on_grid(z: np.ndarray) -> np.ndarray:
    """Clipped values in [-1, 1] rounded to the grid (each party, on its own rows)."""
    rounded: np.ndarray = np.round(np.clip(z, -1.0, 1.0) / GRID) * GRID
    return rounded


def digits(scale: float) -> list[int]:
    """round(p_j 2^UNIFORM_BITS), p_j = P(digit j of a geometric variable with mean
    ~`scale` steps is 1) = 1 / (1 + exp(2^j / scale)), for j = 0, 1, ... while
    p_j >= TAIL (computed to 50 digits: float64 would err by ~1e-16)."""
    out, j = [], 0
    with localcontext() as context:
        context.prec = 50
        while (p := 1 / (1 + (Decimal(2**j) / Decimal(scale)).exp())) >= TAIL:
            out.append(int((p * 2**UNIFORM_BITS).to_integral_value()))
            j += 1
    return out


def joint_uniform_bits(shape: tuple[int, ...]) -> Any:
    """Integers uniform in [0, 2^UNIFORM_BITS), XOR-shared (a binary secret) from
    every party's operating-system randomness: none of them knows any, and nothing
    is sent (the XOR of the parties' masked bits is the masked XOR)."""
    from crypten.mpc.primitives.binary import BinarySharedTensor

    count = int(np.prod(shape))
    mine = np.frombuffer(os.urandom(8 * count), dtype=np.int64) & np.int64((1 << UNIFORM_BITS) - 1)
    return BinarySharedTensor.from_shares(torch.from_numpy(mine.reshape(shape).copy()), precision=0)


def geometric(count: int, scale: float) -> Any:
    """`count` geometric variables, P(G = g) proportional to exp(-g / scale),
    secret-shared as integers (precision 0). Each digit is one comparison of a
    binary-shared uniform with a public threshold (a carry circuit on the bits),
    and only the resulting bit is converted to an arithmetic share."""
    from crypten.mpc import MPCTensor

    thresholds = torch.tensor(digits(scale), dtype=torch.long)
    bits = compare.below(joint_uniform_bits((len(thresholds), count)), thresholds.unsqueeze(1))  # u_j < p_j 2^62
    weights = torch.tensor([1 << j for j in range(len(thresholds))], dtype=torch.long).unsqueeze(1)
    return MPCTensor.from_shares((bits._tensor.share * weights).sum(0), precision=0)


def discrete_laplace(count: int, scale: float, precision: int, step_bits: int = GRID_BITS) -> Any:
    """`count` noise values k * 2^-step_bits (GRID by default; 0: whole counts),
    P(k) proportional to exp(-|k| / scale), secret-shared at `precision`
    fractional bits (exact: the step is a power of two)."""
    both = geometric(2 * count, scale)
    return at_precision(both[:count] - both[count:], precision, step_bits)


def at_precision(steps: Any, precision: int, step_bits: int) -> Any:
    """Shared integers k (precision 0) as the values k * 2^-step_bits at `precision`
    fractional bits (exact: a shift of the shares)."""
    from crypten.mpc import MPCTensor

    if precision < step_bits:
        raise FailedPrecondition(f"noise on a 2^-{step_bits} grid needs at least {step_bits} fractional bits")
    return MPCTensor.from_shares(steps._tensor.share * (1 << (precision - step_bits)), precision=precision)


def clipped(x: np.ndarray, own: list[tuple[float, float]], frame: list[tuple[float, float]] | None = None) -> np.ndarray:
    """Each column of x clipped to this party's own bounds, then mapped to [-1, 1]
    of `frame` (bounds that contain its own; by default its own) on the grid."""
    if not own:
        return np.zeros((x.shape[0], 0))
    lower, upper = np.array(own).T
    low, high = np.array(frame if frame is not None else own).T
    return on_grid((np.clip(x, lower, upper) - (low + high) / 2) / ((high - low) / 2))


def bounds_for(rules: ReleaseRules, columns: list[str]) -> list[tuple[float, float]]:
    """This party's clipping bounds for its columns, from its own policy (a job
    reading a column without them was refused: mpc.catalogue.rules)."""
    return [rules.dp_bounds[c] for c in columns]
