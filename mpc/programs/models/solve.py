"""Solving a secret-shared symmetric positive definite system A x = b inside MPC,
so that only the solution (or nothing) is ever revealed.

1. Jacobi scaling: A' = S A S, b' = S b with S ~ diag(A)^-1/2 (any shared S gives
   the same x = S y, so S need not be exact); A' has a unit-ish diagonal and
   eigenvalues in (0, 2d]. A penalty's diagonal P (A = a + P) is passed already
   scaled, as S P S, which its caller forms without large encodings: a penalty of
   2^20 times a column's curvature would otherwise meet its 2^-10 scale in a
   product whose encoding nears the ring.
2. Newton–Schulz inverse at 16 bits: X <- X (2I - A'X) from X = I / (2d); it
   converges quadratically once ||I - A'X|| < 1, in log2(d * condition) + 3 steps.
3. y = X b', then iterative refinement y += X (b' - A'y) with the residual taken in
   two limbs (16-bit high part, scaled low part) against a 24-bit A', so y ends
   accurate to ~condition * 2^-24, not 2^-16; then `EXACT_REFINEMENTS` more with
   the residual at 32 bits, A'y taken exactly (A' and y each in two 16-bit limbs,
   no truncation: the ring's wrap-around cancels in b' - A'y) so that only the
   small residual is truncated: y to ~condition * 2^-32, and the solve adds
   nothing beside the errors A' already carries.
4. Every party learns one bit: whether max |I - A'X| < `INVERSE_TOLERANCE` and
   every |X_ij| < 1e-3 / (sqrt(d) * entry_error), i.e. whether the errors A already
   carries (`entry_error`: their typical size per entry, from how A was computed;
   independent and zero-mean, as rounding to the grid makes them) move the
   solution by more than about 1e-3 relative. If not (too ill-conditioned: collinear features;
   or a failed truncation), the job is refused with a clear error; nothing is
   revealed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mpc.errors import FailedPrecondition
from mpc.programs import secure

NEWTON_STEPS_MAX = 30
INVERSE_TOLERANCE = 0.05
REFINEMENTS = 3
EXACT_REFINEMENTS = 2
EXACT_BITS = 32
RESIDUAL_TOLERANCE = 1e-5
TOLERANCE = 1e-3
CONDITION_SUPPORTED = 1e5


def steps(d: int) -> int:
    """Newton–Schulz steps for a condition number up to CONDITION_SUPPORTED."""
    return min(NEWTON_STEPS_MAX, int(math.ceil(math.log2(2 * d * CONDITION_SUPPORTED * 10))) + 1)


@dataclass
class Inverse:
    """A^-1 = S X S: the 16-bit Newton–Schulz inverse X of the scaled A' = S A S."""

    x: Any  # 16 bits
    scale: Any  # S, 16 bits
    scaled: Any  # A', 24 bits
    exact: Any  # A', 32 bits

    def apply(self, vector: Any) -> Any:
        """A^-1 v at the vector's precision."""
        return secure.mul_mixed(secure.mul_mixed(secure.mul_mixed(vector, self.scale), self.x, "matmul"), self.scale)


def inverse(ctx: Any, a: Any, scale: Any, entry_error: float, phase: str = "solving the normal equations",
            scaled_diagonal: Any = None) -> Inverse:
    """A^-1 of a shared symmetric positive definite A = a + P (`a` d x d, >= 24 bits;
    P diagonal, given as `scaled_diagonal` = diag(S P S), shared or public, or
    None), with `scale` (d, 16 bits) = S ~ diag(A)^-1/2; refused (one public bit)
    where the errors A carries (`entry_error` per entry of S A S) could move a
    solution past 1e-3."""
    import crypten

    d = int(a.size(0))
    rows = lambda v: v.unsqueeze(1).expand(d, d)  # noqa: E731
    cols = lambda v: v.unsqueeze(0).expand(d, d)  # noqa: E731
    scaled = secure.mul_mixed(secure.mul_mixed(a, rows(scale)), cols(scale))  # A' = S a S (+ S P S)
    if scaled_diagonal is not None:
        scaled = scaled + _diagonal(scaled_diagonal, d)
    coarse = secure.lowered(scaled)
    eye = torch.eye(d, dtype=torch.float64)
    x = crypten.cryptensor(eye / (2 * d), precision=secure.PRODUCT_BITS)  # public start, shared form
    for step in range(steps(d)):
        product = coarse.matmul(x)
        x = x.matmul(product.neg().add(2 * eye))
        ctx.progress(phase, 40 + 30 * (step + 1) / steps(d))
    converged = _all_within(ctx, coarse.matmul(x).sub(eye), INVERSE_TOLERANCE)
    if not (converged and _all_within(ctx, x, TOLERANCE / (math.sqrt(d) * entry_error))):
        raise FailedPrecondition(
            "the normal equations are too ill-conditioned for the fixed point to solve them to 1e-3 (nearly "
            "collinear features?): add regularization (alpha) or drop a feature")
    return Inverse(x, scale, secure.lowered(scaled, secure.PRECISION_BITS), _exactly(scaled))


def solve(ctx: Any, a: Any, b: Any, scale: Any, entry_error: float, scaled_diagonal: Any = None) -> Any:
    """x with A x = b, A = a + P as in `inverse`. `a` (d x d) and `b` (d) are shared
    (any precision >= 24 bits), `scale` (d, 16 bits) approximates diag(A)^-1/2;
    `entry_error` bounds the error of A' = S A S's entries."""
    inv = inverse(ctx, a, scale, entry_error, scaled_diagonal=scaled_diagonal)
    b_exact = _exactly(secure.mul_mixed(b, scale))
    b_scaled = secure.lowered(b_exact, secure.PRECISION_BITS)
    y = secure.mul_mixed(b_scaled, inv.x, "matmul")  # b'^T X = (X b')^T, X symmetric
    for _ in range(REFINEMENTS):
        y = y + secure.mul_mixed(b_scaled - product(inv.scaled, y), inv.x, "matmul")
    y = secure.raised(y, EXACT_BITS)
    for _ in range(EXACT_REFINEMENTS):
        y = y + secure.mul_mixed(exact_residual(inv.exact, b_exact, y), inv.x, "matmul")
    if not _all_within(ctx, secure.lowered(exact_residual(inv.exact, b_exact, y), secure.PRECISION_BITS),
                       RESIDUAL_TOLERANCE):
        raise FailedPrecondition("solving the normal equations failed in the fixed point (a truncation wrapped); "
                                 "nothing was released, please resubmit the job")
    return secure.mul_mixed(secure.lowered(y, secure.PRECISION_BITS), scale)


def _diagonal(vector: Any, d: int) -> Any:
    """diag(vector) for a shared (any precision) or public vector."""
    if torch.is_tensor(vector) or isinstance(vector, np.ndarray):
        return torch.as_tensor(vector, dtype=torch.float64).diag()
    return secure.times_integers(vector.unsqueeze(1).expand(d, d), torch.eye(d, dtype=torch.long).tolist())  # exact


def _all_within(ctx: Any, values: Any, tolerance: float) -> bool:
    """One bit, opened to every party: is every |value| below `tolerance`?"""
    flat = values.reshape(-1)
    inside = secure.less_than(flat, tolerance) * secure.greater_than(flat, -tolerance)  # 0/1 at scale 1
    return bool(secure.greater_than_to_all(ctx, inside.sum() - (int(flat.size(0)) - 1), 0).all())


def product(matrix: Any, vector: Any) -> Any:
    """matrix @ vector at 24 bits, the vector in two limbs so neither product's
    encoding nears the ring: hi at 16 bits, lo = vector - hi scaled by 2^16."""
    hi = secure.lowered(vector)
    lo = secure.lowered(secure.times_integers(vector - secure.raised(hi, secure.PRECISION_BITS),
                                              [1 << 16] * int(vector.size(0))))
    high = secure.mul_mixed(matrix, hi.unsqueeze(1), "matmul").squeeze(1)
    low = secure.mul_mixed(matrix, lo.unsqueeze(1), "matmul").squeeze(1).div(1 << 16)
    return high + low


def exact_residual(matrix: Any, b: Any, vector: Any) -> Any:
    """b - matrix @ vector at 32 bits (all three at 32 bits), the product taken
    exactly at 48 bits: matrix and vector each split in 16-bit limbs (hi + lo
    2^-16), the limb products summed in the ring with no truncation (where they
    wrap, the wrap cancels against b), and only the small residual truncated."""
    from crypten.encoder import FixedPointEncoder
    from crypten.mpc.primitives import beaver

    a_hi, a_lo = _limbs(matrix)
    v_hi, v_lo = _limbs(vector.unsqueeze(1))
    ring = lambda u, v: beaver.matmul(u._tensor, v._tensor)  # noqa: E731  (exact: encodings multiplied)
    low = ring(a_lo, v_lo)  # units 2^-64: truncated by 2^16 to 2^-48 (small: |.| <= d 2^32)
    low.encoder = a_lo._tensor.encoder
    low.div_(1 << 16)
    residual = b._tensor.clone()
    residual.share = b._tensor.share.unsqueeze(1) * (1 << 16) - (ring(a_hi, v_hi).share * (1 << 16)
                                                                  + ring(a_hi, v_lo).share + ring(a_lo, v_hi).share
                                                                  + low.share)
    residual.div_(1 << 16)  # 48 -> 32 bits
    residual.encoder = FixedPointEncoder(precision_bits=EXACT_BITS)
    return secure.wrapped(residual.squeeze(1))


def _exactly(value: Any) -> Any:
    """`value` at EXACT_BITS (raised exactly, or lowered from more)."""
    return secure.lowered(secure.raised(value, EXACT_BITS), EXACT_BITS)


def _limbs(value: Any) -> tuple[Any, Any]:
    """A 32-bit shared value as (hi, lo), both 16-bit encodings: value = hi + lo 2^-16."""
    from crypten.encoder import FixedPointEncoder

    hi = secure.lowered(value)
    lo = value - secure.raised(hi, EXACT_BITS)  # |lo| < 2^-15: its 32-bit encoding is lo 2^16 at 16 bits
    lo._tensor.encoder = FixedPointEncoder(precision_bits=secure.PRODUCT_BITS)
    return hi, lo

