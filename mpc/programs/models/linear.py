"""model.linear_regression: ridge (or ordinary least squares, alpha = 0), with an
intercept or through the origin, fitted from secret-shared sufficient statistics
and solved inside MPC.

Horizontal: the parties' aggregates of z = (x - a) / c (the public column frame of
the statistics programs) give the pooled covariance of [features, label], added a
second time at 40 bits for the solve; the normal equations in z units,
(C_xx + diag(alpha / (n c_j^2))) g = C_xy, are solved under encryption
(mpc/programs/solve.py), and the coefficient of feature j in the data's own units is
g_j c_label / c_j. Vertical: each party standardizes its own columns locally
(exact); the correlations between parties' columns come from a secure matmul
(stats.vertical.cross_correlations, at 40 bits), the label column's included,
so the label holder's labels never leave it; the standardized equations
(R_xx + diag(alpha / ((n-1) s_j^2))) g = r_xy are solved the same way and
b_j = g_j s_label / s_j.

Revealed to the receivers (unless keep_shared): the coefficients, the intercept,
the features' and the label's means and standard deviations (the standardization
used), R^2 on the training rows and, with `holdout` (a fraction of the rows set
aside, default none), R^2 on the held-out rows (models/r2.py). With keep_shared,
only the R^2s are revealed; each party keeps its share of the model. Vertical
with own_coefficients: each party receives its own features' coefficients and
its part of the intercept (`_own_part`). Public to every party, beyond the
statistics programs' frames (horizontal: each column's frame tightened by a public
2^j until var(z) >= 1/16, so the binade of each column's pooled variance within its
range's frame): the held-out row counts, and one bit that the system was
well-conditioned enough to solve (every feature's variance inflation factor below
1e-3 / (sqrt(d) ENTRY_ERROR): 3.8e5 at d = 8, condition numbers to ~2e6 to 6e6);
where it was not, which features are above it (named in the refusal).

Without an intercept (fit_intercept = false): each party appends the mirror image
of its rows, (-x, -y), locally. The mirrored data has mean zero, so the fit with
an intercept on it is the fit through the origin on the data (intercept exactly
zero, the penalty doubled with the rows), and every step above applies unchanged.
Its R^2 is the uncentered one, 1 - SSE / sum y^2; scikit-learn's (centered) R^2 is
1 - (1 - R^2_0) F with F = mean(y^2) / var(y), computed under encryption
(horizontal) or by the label holder (vertical). F amplifies R^2_0's error, so a
label with mean^2 above (r2.MAX_LABEL_FACTOR - 1) var(y) is refused (every party
learns that one bit). Revealed: the coefficients, the intercept (zero) and R^2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LinearParameters
from mpc.errors import InvalidArgument
from mpc.programs import leverage, secure
from mpc.programs.models import blocks, holdout, influence, r2
from mpc.programs.solve import solve
from mpc.programs.stats import horizontal, vertical
from mpc.programs.stats.request import party_rows

ENTRY_ERROR = 2.0**-30
"""The error budget per entry of the scaled normal equations, as solve's refusal
test uses it. The entries carry ~2^-37 (horizontal: 40-bit aggregates in a frame
tightened to var(z) >= 1/16; vertical: cross-party correlations in two limbs,
divided to 40 bits) and the 40-bit solve adds about as much; measured over 60
random systems (d = 2 to 15, condition 1e4 to 2e7, 2 parties, both partitionings)
a standardized coefficient's error stays below 4.3e-10 times the largest variance
inflation factor (3.6e-11 times it times 1 + sum |g|), so at the limit this
budget sets, 1e-3 / (sqrt(d) 2^-30) (5.4e5 at d = 4, 3.8e5 at d = 8), errors are
a third of the documented bound at most (largest seen: 0.34 of it)."""
VARIANCE = 1 / 16
"""Horizontal: each column's frame is tightened until var(z) >= this, so the
aggregates' error is at most 2^4 of their grid's in a standardized entry (in the
range's frame var(z) is ~1/500 for normal data: 2^9)."""
SCALE_BITS = 12
"""Horizontal: S = 1/std(z) <= 4 at 12 bits, so S a S's products (a in limbs)
keep their encodings below 2^44 (CrypTen's truncation then fails once in ~2^19
elements, and a failure is refused, not released); any S gives the same solution."""
RIDGE_CAP = 2.0**20
"""The largest penalty taken, in units of a standardized column's curvature (vertical:
(n - 1) s_j^2; horizontal: n var(z_j) <= n / 4, so at least 2^22 of it): a larger
alpha is a valid request for a smaller model, and a coefficient under this penalty
is within 2.4e-7 of zero in standard deviations either way, far inside the
documented accuracy."""
HOLDOUT = 0.0
"""The closed form has nothing to tune or stop early: by default every row trains."""


def linear_regression(ctx: JobContext) -> dict[str, Result] | None:
    secure.configure()
    label = ctx.settings(LinearParameters).label
    alpha = ctx.settings(LinearParameters).alpha
    party_rows(ctx)
    test = holdout.mask(ctx, ctx.table.shape[0], HOLDOUT)
    counts = [(int(a), int(b)) for a, b in secure.public(ctx, (int((~test).sum()), int(test.sum())))]
    n, n_test = (sum(a for a, _ in counts), sum(b for _, b in counts)) if ctx.partitioning == "horizontal" else counts[0]
    holdout.check(ctx, n_test, HOLDOUT)
    held = ctx.table[test] if n_test else None
    train = ctx.table[~test]
    origin = not ctx.settings(LinearParameters).fit_intercept
    if origin:  # see the module docstring: the fit with an intercept on the data and its mirror image
        train, alpha, n = np.vstack([train, -train]), 2 * alpha, 2 * n
    ctx = dataclasses.replace(ctx, table=train, keys=None)
    if ctx.partitioning == "horizontal":
        return _horizontal(ctx, label, alpha, n, origin, held, n_test)
    return _vertical(ctx, label, alpha, n, origin, held)


def _enough_rows(n: int, d: int, origin: bool) -> None:
    rows, needed = (n // 2, d) if origin else (n, d + 1)
    if rows <= needed:
        what = "" if origin else " and an intercept"
        raise InvalidArgument(f"{rows} rows cannot fit {d} features{what}: more features than rows")


def _horizontal(ctx: JobContext, label: str, alpha: float, n: int, origin: bool, held: np.ndarray | None,
                n_test: int) -> dict[str, Result] | None:
    columns = ctx.layout[0].columns
    if label not in columns:
        raise InvalidArgument(f"the label column {label!r} is not among the job's columns {columns}")
    features = [c for c in columns if c != label]
    order = [*features, label]
    x = ctx.table[:, [columns.index(c) for c in order]]
    x_test = held[:, [columns.index(c) for c in order]] if held is not None else np.zeros((0, len(order)))
    d = len(features)
    _enough_rows(n, d, origin)
    ctx.progress("fixing each column's frame", 5)
    frame = horizontal.column_frame(ctx, np.vstack([x, x_test]), n + n_test, order)  # held-out rows inside it
    ctx.progress("pooled covariance", 20)
    (shift, scale), moments = horizontal.tightened_moments(ctx, x, n, frame, order, horizontal.CORRELATION_FLOOR,
                                                           target=VARIANCE)
    inverse = horizontal.inverse_std(moments)  # 1 / (16 std(z)), 16 bits
    ridge = np.minimum(alpha / (n * scale[:d] ** 2), RIDGE_CAP)  # public: alpha in the data's units, over n, in z units
    precise = horizontal.pooled_moments(ctx, x, n, (shift, scale), order, floor=0.0, bits=secure.PRECISE_BITS).biased
    precondition, small, scaled_ridge = _preconditioner(inverse[:d].mul(16), ridge)
    a = precise[:d, :d] + torch.diag(torch.from_numpy(small))
    gamma = solve(ctx, a, precise[:d, d], secure.lowered(precondition, SCALE_BITS), ENTRY_ERROR, scaled_ridge,
                  features)
    # R^2 = explained / var(y)
    cov = moments.biased
    explained = r2.explained(cov[:d, :d], cov[:d, d], gamma, r2.FORM_BITS)
    inverse_y = secure.lowered(r2.inverse_variance(moments.variance[d : d + 1], inverse[d : d + 1]))
    fit = secure.mul_mixed(explained, inverse_y).sum()
    if origin:
        real = x[: len(x) // 2, d] / scale[d]
        fit = r2.centered(fit, r2.label_factor(ctx, label, real, n // 2, moments.variance[d], inverse[d].mul(16)))
    metrics = {"r2": fit}
    if n_test:
        ctx.progress("held-out R^2", 85)
        metrics["r2_holdout"] = r2.horizontal_holdout(ctx, label, x_test, n_test, (shift, scale), order, gamma,
                                                      moments.mean)
    sizes = [int(size) for size in secure.public(ctx, len(x))]  # kept shared too: the R^2s are released
    rows = secure.stacked_rows(ctx, (x - shift) / scale, sizes, secure.PRODUCT_BITS)
    influence.refuse_influential_rows(ctx, influence.standardized(rows, moments.mean, inverse.mul(16)), n,
                                      leverage.limit(ctx), horizontal.correlation(moments), mirrored=origin)
    values = [gamma, moments.mean, moments.variance]
    opened = _release(ctx, values, metrics)
    if opened is None:
        return None
    if opened["values"] is None:  # keep_shared: metrics only
        return model_results(features, label, None, None, None, opened["metrics"])
    g, mean_z, var_z = opened["values"]
    means = shift + scale * mean_z
    stds = scale * np.sqrt(np.maximum(var_z, 0) * n / (n - 1))
    coefficients = g * scale[d] / scale[:d]
    return model_results(features, label, coefficients, means, stds, opened["metrics"], origin)


def _vertical(ctx: JobContext, label: str, alpha: float, n: int, origin: bool,
              held: np.ndarray | None) -> dict[str, Result] | None:
    holders = [entry.rank for entry in ctx.layout if label in entry.columns]
    if len(holders) != 1:
        raise InvalidArgument(f"the label column {label!r} must be held by exactly one party (held by {len(holders)})")
    names = [c for entry in ctx.layout for c in entry.columns]
    widths = [len(entry.columns) for entry in ctx.layout]
    d = len(names) - 1
    _enough_rows(n, d, origin)
    ctx.progress("cross-party correlations", 10)
    x = ctx.table - ctx.table[0]
    sigma = x.std(axis=0, ddof=1)
    ridge = np.minimum(alpha / ((n - 1) * sigma**2), RIDGE_CAP)  # each owner's own, exact
    scale = secure.on_grid(1 / np.sqrt(1 + ridge), secure.PRODUCT_BITS)  # S as it is shared: S P S exactly below
    local = {
        "corr": np.corrcoef(x, rowvar=False).reshape(x.shape[1], x.shape[1]) if x.shape[1] > 1 else np.ones((1, 1)),
        "scale": scale, "scaled_ridge": ridge * scale**2,
    }
    cross, error = vertical.cross_correlations(ctx, n, widths, names, precise=True)
    correlation = blocks.assemble(ctx, widths, local["corr"], cross, precision=secure.PRECISE_BITS)
    position = names.index(label)
    keep = [i for i in range(d + 1) if i != position]
    b = correlation[keep][:, position]
    precondition = blocks.by_column(ctx, widths, local["scale"], precision=secure.PRODUCT_BITS)[keep]
    scaled_ridge = blocks.by_column(ctx, widths, local["scaled_ridge"], precision=secure.AGGREGATE_BITS)[keep]
    gamma = solve(ctx, correlation[keep][:, keep], b, precondition, max(error, ENTRY_ERROR), scaled_ridge,
                  [names[i] for i in keep])
    metrics = {"r2": r2.explained(correlation[keep][:, keep], b, gamma)}  # var(y) = 1: standardized
    if origin:
        metrics["r2"] = r2.centered(metrics["r2"], r2.holder_factor(ctx, label, holders[0], n // 2))
    if held is not None:
        ctx.progress("held-out R^2", 85)
        metrics["r2_holdout"] = r2.vertical_holdout(ctx, label, held, widths, names, keep, position, gamma,
                                                    ctx.table.mean(axis=0), sigma)
    spread = ctx.table.std(axis=0)  # every party's standardized columns, the label's too (kept shared: the R^2s)
    rows = secure.stacked_columns(ctx, (ctx.table - ctx.table.mean(axis=0)) / np.where(spread > 0, spread, 1),
                                  widths, secure.PRODUCT_BITS)  # population: V^T V / n is the correlation matrix
    influence.refuse_influential_rows(ctx, rows, n, leverage.limit(ctx), correlation, mirrored=origin,
                                      own=ctx.table)
    means = blocks.by_column(ctx, widths, secure.split(ctx.table.mean(axis=0)), axis=1)
    stds = blocks.by_column(ctx, widths, secure.split(sigma), axis=1)
    if ctx.settings(LinearParameters).own_coefficients:
        owners = [r for r, w in enumerate(widths) for _ in range(w)]
        return _own_part(ctx, label, names, [owners[j] for j in keep], keep, gamma, stds[:, [position]], metrics,
                         origin)
    opened = _release(ctx, [gamma, means, stds], metrics)
    if opened is None:
        return None
    if opened["values"] is None:  # keep_shared: metrics only
        return model_results([names[i] for i in keep], label, None, None, None, opened["metrics"])
    g, means, stds = opened["values"][0], secure.join(opened["values"][1]), secure.join(opened["values"][2])
    coefficients = g * stds[position] / stds[keep]
    order = [*keep, position]
    return model_results([names[i] for i in keep], label, coefficients, means[order], stds[order], opened["metrics"], origin)


def _own_part(ctx: JobContext, label: str, names: list[str], owners: list[int], keep: list[int], gamma: Any,
              label_std: Any, metrics: dict[str, Any], origin: bool) -> dict[str, Result] | None:
    """Vertical, own_coefficients: each party receives the coefficients of its own
    features and its part of the intercept (they sum to the model's), nobody
    another's; every party R^2. b_j = g_j s_y / s_j: g_j s_y (= b_j s_j) is
    normalized under encryption (no power of two of s_y or g_j becomes public) and
    opened to feature j's owner, who divides by its own s_j."""
    import crypten

    d = len(keep)
    scaled = secure.mul_mixed(gamma, secure.lowered(label_std[0][[0] * d]))  # g_j * mantissa(s_y)
    mantissa, exponent = secure.normalized(scaled)
    exponent = secure.raised(exponent) + label_std[-1][[0] * d]
    indices = {r: [i for i in range(d) if owners[i] == r] for r in range(ctx.world_size)}
    opened = secure.open_to_owners(ctx, [(r, crypten.stack([mantissa[idx], exponent[idx]])) for r, idx in indices.items()
                                         if idx])
    shown = secure.open_to_receivers(ctx, list(metrics.values()))
    mine = indices[ctx.rank]
    own = [names[keep[i]] for i in mine]
    columns = ctx.layout[ctx.rank].columns
    x = ctx.table[: len(ctx.table) // 2] if origin else ctx.table  # (the rows, not their mirror images)
    means, sigma = x.mean(axis=0), (ctx.table - ctx.table[0]).std(axis=0, ddof=1)
    at = [columns.index(c) for c in own]
    coefficients = secure.join(opened[0]) / sigma[at] if own else np.zeros(0)
    intercept = -float(coefficients @ means[at])
    if label in columns:
        intercept += float(means[columns.index(label)])
    out = {"coefficients": Result(coefficients, own), "intercept": Result(np.array([0.0 if origin else intercept]), [label])}
    if not origin:
        out |= {"feature_means": Result(means[at], own), "feature_stds": Result(sigma[at], own)}
    return {**out, **_metrics(metrics, shown)}


def _preconditioner(inverse_std: Any, ridge: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """S ~ diag(C + ridge)^-1/2 (16 bits), the ridges kept in A, and S ridge S for
    the others (public). 1/std where the ridge is small (kept in A); else the public
    power of two nearest 1/sqrt(ridge), so S ridge S is exact and in [0.5, 2) and the
    scaled diagonal stays within [0.5, 3] with no large encoding."""
    big = ridge > 0.25
    small = np.where(big, 0.0, ridge)
    if not big.any():
        return inverse_std, small, np.zeros_like(ridge)
    power = np.exp2(-np.round(np.log2(np.where(big, ridge, 1.0)) / 2))
    public = torch.from_numpy(np.where(big, power, 0.0))  # (exact at 16 bits; the mask exact too: no truncation)
    scale = secure.times_integers(inverse_std, [int(not b) for b in big]).add(public)
    return scale, small, np.where(big, ridge * power**2, 0.0)


def _release(ctx: JobContext, values: list[Any], metrics: dict[str, Any]) -> dict[str, Any] | None:
    if ctx.settings(LinearParameters).keep_shared:
        ctx.keep_shares({"coefficients_z": values[0], "mean": values[1], "scale": values[2]})
        opened = secure.open_to_receivers(ctx, list(metrics.values()))
        return None if opened is None else {"values": None, "metrics": _metrics(metrics, opened)}
    opened = secure.open_to_receivers(ctx, [*values, *metrics.values()])
    if opened is None:
        return None
    return {"values": opened[: len(values)], "metrics": _metrics(metrics, opened[len(values) :])}


def _metrics(shared: dict[str, Any], opened: list[np.ndarray] | None) -> dict[str, Result]:
    """The opened metrics as results (r2: training rows; r2_holdout: held-out rows)."""
    return {name: Result(np.array([float(value)]), [name]) for name, value in zip(shared, opened or [])}


def model_results(features: list[str], label: str, coefficients: np.ndarray | None, means: np.ndarray | None,
           stds: np.ndarray | None, metrics: dict[str, Result], origin: bool = False) -> dict[str, Result]:
    if coefficients is None or means is None or stds is None:
        return metrics
    if origin:  # the standardization was of the mirrored rows: not the data's
        return {"coefficients": Result(coefficients, features), "intercept": Result(np.zeros(1), [label]), **metrics}
    intercept = means[-1] - float(coefficients @ means[:-1])
    return {
        "coefficients": Result(coefficients, features),
        "intercept": Result(np.array([intercept]), [label]),
        "feature_means": Result(means[:-1], features),
        "feature_stds": Result(stds[:-1], features),
        "label_mean": Result(means[-1:], [label]),
        "label_std": Result(stds[-1:], [label]),
        **metrics,
    }

