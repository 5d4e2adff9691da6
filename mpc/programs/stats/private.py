"""Statistics with parameter dp: sums, means, variances, deviations, covariances,
correlations and rows per bin under differential privacy, horizontal or vertical.

The guarantee. Unit of privacy: one row of one dataset, its values replaced by
any others (the parties' row counts are public metadata, so count is exact and
not protected; the values behind every other statistic are). The noisy releases
(mpc.privacy.plan: per column the sum of its clipped values and of their
squares, per pair of columns the sum of their products) share the job's budget:
with the laplace mechanism each is epsilon / releases-differentially private and
the job epsilon-differentially private by basic composition; with the gaussian
mechanism the job is (epsilon, delta)-differentially private through
zero-concentrated DP. What the samplers deviate from the exact distributions
adds to delta (noise.laplace.TOTAL_VARIATION, privacy.accounting.TOTAL_VARIATION per value).
Means, variances, deviations, covariances and correlations are computed from the
noisy sums after opening (post-processing costs no privacy). A noisy covariance is
symmetric but, with few rows or a small epsilon, not always positive semidefinite:
it is released as computed (the linear models project it).

Exactness. Each party clips its own rows to the bounds its own policy declares
(`dp_bounds`), so no other party can loosen them; horizontal jobs aggregate in the
union of the parties' bounds per column (public: every party announces its own).
A value outside its bounds counts as the nearest bound: a statistic is then
biased, and the bounds are the data owner's to choose. A clipped value z in
[-1, 1] is held as the integer Z = round(STEP z), and every sum (of Z, Z^2, Z_i
Z_j; across parties a secure product of integer shares, which needs no
truncation) is an exact integer, to which whole-number noise is added: the
guarantee holds exactly in the ring, with nothing left in low bits.
"""

from __future__ import annotations

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.errors import InvalidArgument
from mpc.privacy import plan as noise_plan
from mpc.privacy.plan import STEP
from mpc.programs import secure
from mpc.programs.noise import laplace, release
from mpc.programs.stats.request import histogram_result

SUPPORTED = {"count", "sum", "mean", "variance", "std", "covariance", "correlation"}
PARTS = ("sums", "squares", "cross")


def describe(ctx: JobContext, wanted: list[str], n: int, columns: list[str]) -> dict[str, Result] | None:
    """stats.describe, covariance, correlation and summary."""
    unsupported = [s for s in wanted if s not in SUPPORTED]
    if unsupported:
        raise InvalidArgument(f"{', '.join(unsupported)} cannot be released with parameter dp")
    z, frame = on_grid(ctx, ctx.layout[ctx.rank].columns)
    parts = noise_plan.plan(ctx.kind, ctx.parameters, columns)
    opened = moments(ctx, z, parts, ctx.receivers)
    if opened is None:
        return None
    sums, products = opened
    return _derive(sums, products, wanted, n, frame, columns, parts)


def on_grid(ctx: JobContext, names: list[str]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """This party's columns `names` clipped to its own bounds and mapped to [-1, 1]
    as integers Z = round(STEP z), and the job's frame (the bounds z is relative
    to, every party's columns in job order: horizontal, the union per column)."""
    mine = [ctx.layout[ctx.rank].columns.index(c) for c in names]
    own = laplace.bounds_for(ctx.rules, names)
    bounds = secure.public(ctx, own)
    if ctx.partitioning == "horizontal":
        frame = [(min(b[j][0] for b in bounds), max(b[j][1] for b in bounds)) for j in range(len(names))]
        z = laplace.clipped(ctx.table[:, mine], own, frame)
    else:
        frame = [pair for by_party in bounds for pair in by_party]
        z = laplace.clipped(ctx.table[:, mine], own)
    return np.rint(z * STEP).astype(np.int64), frame


def moments(ctx: JobContext, z: np.ndarray, parts: dict[str, noise_plan.Part],
            to: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The noisy sums of Z (d) and of Z Z^T (d x d; only the diagonal unless
    `parts` has cross products) over every party's rows (horizontal) or columns
    (vertical), opened to the ranks `to`; None at other ranks."""
    import crypten

    cross = "cross" in parts
    if ctx.partitioning == "horizontal":
        d = z.shape[1]
        local = z.T @ z
        vector = np.concatenate([z.sum(axis=0), np.diag(local), local[np.triu_indices(d, 1)] if cross else []])
        exact = secure.total(secure.share_each(ctx, vector.astype(np.float64), precision=0))
    else:
        widths = secure.public(ctx, z.shape[1])
        own = np.stack([z.sum(axis=0), (z * z).sum(axis=0)]).astype(np.float64)
        stacked = secure.stacked_columns(ctx, own, widths, precision=0)  # 2 x d: sums, squares
        d = int(sum(widths))
        pieces = [stacked[0], stacked[1]]
        if cross:
            shared = secure.stacked_columns(ctx, z.astype(np.float64), widths, precision=0)
            upper = np.triu_indices(d, 1)
            pairs = torch.from_numpy((upper[0] * d + upper[1]).astype(np.int64))
            pieces.append(shared.t().matmul(shared).flatten()[pairs])  # integers: exact, no truncation
        exact = crypten.cat(pieces)
    ctx.progress("adding noise no party knows", 60)
    names = [name for name in PARTS if name in parts and parts[name].count]  # the vector's parts, in order
    ends = np.cumsum([parts[name].count for name in names])
    noisy = crypten.cat([release.noised(exact[int(end - parts[name].count):int(end)], parts[name])
                         for name, end in zip(names, ends)])
    ctx.progress("revealing", 90)
    values = secure.open_to_owners(ctx, [(rank, noisy) for rank in to])
    if ctx.rank not in to:
        return None
    flat = values[0].astype(np.float64)
    products = np.diag(flat[d : 2 * d])
    if cross:
        upper = np.triu_indices(d, 1)
        products[upper] = flat[2 * d :]
        products[(upper[1], upper[0])] = flat[2 * d :]
    return flat[:d], products


def _derive(sums: np.ndarray, products: np.ndarray, wanted: list[str], n: int, frame: list[tuple[float, float]],
            columns: list[str], parts: dict[str, noise_plan.Part]) -> dict[str, Result]:
    lower, upper = np.array(frame).T
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    s1, s2 = sums / STEP, products / STEP**2
    cov_z = (s2 - np.outer(s1, s1) / n) / (n - 1)
    var_z = np.maximum(np.diag(cov_z), 0.0)
    out = {"sum": Result(n * mid + half * s1, columns), "mean": Result(mid + half * s1 / n, columns),
           "variance": Result(var_z * half**2, columns), "std": Result(np.sqrt(var_z) * half, columns),
           # the noise's standard deviation on each released sum, in the column's units
           "sum_noise_std": Result(parts["sums"].std / STEP * half, columns)}
    if "cross" in parts:
        np.fill_diagonal(cov_z, var_z)
        out["covariance"] = Result(cov_z * np.outer(half, half), columns, list(columns))
        deviations = np.sqrt(var_z)
        with np.errstate(divide="ignore", invalid="ignore"):
            correlation = np.clip(cov_z / np.outer(deviations, deviations), -1.0, 1.0)
        correlation[~np.isfinite(correlation)] = 0.0
        np.fill_diagonal(correlation, 1.0)
        out["correlation"] = Result(correlation, columns, list(columns))
    return {name: result for name, result in out.items() if name in wanted or name == "sum_noise_std"}


def histogram(ctx: JobContext, edges: np.ndarray, columns: list[str]) -> dict[str, Result] | None:
    """Rows per bin and column plus whole-count noise (one row replaced moves one
    count from a bin to another: L1 sensitivity 2 per column; epsilon split over
    the columns). A bin whose noisy count is below the largest min_group_size of
    the parties is withheld: each party's rule, applied to what is released."""
    mine = ctx.layout[ctx.rank].columns
    laplace.bounds_for(ctx.rules, mine)  # a dp job reads only columns its owner declared for it
    counts = np.stack([np.histogram(ctx.table[:, j], bins=edges)[0] for j in range(len(mine))]).astype(np.float64)
    if ctx.partitioning == "horizontal":
        pooled = secure.total(secure.share_each(ctx, counts.T)).t()
    else:
        pooled = secure.stacked_columns(ctx, counts.T, [len(entry.columns) for entry in ctx.layout]).t()
    smallest = max(int(k) for k in secure.public(ctx, ctx.rules.min_group_size))
    part = noise_plan.plan(ctx.kind, ctx.parameters, columns)["bins"]
    ctx.progress("adding noise no party knows", 60)
    opened = secure.open_to_receivers(ctx, [release.noised(pooled, part, secure.PRECISION_BITS)])
    if opened is None:
        return None
    noisy = np.maximum(np.round(opened[0]), 0.0)
    return {"histogram": histogram_result(columns, noisy, noisy < smallest, edges),
            "count_noise_std": Result(np.full(len(columns), part.std), columns)}
