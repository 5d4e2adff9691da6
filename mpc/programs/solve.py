"""Solving a secret-shared symmetric positive definite system A x = b inside MPC,
so that only the solution (or nothing) is ever revealed; and the explicit inverse
that steers logistic regression's steps.

`solve` (linear regression's normal equations, condition numbers to ~1e7):
1. Jacobi scaling: A' = S A S, b' = S b with S ~ diag(A)^-1/2 (any shared S gives
   the same x = S y, so S need not be exact); A' has a unit-ish diagonal and
   eigenvalues in (0, 2d]. A penalty's diagonal P (A = a + P) is passed already
   scaled, as S P S, which its caller forms without large encodings: a penalty of
   2^20 times a column's curvature would otherwise meet its 2^-10 scale in a
   product whose encoding nears the ring.
2. A preconditioner X = (A' + SHIFT I)^-1 by Newton–Schulz at 16 bits. The shift
   keeps the 16-bit copy of A' well-conditioned (its rounding, ~2^-17 per entry,
   would otherwise turn eigenvalues below ~2^-14 negative) and X's entries below
   1 / SHIFT, so no product's encoding nears the ring.
3. M = I - A'X, taken exactly at 32 bits (A' in two limbs), has eigenvalues
   SHIFT / (lambda + SHIFT) in [0, 1): A'^-1 = X (I - M)^-1 = X (I + M)(I + M^2)
   (I + M^4)..., `SQUARINGS` factors, each M^(2^j) the 24-bit square of the last
   (`_squared`), every entry at most ~1, applied at 16 bits. Applied to a vector
   (in two 16-bit limbs, products exact but for the low limb's), nothing it
   touches is larger than the solution.
4. A', b' and y are kept at 40 bits (`secure.PRECISE_BITS`): the 32-bit grid's
   rounding of A' alone moved coefficients by ~1e-4 at condition 1e6. From y = 0,
   `REFINEMENTS` + 1 times y += A'^-1 (b' - A'y), the residual taken at 40 bits
   (`residual`: the 32-bit parts' product exactly at 48 bits, the rest by small
   products) and read 2^8 larger at 32 bits for the series, whose result is read
   back: the 16-bit powers make each application of A'^-1 accurate to a few bits
   in the slowest directions, and each refinement multiplies the residual by that
   error (measured: ~2^-8 per refinement at condition 1e6).
5. Every party learns whether A' is too ill-conditioned for the errors it already
   carries (`entry_error` per entry, independent and zero-mean as rounding makes
   them) to leave the solution within ~1e-3: whether every diagonal entry of A'^-1
   (each column's variance inflation factor, bounding every entry of the positive
   definite A'^-1) is below 1e-3 / (sqrt(d) entry_error), its diagonal taken as
   diag(X W), W the series applied to I; where not, which columns pass it (they
   are named in the refusal); and whether every entry of the final residual is
   below RESIDUAL_SHARE entry_error / sqrt(d) (a failed truncation, a
   preconditioner that did not converge, or an A' past `CONDITION_SUPPORTED`):
   per entry, which tells one bit where all are. If not, the job is refused with
   a clear error; nothing is revealed. Each is one batch of comparisons (rounds
   count between banks).

`inverse` (logistic regression's Hessian bound and Hessian, the leverage bound):
the 16-bit Newton–Schulz inverse X <- X (2I - A'X) from X = I / (2d), converging
quadratically once ||I - A'X|| < 1, in log2(d * condition) + 3 steps; refused
(one bit) unless max |I - A'X| < `INVERSE_TOLERANCE` and every |X_ij| < 1e-3 /
(sqrt(d) entry_error). An explicit inverse at 16 bits holds entries to ~2^13 only,
which its callers' damped or regularized matrices keep to.
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
EXACT_BITS = 32
PRECISE_BITS = secure.PRECISE_BITS
RESIDUAL_SHARE = 0.1
"""`solve` refuses unless every |b' - A'y| < RESIDUAL_SHARE entry_error / sqrt(d):
the solution's error from the residual, |A'^-1 r| <= d max diag(A'^-1) |r|, is then
at most a tenth of the 1e-3 the variance inflation limit allows."""
TOLERANCE = 1e-3
CONDITION_INVERTED = 1e5
"""`inverse`'s Newton–Schulz steps suffice to this condition number."""
SHIFT = 2.0**-8
"""`solve`'s preconditioner inverts A' + SHIFT I: its inverse's entries stay below
2^8 (16-bit encodings below 2^24), and the 16-bit copy's rounding (d 2^-17 at
most) is far below the shift up to d ~ 500."""
CONDITION_SUPPORTED = 2.0**24
"""`solve` converges to this condition number of A' (~1.7e7): the product of
(I + M^(2^j)) reaches the slowest direction's eigenvalue 1 - 1 / (SHIFT
condition) after SQUARINGS factors."""
SQUARINGS = math.ceil(math.log2(CONDITION_SUPPORTED * SHIFT)) + 2
REFINEMENTS = 5
"""Simulated: the residual reaches the grid in 3-4 refinements at condition 1e6, 5
at 1e7."""


def steps(d: int, condition: float = CONDITION_INVERTED) -> int:
    """Newton–Schulz steps from I / (2d) for a condition number up to `condition`."""
    return min(NEWTON_STEPS_MAX, int(math.ceil(math.log2(2 * d * condition * 10))) + 1)


@dataclass
class Inverse:
    """A^-1 = S X S: the 16-bit Newton–Schulz inverse X of the scaled A' = S A S."""

    x: Any  # 16 bits
    scale: Any  # S, 16 bits
    scaled: Any  # A', 24 bits

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
    d = int(a.size(0))
    scaled = _scaled(a, scale, scaled_diagonal)
    coarse = secure.lowered(scaled)
    x = _newton_schulz(ctx, coarse, steps(d), phase)
    eye = torch.eye(d, dtype=torch.float64)
    if not (_all_within(ctx, coarse.matmul(x).sub(eye), INVERSE_TOLERANCE)
            and _all_within(ctx, x, TOLERANCE / (math.sqrt(d) * entry_error))):
        raise _ill_conditioned()
    return Inverse(x, scale, secure.lowered(scaled, secure.PRECISION_BITS))


def solve(ctx: Any, a: Any, b: Any, scale: Any, entry_error: float, scaled_diagonal: Any = None,
          columns: list[str] | None = None) -> Any:
    """x with A x = b, A = a + P as in `inverse`. `a` (d x d) and `b` (d) are shared
    (any precision >= 24 bits; 40 keeps the most), `scale` (d, 16 bits)
    approximates diag(A)^-1/2; `entry_error` is the typical error of A' = S A S's
    entries. Refused where too ill-conditioned, naming the `columns` whose
    variance inflation (diag(A'^-1)) passes the limit (every party learns which)."""
    import crypten

    d = int(a.size(0))
    scaled = _at(_scaled(a, scale, scaled_diagonal), PRECISE_BITS)
    eye = torch.eye(d, dtype=torch.float64)
    x = _newton_schulz(ctx, secure.lowered(scaled) + SHIFT * eye, steps(d, (2 * d + SHIFT) / SHIFT),
                       "solving the normal equations")
    chain = [secure.lowered(crypten.cryptensor(eye, precision=EXACT_BITS) - exact_product(_at(scaled, EXACT_BITS), x),
                            secure.PRECISION_BITS)]
    for _ in range(SQUARINGS - 1):
        chain.append(_squared(chain[-1]))
    powers = [secure.lowered(power) for power in chain]
    b_scaled = _at(_times_scale(b, scale), PRECISE_BITS)
    start = _series(powers, crypten.cat([_read_at(b_scaled, EXACT_BITS).unsqueeze(1),
                                         crypten.cryptensor(eye, precision=EXACT_BITS)], dim=1))
    inflation = secure.at_configured(secure.exact_product(x, secure.lowered(start[:, 1:], 8).t()).sum(1))  # diag(XW)
    limit = TOLERANCE / (math.sqrt(d) * entry_error)
    below = secure.less_than_to_all(ctx, inflation, limit)  # (all true: one bit's worth)
    if not below.all():
        raise _ill_conditioned([c for c, fine in zip(columns or [], below) if not fine], limit)
    y = _read_at(_times(x, start[:, :1]), PRECISE_BITS).squeeze(1)
    for step in range(REFINEMENTS):
        correction = _series(powers, _read_at(residual(scaled, b_scaled, y), EXACT_BITS).unsqueeze(1))
        y = y + _read_at(_times(x, correction), PRECISE_BITS).squeeze(1)
        ctx.progress("solving the normal equations", 75 + 5 * (step + 1) / REFINEMENTS)
    tolerance = RESIDUAL_SHARE * entry_error / math.sqrt(d)  # read at 24 bits, the 40-bit residual is 2^16 of itself
    final = _read_at(residual(scaled, b_scaled, y), secure.PRECISION_BITS)
    if not secure.less_than_to_all(ctx, crypten.cat([final, final.neg()]), tolerance * 2**16).all():
        raise FailedPrecondition("solving the normal equations failed in the fixed point (a truncation wrapped); "
                                 "nothing was released, please resubmit the job")
    return secure.mul_mixed(secure.lowered(y, secure.PRECISION_BITS), scale)


def _scaled(a: Any, scale: Any, scaled_diagonal: Any) -> Any:
    """A' = S a S (+ S P S) at a's precision."""
    d = int(a.size(0))
    scaled = _times_scale(_times_scale(a, scale.unsqueeze(1).expand(d, d)), scale.unsqueeze(0).expand(d, d))
    if scaled_diagonal is None:
        return scaled
    diagonal = _diagonal(scaled_diagonal, d)
    return scaled + (diagonal if torch.is_tensor(diagonal) else secure.raised(diagonal, secure.bits(scaled)))


def _times_scale(value: Any, factor: Any) -> Any:
    """value * factor (16 bits or fewer) at value's precision; above 32 bits, with
    no truncation but the last: value = hi (24 bits) + rest (below 2^-24, read at
    24 bits), each product exact (encodings below ~2^40), then both at value's bits."""
    bits = secure.bits(value)
    if bits <= EXACT_BITS:
        return secure.mul_mixed(value, factor)
    hi, rest = _split(value, secure.PRECISION_BITS)
    near = secure.exact_product(hi, factor)
    far = _read_at(secure.exact_product(rest, factor), secure.bits(near) + bits - secure.PRECISION_BITS)
    return _at(near, bits) + _at(far, bits)


def _newton_schulz(ctx: Any, coarse: Any, count: int, phase: str) -> Any:
    """The 16-bit inverse of `coarse` (16 bits, eigenvalues in (0, 2d]) in `count`
    steps from I / (2d)."""
    import crypten

    d = int(coarse.size(0))
    eye = torch.eye(d, dtype=torch.float64)
    x = crypten.cryptensor(eye / (2 * d), precision=secure.PRODUCT_BITS)  # public start, shared form
    for step in range(count):
        x = x.matmul(coarse.matmul(x).neg().add(2 * eye))
        ctx.progress(phase, 40 + 30 * (step + 1) / count)
    return x


def _ill_conditioned(columns: list[str] | None = None, limit: float = 0.0) -> FailedPrecondition:
    if not columns:
        return FailedPrecondition(
            "the normal equations are too ill-conditioned for the fixed point to solve them to 1e-3 (nearly "
            "collinear features?): add regularization (alpha) or drop a feature")
    named = ", ".join(repr(c) for c in columns)
    return FailedPrecondition(
        f"the normal equations are too ill-conditioned to solve to 1e-3: the columns {named} are (nearly) collinear "
        f"(each one's variance inflation factor is above {limit:.3g}); add regularization (alpha) or drop one of them")


def _squared(power: Any) -> Any:
    """power @ power at 24 bits, the right factor in two 16-bit limbs multiplied in
    one product (encodings below 2^40 d), so the chain of squares keeps M's
    eigenvalues near 1 to ~2^-22: each square's rounding, at 16 bits, moved them by
    ~d 2^-17, and an exactly singular system then looked like one of condition
    ~2^20, its variance inflation below the limit."""
    import crypten

    d = int(power.size(1))
    hi, lo = _split(power, secure.PRODUCT_BITS)
    both = secure.exact_product(power, crypten.cat([hi, lo], dim=1), "matmul")  # 40 bits
    shift = secure.PRECISION_BITS - secure.PRODUCT_BITS
    return secure.lowered(both[:, :d] + both[:, d:].div(1 << shift), secure.PRECISION_BITS)


def _series(powers: list[Any], columns: Any) -> Any:
    """(I + P_k) ... (I + P_1)(I + P_0) applied to `columns` (d x m, 32 bits)."""
    for power in powers:
        columns = columns + _times(power, columns)
    return columns


def _times(matrix: Any, columns: Any) -> Any:
    """matrix @ columns at 32 bits: the matrix at 16 bits, the columns (32 bits) in
    two 16-bit limbs multiplied in one product; the high limb's part exact, the
    low one's (small) truncated, so no truncation meets a large encoding."""
    import crypten

    hi, lo = _split(columns, secure.PRODUCT_BITS)
    m = int(columns.size(1))
    both = secure.exact_product(matrix, crypten.cat([hi, lo], dim=1), "matmul")  # one round for both limbs
    return both[:, :m] + both[:, m:].div(1 << 16)


def exact_product(matrix: Any, x: Any) -> Any:
    """matrix @ x at 32 bits, exactly: the matrix (32 bits) in two 16-bit limbs, x
    at 16 bits (entries to ~2^8)."""
    hi, lo = _split(matrix, secure.PRODUCT_BITS)
    return secure.exact_product(hi, x, "matmul") + secure.exact_product(lo, x, "matmul").div(1 << 16)


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


def residual(matrix: Any, b: Any, y: Any) -> Any:
    """b - matrix @ y at 40 bits (all three at 40 bits): the 32-bit parts' product
    exactly (`_near_residual`), the parts beyond 32 bits (below 2^-32) by small
    products against the others' 16-bit copies."""
    m_near, m_rest = _split(matrix, EXACT_BITS)
    y_near, y_rest = _split(y, EXACT_BITS)
    rest = (secure.mul_mixed(m_rest, secure.lowered(y_near).unsqueeze(1), "matmul").squeeze(1)
            + secure.mul_mixed(y_rest.unsqueeze(0), secure.lowered(m_near).t(), "matmul").squeeze(0))
    return _near_residual(m_near, b, y_near) - _read_at(rest, PRECISE_BITS)


def _near_residual(matrix: Any, b: Any, vector: Any) -> Any:
    """b - matrix @ vector at 40 bits (b at 40, the others at 32 bits), the product
    taken exactly at 48 bits: matrix and vector each split in 16-bit limbs (hi +
    lo 2^-16), the limb products summed in the ring with no truncation (where they
    wrap, the wrap cancels against b), and only the small residual truncated."""
    import crypten
    from crypten.mpc.primitives import beaver

    d = int(matrix.size(0))
    a_hi, a_lo = _split(matrix, secure.PRODUCT_BITS)
    v_hi, v_lo = _split(vector.unsqueeze(1), secure.PRODUCT_BITS)
    # every limb product in one round (exact: encodings multiplied): [a_hi; a_lo] @ [v_hi | v_lo]
    ring = beaver.matmul(crypten.cat([a_hi, a_lo])._tensor, crypten.cat([v_hi, v_lo], dim=1)._tensor)
    hh, hl, lh, ll = ring[:d, :1], ring[:d, 1:], ring[d:, :1], ring[d:, 1:]
    ll.encoder = a_lo._tensor.encoder
    ll.div_(1 << 16)  # units 2^-64: truncated by 2^16 to 2^-48 (small: |.| <= d 2^32)
    out = b._tensor.clone()
    out.share = b._tensor.share.unsqueeze(1) * (1 << (48 - PRECISE_BITS)) - (
        hh.share * (1 << 16) + hl.share + lh.share + ll.share)
    out.div_(1 << (48 - PRECISE_BITS))  # 48 -> 40 bits
    return secure.wrapped(out.squeeze(1))


def _at(value: Any, bits: int) -> Any:
    """`value` at `bits` (raised exactly, or lowered from more)."""
    return secure.lowered(secure.raised(value, bits), bits)


def _read_at(value: Any, bits: int) -> Any:
    """The same shares read at `bits` fractional bits: value * 2^(its bits - bits),
    exactly (a power of two moved into the encoding, no truncation)."""
    from crypten.encoder import FixedPointEncoder

    out = value.clone()
    out._tensor.encoder = FixedPointEncoder(precision_bits=bits)
    return out


def _split(value: Any, bits: int) -> tuple[Any, Any]:
    """A shared value at more than `bits` as (hi, rest): hi at `bits`, and the rest
    (below 2^-bits) read at `bits`, i.e. scaled by 2^(value's bits - bits): value =
    hi + rest 2^-(value's bits - bits). At 16 bits, the limbs of exact products."""
    hi = secure.lowered(value, bits)
    return hi, _read_at(value - secure.raised(hi, secure.bits(value)), bits)

