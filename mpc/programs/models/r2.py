"""R^2 of a linear model under encryption: on the training rows (from the normal
equations themselves), centered for a model through the origin, and on held-out
rows; only the number itself is ever opened, to the result receivers.

Held-out R^2 is scikit-learn's r2_score on the held-out rows: 1 - SSE / SST with
SST about the held-out rows' own mean. The held-out rows' moments are computed as
the training rows' are (horizontal: pooled aggregates in the same public frame;
vertical: each party's own columns exactly, cross-party products by a secure
matmul), and SSE = w^T M w with w = (-g, 1) over (features, label) and M the
held-out rows' second moments about the training means, in the training units.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.errors import FailedPrecondition
from mpc.programs import secure
from mpc.programs.models import blocks
from mpc.programs.solve import inverse, product
from mpc.programs.stats import horizontal, vertical

MAX_LABEL_FACTOR = 64
"""Through the origin: the largest mean(y^2) / var(y) = F for which R^2 stays well
within 1e-3. R^2's error grows with F; measured (3 parties, 600 rows, 8 runs each):
sd 0.005e-3 at F = 1, 0.04e-3 at F = 30, 0.1e-3 at F = 100."""
MAX_INVERSE_SPREAD = 256
"""Vertical held-out R^2: the held-out label's variance may be at most this many
times smaller than the training rows' (in their units)."""


FORM_BITS = 28
"""The pooled (horizontal) R^2 is 1 - (var(y) - explained) / var(y) with var(y) ~1e-2
in the frame's units (through the origin, where F = mean(y^2) / var(y), a part 1 / F
of the label's mean square): at 24 bits the form's roundings cost R^2 ~1e-4 F, at
28 bits a sixteenth of that. Its products are matrix-vector products whose outputs
are ~C g ~ b, at most 1/4 for moments of z (|z| <= 1/2): encodings below 2^42."""


def explained(second: Any, b: Any, gamma: Any, bits: int = secure.PRECISION_BITS) -> Any:
    """The variance the fit explains on the training rows, 2 g.b - g.C g with C the
    features' unpenalized second moments (the form is second order in g's error), in
    the system's units (R^2 once divided by var(y)), at `bits`."""
    twice = secure.lowered(b, bits).mul(2) - product(secure.lowered(second, bits), gamma)
    return _dot(twice, gamma, bits)


def _dot(u: Any, v: Any, bits: int = secure.PRECISION_BITS) -> Any:
    """u . v at `bits` (24 by default), v in two limbs (secure products truncate by
    the lower precision: a 16-bit v would cost 1.5e-5 |u| per term, and in the
    frame's units |u| can exceed var(y) tenfold)."""
    return product(secure.lowered(u, bits).reshape(1, -1), v).sum()


def inverse_variance(variance: Any, inverse_std: Any) -> Any:
    """1 / var at 20 bits from the statistics' 16-bit 1 / (16 std) (error ~1e-4,
    CrypTen's inv_sqrt), refined by one Newton step: with the guess g = 256
    inverse_std^2 (kept at 12 bits), 1 / var = g (1 + d) + O(d^2), d = 1 - var g.
    var enters d at its full 32 bits (at 24, a var of 3e-4 would carry 2e-4 relative
    error); var g ~ 1, so that product's encoding stays near 2^44, and d is small,
    so g d stays far from the ring whatever var is."""
    guess = secure.lowered(secure.mul_mixed(secure.raised(inverse_std, secure.PRECISION_BITS), inverse_std).mul(256), 12)
    residual = secure.lowered(secure.mul_mixed(variance, guess), secure.PRECISION_BITS).neg().add(1)
    return secure.lowered(secure.raised(guess, secure.PRECISION_BITS) + secure.mul_mixed(residual, guess), 20)


# -- through the origin ---------------------------------------------------------------


def label_factor(ctx: JobContext, label: str, real: np.ndarray, n: int, square: Any, scale: Any) -> Any:
    """F = mean(y^2) / var(y) of the pooled labels (horizontal), 16 bits: `real` is
    this party's y / c, `square` the shared mean of (y / c)^2 (32 bits), `scale` s ~
    its inverse square root (16 bits). var = square - mean^2 (32 bits), and after one
    public bit that F <= MAX_LABEL_FACTOR, F = (square s^2) x with x ~ 1 / (var s^2)
    from a 1 x 1 Newton–Schulz inverse refined once at 24 bits. Every factor is ~1
    or ~F, so none loses bits to the frame's units (square itself can be ~1e-3: at
    16 bits that cost F 2%)."""
    mean = secure.total(secure.share_each(ctx, np.array([real.sum() / n]), precision=secure.AGGREGATE_BITS))
    variance = square.reshape(1) - horizontal._outer(mean, 1).reshape(1)
    margin = secure.times_integers(variance, [MAX_LABEL_FACTOR]) - square.reshape(1)
    if not secure.greater_than_to_all(ctx, margin, 0).all():
        raise _offset_label(label)
    inv = inverse(ctx, variance.reshape(1, 1), scale.reshape(1), 2.0**-30, phase="the label's spread")
    x = inv.x.reshape(1)  # 16 bits, up to F; from var s^2 at 16 bits: 5e-4 relative at F = 64
    residual = secure.mul_mixed(inv.scaled.reshape(1), x).neg().add(1)  # 1 - (var s^2) x at 24 bits
    refined = secure.lowered(secure.raised(x, secure.PRECISION_BITS) + secure.mul_mixed(residual, x))
    s = inv.scale.reshape(1)
    root = secure.mul_mixed(secure.lowered(square.reshape(1), secure.PRECISION_BITS), s)  # square s ~ sqrt(square)
    ratio = secure.lowered(secure.mul_mixed(root, s), 20)  # square s^2 ~ 1
    return secure.lowered(secure.mul_mixed(ratio, refined))


def holder_factor(ctx: JobContext, label: str, holder: int, n: int) -> Any:
    """F = mean(y^2) / var(y), computed exactly by the label holder (vertical) and
    shared at 16 bits, after one public bit that F <= MAX_LABEL_FACTOR."""
    factor = None
    if ctx.rank == holder:
        y = ctx.table[:n, ctx.layout[holder].columns.index(label)]
        variance = float(np.var(y - y.mean()))
        factor = float(np.mean(y**2)) / variance if variance > 0 else np.inf
    return _from_holder(ctx, holder, factor, MAX_LABEL_FACTOR, _offset_label(label))


def _from_holder(ctx: JobContext, holder: int, value: float | None, bound: float, refusal: FailedPrecondition) -> Any:
    """A scalar the label holder computed (None elsewhere), shared at 16 bits; every
    party learns one bit of it, that it is at most `bound` (else `refusal`)."""
    if not secure.public(ctx, value is not None and value <= bound)[holder]:
        raise refusal
    return secure.share_from(ctx, holder, None if value is None else np.array([value]), (1,),
                             precision=secure.PRODUCT_BITS)


def _offset_label(label: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the label {label!r} lies too far from zero for its spread (mean^2 > {MAX_LABEL_FACTOR - 1} x variance): the "
        "R^2 of a model without an intercept cannot be computed to 1e-3; fit with an intercept (fit_intercept true)")


def centered(uncentered: Any, factor: Any) -> Any:
    """1 - (1 - R^2_0) F: the unexplained fraction at 20 bits so the product with
    F (<= 2^8, 16 bits) stays far from the ring."""
    return _one_minus(secure.lowered(uncentered.neg().add(1), 20), factor)


def _one_minus(high: Any, low: Any) -> Any:
    return secure.mul_mixed(high, low).neg().add(1).sum()


# -- held-out rows ------------------------------------------------------------------


def _weights(gamma: Any) -> Any:
    """w = (-g, 1) at gamma's precision: the residual's weights over (features, label)."""
    import crypten

    return crypten.cat([gamma.neg(), gamma[:1].mul(0).add(1)])


def _quadratic(matrix: Any, w: Any) -> Any:
    """w^T M w, M at 24 bits."""
    return _dot(product(secure.lowered(matrix, secure.PRECISION_BITS), w), w)


def _squared(value: Any) -> Any:
    return _dot(value.reshape(1), value.reshape(1))


def horizontal_holdout(ctx: JobContext, label: str, x_test: np.ndarray, n_test: int,
                       frame: tuple[np.ndarray, np.ndarray], order: list[str], gamma: Any, train_mean: Any) -> Any:
    """R^2 on the pooled held-out rows (columns in `order`, the label last), in the
    training rows' public frame; `train_mean` the training means of z (32 bits)."""
    d = len(order) - 1
    moments = horizontal.pooled_moments(ctx, x_test, n_test, frame, order)
    if not secure.greater_than_to_all(ctx, moments.variance[d : d + 1], horizontal.CORRELATION_FLOOR).all():
        raise FailedPrecondition(f"the held-out rows' label {label!r} varies too little relative to its range for "
                                 "their R^2 to be computed to 1e-3: hold out more rows (holdout)")
    w = _weights(gamma)
    shift = secure.lowered(moments.mean - train_mean, secure.PRECISION_BITS)  # held-out means about the training's
    error = _quadratic(moments.biased, w) + _squared(_dot(shift, w))
    variance = moments.variance[d : d + 1]
    inverse_y = horizontal.inverse_std(dataclasses.replace(moments, variance=variance))
    return _one_minus(secure.lowered(error, secure.PRECISION_BITS), inverse_variance(variance, inverse_y))


def vertical_holdout(ctx: JobContext, label: str, held: np.ndarray, widths: list[int], names: list[str],
                     keep: list[int], position: int, gamma: Any, mean: np.ndarray, sigma: np.ndarray) -> Any:
    """R^2 on the held-out rows (`held`: this party's columns), standardized with
    the training rows' `mean` and `sigma`. With a = s_test / s and
    b = (mean_test - mean) / s per column (each party's own, exact), the held-out
    second moments are a_i a_j R_test,ij (n-1)/n + b_i b_j, R_test their
    correlations (own blocks exact, cross blocks by secure matmul)."""
    n_test = held.shape[0]
    test_sigma = (held - held[0]).std(axis=0, ddof=1)
    cross, _ = vertical.cross_correlations(dataclasses.replace(ctx, table=held), n_test, widths, names)
    own = np.atleast_2d(np.corrcoef(held, rowvar=False)) if held.shape[1] > 1 else np.ones((1, 1))
    order = [*keep, position]
    correlation = blocks.assemble(ctx, widths, own, cross)[order][:, order]
    a = blocks.by_column(ctx, widths, test_sigma / sigma)[order]
    b = blocks.by_column(ctx, widths, (held.mean(axis=0) - mean) / sigma)[order]
    w = _weights(gamma)
    scaled = secure.mul_mixed(w, secure.lowered(a))
    error = _quadratic(correlation, scaled).mul((n_test - 1) / n_test) + _squared(_dot(b, w))
    return _one_minus(secure.lowered(error, 20), _inverse_spread(ctx, label, held, mean, sigma))


def _inverse_spread(ctx: JobContext, label: str, held: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> Any:
    """1 / var(u_y) of the held-out rows (the label standardized by the training
    rows), computed by the label holder and shared at 16 bits, after one public bit
    that it is at most MAX_INVERSE_SPREAD."""
    holder = next(e.rank for e in ctx.layout if label in e.columns)
    value = None
    if ctx.rank == holder:
        column = ctx.layout[holder].columns.index(label)
        variance = float(np.var((held[:, column] - mean[column]) / sigma[column]))
        value = 1 / variance if variance > 0 else np.inf
    return _from_holder(ctx, holder, value, MAX_INVERSE_SPREAD, FailedPrecondition(
        f"the held-out rows' label {label!r} varies too little for their R^2 to be computed to 1e-3: hold out more "
        "rows (holdout)"))
