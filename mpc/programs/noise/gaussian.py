"""The Gaussian mechanism inside MPC, for (epsilon, delta)-differential privacy:
discrete Gaussian noise, P(k) proportional to exp(-k^2 / (2 sigma^2)) on the
integers, that no party knows.

Calibration and accounting: mpc.privacy.accounting (the noise a release needs,
`Gaussian`). A sum with sensitivity above what the sampler handles is first
floor-divided by a public power of two under MPC, exactly (`floor_divided`:
binary shares, a shift, and back; CrypTen's truncation could fail for two
parties), and the noisy value is multiplied back.

Sampling (Canonne, Kamath and Steinke 2020, Algorithm 3, under MPC). Candidates Y = (1 - 2 b) M, M geometric
of mean ~t = floor(sigma) + 1 (mpc.programs.noise.laplace.geometric) and b a joint
random bit, are accepted with probability exp(-(M - sigma^2 / t)^2 / (2 sigma^2))
(and not when b = 1 and M = 0); the first accepted of `candidates` is the
sample. With sigma^2 an integer, the exponent is N / D for the integer N = (t M
- sigma^2)^2 and D = 2 sigma^2 t^2, so the acceptance coin is exact: it is the
AND over N's binary digits n_i of (not n_i or c_i), c_i a coin of probability
exp(-2^i / D) (a joint uniform compared with a public threshold). What differs
from the exact distribution: thresholds rounded to 2^-63, coins below 2^-63 (or
above 1 - 2^-63) taken as 0 (1), the geometric proposal's own deviation, and no
candidate accepted (probability below 2^-48): less than accounting.TOTAL_VARIATION per
sample, added to delta.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Any

import torch

from mpc.privacy.accounting import Gaussian


def floor_divided(value: Any, divisor: int) -> Any:
    """floor(encoding / divisor) of a shared value, for a power of two divisor,
    exactly: the encoding's binary shares shifted (a shift of XOR shares is the
    shift of the secret) and converted back bit by bit (each bit's arithmetic
    share weighted by its place: the sum is the two's complement value mod 2^64)."""
    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives import beaver
    from crypten.mpc.primitives.binary import BinarySharedTensor
    from crypten.mpc.primitives.converters import _A2B

    shifted = _A2B(value._tensor).share >> (divisor.bit_length() - 1)
    places = torch.arange(64, dtype=torch.long).reshape(-1, *([1] * shifted.dim()))
    bits = beaver.B2A_single_bit(BinarySharedTensor.from_shares((shifted.unsqueeze(0) >> places) & 1, precision=0))
    weighted = (bits.share * (torch.ones_like(places) << places)).sum(0)
    return MPCTensor.from_shares(weighted, precision=int(round(math.log2(value.encoder.scale))))


def coins(sigma2: int, t: int) -> tuple[list[int], list[int], int]:
    """For N's binary digits i (N < 2^63): the digits that need a coin and each
    coin's threshold (P(c_i = 1) = exp(-2^i / D), on 62-bit uniforms), and the
    mask of digits whose coin is always 1."""
    from mpc.programs.noise.laplace import UNIFORM_BITS

    d = 2 * sigma2 * t * t
    digits, thresholds, ones = [], [], 0
    with localcontext() as context:
        context.prec = 50
        for i in range(63):
            p = (-(Decimal(2**i) / Decimal(d))).exp()
            if p < Decimal(2) ** -63:
                continue  # coin 0: N must not have this digit
            if 1 - p < Decimal(2) ** -63:
                ones |= 1 << i
                continue
            digits.append(i)
            thresholds.append(int((p * 2**UNIFORM_BITS).to_integral_value()))
    return digits, thresholds, ones


def discrete_gaussian(count: int, noise: Gaussian) -> Any:
    """`count` samples of the discrete Gaussian of variance noise.sigma2,
    secret-shared as integers (precision 0)."""
    import crypten
    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives.binary import BinarySharedTensor
    from crypten.mpc.primitives.converters import _A2B, _B2A

    from mpc.programs import compare
    from mpc.programs.noise.laplace import geometric, joint_uniform_bits

    t, k = noise.t, noise.candidates
    n = count * k
    magnitude = geometric(n, float(t))
    bit = joint_uniform_bits((n,)) & torch.ones(n, dtype=torch.long)
    sign = MPCTensor.from_shares(_B2A(bit, precision=0, bits=1).share, precision=0)
    excess = magnitude.mul(t) - noise.sigma2
    squared = _A2B((excess * excess)._tensor)  # N = (t M - sigma^2)^2 < 2^63, as binary shares
    digits, thresholds, ones = coins(noise.sigma2, t)
    packed = torch.zeros(n, dtype=torch.long)
    if digits:
        limits = torch.tensor(thresholds, dtype=torch.long).unsqueeze(1)
        flips = compare.below(joint_uniform_bits((len(digits), n)), limits, binary=True)
        for row, i in enumerate(digits):
            packed ^= (flips.share[row] & 1) << i
    heads = BinarySharedTensor.from_shares(packed, precision=0) ^ torch.full((n,), ones, dtype=torch.long)
    rejected = squared & ~heads  # a digit of N whose coin came up 0
    kept = _B2A(rejected.eq(torch.zeros(n, dtype=torch.long)), precision=0, bits=1)  # no such digit: accepted
    accepted = MPCTensor.from_shares(kept.share, precision=0)
    zero = compare.sign_bits(magnitude - 1)  # M < 1 (CrypTen's eq is off by its encoder's scale for two parties)
    accepted = accepted - accepted * sign * zero  # -0 is not a second zero
    signed = (magnitude - 2 * sign * magnitude).reshape(k, count)
    accepted = accepted.reshape(k, count)
    takes, none_yet = [accepted[0]], 1 - accepted[0]
    for j in range(1, k):  # the first accepted candidate
        takes.append(accepted[j] * none_yet)
        none_yet = none_yet - takes[-1]
    return (signed * crypten.stack(takes)).sum(0)
