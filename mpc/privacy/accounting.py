"""The Gaussian mechanism's calibration and accounting, without torch: how much
discrete Gaussian noise a release needs for rho-zCDP, and what rho-zCDP costs in
(epsilon, delta). The sampler itself runs under MPC (mpc.programs.noise.gaussian,
whose docstring derives the method and its deviation from the exact distribution).

Calibration (Canonne, Kamath and Steinke 2020, "The discrete Gaussian for
differential privacy"). A value with integer sensitivity s plus discrete Gaussian
noise of scale sigma is (s^2 / (2 sigma^2))-zero-concentrated DP (their Theorem
4, as for the continuous Gaussian), zCDP adds up over releases, and rho-zCDP
implies (epsilon, delta)-DP at the epsilon of `epsilon_of` (their Corollary 13).
A job asking (epsilon, delta) gets the largest rho that meets it, split evenly
over its releases. A sum with sensitivity s above what the sampler handles
(scale `SIGMA_MAX`) is floor-divided by a public power of two g under MPC first,
so its sensitivity becomes s / g + 1, and the noisy value is multiplied back.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SIGMA_MAX = 4096.0
"""Above it, (t M - sigma^2)^2 could near 2^63 (M < 64 t): sums are divided first."""
FAILURE_BITS = 48
TOTAL_VARIATION = 1e-14
DIVISION_SLACK = 1  # |floor(a / g) - floor(b / g)| <= |a - b| / g + 1


@dataclass(frozen=True)
class Gaussian:
    """One release's noise: the discrete Gaussian of variance `sigma2` (an integer)
    in units of the sum divided by `divisor`."""

    sigma2: int
    divisor: int

    @property
    def t(self) -> int:
        return math.isqrt(self.sigma2) + 1

    @property
    def candidates(self) -> int:
        return max(1, math.ceil(FAILURE_BITS * math.log(2) / -math.log1p(-acceptance(self.sigma2, self.t))))


@functools.lru_cache(maxsize=256)
def epsilon_of(rho: float, delta: float) -> float:
    """The epsilon of rho-zCDP at delta (Canonne, Kamath, Steinke 2020, Corollary 13):
    the infimum over alpha > 1 of alpha rho + (log(1/delta) + (alpha - 1) log(1 - 1/alpha)
    - log(alpha)) / (alpha - 1)."""
    if rho <= 0:
        return 0.0
    alpha = np.geomspace(1 + 1e-6, 1e6, 20_000)
    bound = alpha * rho + (math.log(1 / delta) + (alpha - 1) * np.log1p(-1 / alpha) - np.log(alpha)) / (alpha - 1)
    return float(max(bound.min(), 0.0))


@functools.lru_cache(maxsize=256)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho (to 2^-60 of epsilon) whose epsilon at delta is at most `epsilon`."""
    low, high = 0.0, epsilon
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if epsilon_of(middle, delta) <= epsilon else (low, middle)
    return low


def calibrated(sensitivity: float, rho: float) -> Gaussian:
    """The noise that makes a release whose (L2) sensitivity is `sensitivity` rho-zCDP."""
    sigma = sensitivity / math.sqrt(2 * rho)
    if sigma <= SIGMA_MAX:
        return Gaussian(math.ceil(sigma**2), 1)
    divisor = 1 << math.ceil(math.log2(sensitivity / (SIGMA_MAX * math.sqrt(2 * rho) - DIVISION_SLACK)))
    sigma = (sensitivity / divisor + DIVISION_SLACK) / math.sqrt(2 * rho)
    return Gaussian(math.ceil(sigma**2), divisor)


def acceptance(sigma2: int, t: int) -> float:
    """The probability that one candidate is accepted."""
    m = np.arange(0, 64 * t)
    proposal = (1 - math.exp(-1 / t)) * np.exp(-m / t)
    keep = np.exp(-((t * m - sigma2) ** 2) / (2.0 * sigma2 * t * t))
    return float((proposal * keep).sum() - 0.5 * proposal[0] * keep[0])
