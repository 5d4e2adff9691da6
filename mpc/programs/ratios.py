"""Ratios and logarithms of shared counts (exact integers under MPC, precision 0,
below 2^COUNT_BITS): the metrics' AUC and KS, weights of evidence and information
values.

Both start from the count's top bit, found by comparing it with every power of
two (one comparison batch) and one-hot selected: the count scaled by 2^-(k + 1)
into [0.5, 1) at 24 bits, and its exponent. Everything after that keeps CrypTen's
truncations on small encodings: a truncation of an encoding E fails with
probability ~E / 2^63 (a reciprocal at 24 bits, encodings to 2^50, failed about
one quotient in 3,000), so no truncated encoding here passes 2^37.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mpc.programs import compare, secure

COUNT_BITS = 48
"""Counts and their products below 2^48: the metrics' pairs of rows for n < 2^23."""
SCALED_BITS = 24
QUOTIENT_BITS = 32
"""A quotient's fractional bits: its error is a few units of 2^-24 (the scaled
counts' rounding), the rest of the grid room for callers to lower it."""
LOG_BITS = 20
"""A logarithm's fractional bits: its polynomial's products reach 2^40 (a
truncation fails with probability ~2^-23; at 16 bits its error was 4e-5 rms)."""


def _log1p_coefficients(degree: int = 7) -> list[float]:
    """Least-squares coefficients (t, t^2, ...) of log(1 + t) on [0, 1] (no constant term)."""
    t = (1 - np.cos(np.linspace(0, np.pi, 200))) / 2  # Chebyshev-spaced
    basis = np.stack([t**k for k in range(1, degree + 1)], axis=1)
    return [float(c) for c in np.linalg.lstsq(basis, np.log1p(t), rcond=None)[0]]


LOG1P = _log1p_coefficients()
"""log(1 + t) on [0, 1] to within 1e-6 (the sigmoid's softplus and `logarithm`)."""


def quotient(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator (at QUOTIENT_BITS), elementwise, for shared counts
    with 0 <= numerator <= denominator < 2^COUNT_BITS: both scaled by the
    denominator's top bit, a reciprocal of the scaled denominator at 16 bits (Newton
    from 1.5, five steps), then one refinement from the exact residual at 40 bits.
    Absolute error below 2^-20 (measured: 4.9e-7 at most over 12,000 pairs); a
    zero denominator gives garbage (callers know when it is zero)."""
    import crypten

    highest = _top_bits(denominator)
    mantissa, scaled = (_scaled(highest, value) for value in (denominator, numerator))
    with crypten.cfg.temp_override({"functions.reciprocal_all_pos": True, "functions.reciprocal_initial": 1.5,
                                    "functions.reciprocal_nr_iters": 5}):
        inverse = secure.lowered(mantissa).reciprocal()  # in (1, 2], relative error ~2^-15
    first = secure.lowered(scaled) * inverse  # 16 bits
    residual = secure.raised(scaled, 40) - secure.exact_product(first, mantissa)  # at 40 bits: |.| <~ 2^-13
    correction = secure.mul_mixed(secure.lowered(residual, QUOTIENT_BITS), inverse)
    return secure.raised(first, QUOTIENT_BITS) + correction


def logarithm(count: Any) -> Any:
    """ln(count) at LOG_BITS for shared positive counts below 2^COUNT_BITS (error
    below 2e-5; a zero count gives a finite garbage value, which callers mask):
    ln(m 2^(k+1)) = log1p(2m - 1) + k ln 2, the log1p a degree-7 polynomial."""
    highest = _top_bits(count)
    t = secure.lowered(secure.times_integers(_scaled(highest, count), 2) - 1, LOG_BITS)  # in [0, 1)
    exponent = highest.clone()  # sum_k highest_k (k ln 2 at 16 bits): public integer weights, exact
    weights = torch.tensor([round(k * math.log(2) * 2**LOG_BITS) for k in range(COUNT_BITS)])
    exponent._tensor.share = highest._tensor.share @ weights
    from crypten.encoder import FixedPointEncoder

    exponent._tensor.encoder = FixedPointEncoder(precision_bits=LOG_BITS)
    return t.polynomial(LOG1P) + exponent


def _top_bits(value: Any) -> Any:
    """m x COUNT_BITS one-hot at each count's top bit (a zero count: all zeros)."""
    import crypten

    m = int(value.size(0))
    powers = torch.tensor([1 << k for k in range(COUNT_BITS)], dtype=torch.long)
    above = 1 - compare.less_than(value.unsqueeze(1).expand(m, COUNT_BITS), powers.unsqueeze(0).expand(m, -1))
    return above - crypten.cat([above[:, 1:], above[:, :1].mul(0)], dim=1)


def _scaled(highest: Any, value: Any) -> Any:
    """value / 2^(k + 1) at 24 bits, k the one-hot top bit in `highest` (per row)."""
    import crypten
    from crypten.encoder import FixedPointEncoder

    m = int(value.size(0))
    variants = [secure.times_integers(value, [1 << (SCALED_BITS - 1 - k)] * m) if k < SCALED_BITS
                else value.div(1 << (k + 1 - SCALED_BITS)) for k in range(COUNT_BITS)]
    stacked = crypten.stack(variants, dim=1)
    stacked._tensor.encoder = FixedPointEncoder(precision_bits=SCALED_BITS)
    return (highest * stacked).sum(1)
