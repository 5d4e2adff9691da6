"""model.linear_regression: ridge (or ordinary least squares, alpha = 0) with an
intercept, fitted from secret-shared sufficient statistics and solved inside MPC.

Horizontal: the parties' aggregates of z = (x - a) / c (the public column frame of
the statistics programs) give the pooled covariance of [features, label] at 32
bits; the normal equations in z units, (C_xx + diag(alpha / (n c_j^2))) g = C_xy,
are solved under encryption (models/solve.py), and the coefficient of feature j in
the data's own units is g_j c_label / c_j. Vertical: each party standardizes its
own columns locally (exact); the correlations between parties' columns come from
a secure matmul (stats.vertical.cross_correlations), the label column's included,
so the label holder's labels never leave it; the standardized equations
(R_xx + diag(alpha / ((n-1) s_j^2))) g = r_xy are solved the same way and
b_j = g_j s_label / s_j.

Revealed to the receivers (unless keep_shared): the coefficients, the intercept,
the features' and the label's means and standard deviations (the standardization
used), and R^2 on the training rows. With keep_shared, only R^2 is revealed; each
party keeps its share of the model. Public to every party, beyond the statistics
programs' frames: one bit that the system was well-conditioned enough to solve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gateway.errors import InvalidArgument
from mpc.programs import secure
from mpc.programs.context import JobContext, Result
from mpc.programs.models.solve import _product, solve
from mpc.programs.stats import horizontal, vertical
from mpc.programs.stats.request import validate_local, validate_shape

HORIZONTAL_ENTRY_ERROR = 2.0**-22
"""Typical error of the scaled normal equations' entries from 32-bit aggregates, a
16-bit preconditioner and 24-bit products (measured ~1e-7)."""
MIN_ENTRY_ERROR = 2.0**-22
"""Vertical systems: a quarter of the cross-party correlations' error bound
(stats.vertical.cross_correlations; measured errors are ~1/4 of it), at least this."""


def linear_regression(ctx: JobContext) -> dict[str, Result] | None:
    secure.configure()
    label = str(ctx.parameters["label"])
    alpha = float(ctx.parameters.get("alpha", 0.0))
    validate_local(ctx)
    rows = [int(r) for r in secure.public(ctx, ctx.table.shape[0])]
    validate_shape(ctx, rows)
    if ctx.partitioning == "horizontal":
        return _horizontal(ctx, label, alpha, sum(rows))
    return _vertical(ctx, label, alpha, rows[0])


def _horizontal(ctx: JobContext, label: str, alpha: float, n: int) -> dict[str, Result] | None:
    columns = ctx.layout[0].columns
    if label not in columns:
        raise InvalidArgument(f"the label column {label!r} is not among the job's columns {columns}")
    features = [c for c in columns if c != label]
    order = [*features, label]
    x = ctx.table[:, [columns.index(c) for c in order]]
    d = len(features)
    if n <= d + 1:
        raise InvalidArgument(f"{n} rows cannot fit {d} features and an intercept: more features than rows")
    ctx.progress("fixing each column's frame", 5)
    shift, scale = horizontal.column_frame(ctx, x, n, order)
    ctx.progress("pooled covariance", 20)
    moments = horizontal.pooled_moments(ctx, x, n, (shift, scale), order, True, horizontal.CORRELATION_FLOOR)
    inverse = horizontal.inverse_std(moments)  # 1 / (16 std(z)), 16 bits
    ridge = alpha / (n * scale[:d] ** 2)  # public: alpha in the data's units, over n, in z units
    cov = moments.biased
    a = cov[:d, :d] + torch.diag(torch.from_numpy(ridge))
    b = cov[:d, d]
    precondition = _preconditioner(inverse[:d].mul(16), ridge)
    gamma = solve(ctx, a, b, precondition, HORIZONTAL_ENTRY_ERROR)
    # R^2 = explained / var(y); 1 / var(y) = 256 inverse_y^2 (inverse_y = 1 / (16 std(y)), 16 bits)
    explained = _explained(a, b, gamma, ridge_public=ridge)
    fit = secure.mul_mixed(secure.mul_mixed(explained, inverse[d]), inverse[d]).mul(256)
    values = [gamma, moments.mean, moments.variance]
    opened = _release(ctx, values, fit)
    if opened is None:
        return None
    if opened["values"] is None:  # keep_shared: metrics only
        return _model(features, label, None, None, None, opened["r2"])
    g, mean_z, var_z = opened["values"]
    means = shift + scale * mean_z
    stds = scale * np.sqrt(np.maximum(var_z, 0) * n / (n - 1))
    coefficients = g * scale[d] / scale[:d]
    return _model(features, label, coefficients, means, stds, opened["r2"])


def _vertical(ctx: JobContext, label: str, alpha: float, n: int) -> dict[str, Result] | None:
    vertical.check_keys(ctx)
    holders = [entry.rank for entry in ctx.layout if label in entry.columns]
    if len(holders) != 1:
        raise InvalidArgument(f"the label column {label!r} must be held by exactly one party (held by {len(holders)})")
    names = [c for entry in ctx.layout for c in entry.columns]
    widths = [len(entry.columns) for entry in ctx.layout]
    d = len(names) - 1
    if n <= d + 1:
        raise InvalidArgument(f"{n} rows cannot fit {d} features and an intercept: more features than rows")
    ctx.progress("cross-party correlations", 10)
    x = ctx.table - ctx.table[0]
    sigma = x.std(axis=0, ddof=1)
    local = {
        "corr": np.corrcoef(x, rowvar=False).reshape(x.shape[1], x.shape[1]) if x.shape[1] > 1 else np.ones((1, 1)),
        "ridge": alpha / ((n - 1) * sigma**2),
    }
    cross, error = vertical.cross_correlations(ctx, n, widths, names)
    correlation = _assemble(ctx, widths, local["corr"], cross)
    ridge = _by_column(ctx, widths, local["ridge"])
    position = names.index(label)
    keep = [i for i in range(d + 1) if i != position]
    a = correlation[keep][:, keep] + _diag(ridge[keep])
    b = correlation[keep][:, position]
    precondition = secure.lowered(_by_column(ctx, widths, 1 / np.sqrt(1 + local["ridge"]))[keep])
    gamma = solve(ctx, a, b, precondition, max(error / 4, MIN_ENTRY_ERROR))
    fit = _explained(a, b, gamma, ridge_shared=ridge[keep])  # var(y) = 1: standardized
    means = _by_column(ctx, widths, secure.split(ctx.table.mean(axis=0)), axis=1)
    stds = _by_column(ctx, widths, secure.split(sigma), axis=1)
    opened = _release(ctx, [gamma, means, stds], fit)
    if opened is None:
        return None
    if opened["values"] is None:  # keep_shared: metrics only
        return _model([names[i] for i in keep], label, None, None, None, opened["r2"])
    g, means, stds = opened["values"][0], secure.join(opened["values"][1]), secure.join(opened["values"][2])
    coefficients = g * stds[position] / stds[keep]
    order = [*keep, position]
    return _model([names[i] for i in keep], label, coefficients, means[order], stds[order], opened["r2"])


def _preconditioner(inverse_std: Any, ridge: np.ndarray) -> Any:
    """~ diag(C + ridge)^-1/2 (16 bits): 1/std where the ridge is small, else the
    public 1/sqrt(ridge), so the scaled diagonal stays within [1, 2]."""
    big = ridge > 0.25
    if not big.any():
        return inverse_std
    keep = torch.from_numpy((~big).astype(np.float64))
    public = torch.from_numpy(np.where(big, 1 / np.sqrt(np.where(big, ridge, 1)), 0.0))
    return inverse_std.mul(keep).add(public)


def _explained(a: Any, b: Any, gamma: Any, ridge_public: np.ndarray | None = None, ridge_shared: Any = None) -> Any:
    """The variance the fit explains on the training rows, 2 g.b - g.C g with
    C = A - ridge, in the system's units (R^2 once divided by var(y))."""
    applied = _product(secure.lowered(a, secure.PRECISION_BITS), gamma)
    if ridge_public is not None:
        applied = applied - gamma.mul(torch.from_numpy(ridge_public))
    if ridge_shared is not None:
        applied = applied - secure.mul_mixed(gamma, secure.lowered(ridge_shared))
    twice = secure.lowered(b, secure.PRECISION_BITS).mul(2) - applied
    return secure.mul_mixed(twice, secure.lowered(gamma)).sum()


def _release(ctx: JobContext, values: list[Any], fit: Any) -> dict[str, Any] | None:
    if ctx.parameters.get("keep_shared"):
        ctx.keep_shares({"coefficients_z": values[0], "mean": values[1], "scale": values[2]})
        opened = secure.open_to_receivers(ctx, [fit])
        return None if opened is None else {"values": None, "r2": float(opened[0])}
    opened = secure.open_to_receivers(ctx, [*values, fit])
    return None if opened is None else {"values": opened[:-1], "r2": float(opened[-1])}


def _model(features: list[str], label: str, coefficients: np.ndarray | None, means: np.ndarray | None,
           stds: np.ndarray | None, r2: float) -> dict[str, Result]:
    out = {"r2": Result(np.array([r2]), ["r2"])}
    if coefficients is None or means is None or stds is None:
        return out
    intercept = means[-1] - float(coefficients @ means[:-1])
    return {
        "coefficients": Result(coefficients, features),
        "intercept": Result(np.array([intercept]), [label]),
        "feature_means": Result(means[:-1], features),
        "feature_stds": Result(stds[:-1], features),
        "label_mean": Result(means[-1:], [label]),
        "label_std": Result(stds[-1:], [label]),
        **out,
    }


def _by_column(ctx: JobContext, widths: list[int], local: np.ndarray, axis: int = 0) -> Any:
    """Each party's array over its own columns (along `axis`), shared by it and
    joined in rank order."""
    import crypten

    parts = []
    for r, width in enumerate(widths):
        shape = list(local.shape)
        shape[axis] = width
        parts.append(secure.share_from(ctx, r, local if r == ctx.rank else None, tuple(shape)))
    return crypten.cat(parts, dim=axis)


def _assemble(ctx: JobContext, widths: list[int], own: np.ndarray, cross: dict[tuple[int, int], Any]) -> Any:
    """The full correlation matrix, shared: own blocks from their owners, cross blocks from MPC."""
    import crypten

    blocks: list[list[Any]] = [[None] * len(widths) for _ in widths]
    for r, width in enumerate(widths):
        blocks[r][r] = secure.share_from(ctx, r, own if r == ctx.rank else None, (width, width))
    for (a, b), block in cross.items():
        blocks[a][b], blocks[b][a] = block, block.t()
    return crypten.cat([crypten.cat(row, dim=1) for row in blocks], dim=0)


def _diag(vector: Any) -> Any:
    d = int(vector.size(0))
    return vector.unsqueeze(1).expand(d, d) * torch.eye(d, dtype=torch.float64)
