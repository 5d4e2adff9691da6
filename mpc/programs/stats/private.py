"""stats.describe and stats.histogram with parameter dp: sums, means, variances,
deviations and rows per bin under epsilon-differential privacy
(mpc.programs.privacy), horizontal or vertical.

The guarantee. Unit of privacy: one row of one dataset, its values replaced by
any others (the parties' row counts are public metadata, so count is exact and
not protected; the values behind every other statistic are). Each released
noisy aggregate, per column the sum of clipped values and (for variance and
std) the sum of their squares, is epsilon / releases-differentially private, and
the job as a whole is epsilon-differentially private by basic composition
(delta at most releases * (1 + e^epsilon) * privacy.TOTAL_VARIATION, about
1e-9). Mean, variance and std are computed from the noisy sums after opening
(post-processing costs no privacy).

Clipping. Each party clips its own rows to the bounds its own policy declares
(`dp_bounds`), so no other party can loosen them; horizontal jobs aggregate in the
union of the parties' bounds per column (public: every party announces its own).
A value outside its bounds counts as the nearest bound: a statistic is then
biased, and the bounds are the data owner's to choose.
"""

from __future__ import annotations

import numpy as np

from gateway.errors import InvalidArgument
from mpc.programs import privacy, secure
from mpc.programs.context import JobContext, Result
from mpc.programs.stats.request import histogram_result

SUPPORTED = {"count", "sum", "mean", "variance", "std"}
SENSITIVITY_SUM = 2.0  # one value in [-1, 1] replaced by another
SENSITIVITY_SQUARES = 1.0  # one square in [0, 1] replaced by another
SENSITIVITY_HISTOGRAM = 2  # one row replaced: one bin loses it, another gains it


def describe(ctx: JobContext, wanted: list[str], rows: list[int], budget: privacy.Budget) -> dict[str, Result] | None:
    unsupported = [s for s in wanted if s not in SUPPORTED]
    if unsupported:
        raise InvalidArgument(f"{', '.join(unsupported)} cannot be released with parameter dp yet")
    mine = ctx.layout[ctx.rank].columns
    bounds = secure.public(ctx, privacy.bounds_for(ctx.rules, mine))
    if ctx.partitioning == "horizontal":
        n = sum(rows)
        columns = mine
        frame = [(min(b[j][0] for b in bounds), max(b[j][1] for b in bounds)) for j in range(len(columns))]
        z = privacy.clipped(ctx.table, bounds[ctx.rank], frame)
        local = np.concatenate([z.sum(axis=0), privacy.on_grid(z * z).sum(axis=0)])
        pooled = secure.total(secure.share_each(ctx, local))
    else:
        n = rows[0]
        columns = [c for entry in ctx.layout for c in entry.columns]
        frame = [pair for by_party in bounds for pair in by_party]
        own = privacy.clipped(ctx.table, bounds[ctx.rank])
        local = np.concatenate([own.sum(axis=0), privacy.on_grid(own * own).sum(axis=0)])
        shared = [secure.share_from(ctx, r, local if r == ctx.rank else None, (2 * len(entry.columns),))
                  for r, entry in enumerate(ctx.layout)]
        d = [len(entry.columns) for entry in ctx.layout]
        pooled = _sums_then_squares(shared, d)
    d = len(columns)
    dispersion = bool({"variance", "std"} & set(wanted))
    epsilon = budget.per_release(d * (2 if dispersion else 1))
    ctx.progress("adding noise no party knows", 60)
    noise = privacy.discrete_laplace(d, privacy.noise_scale(SENSITIVITY_SUM, epsilon), secure.PRECISION_BITS)
    secrets = [pooled[:d] + noise]
    if dispersion:
        squares = privacy.discrete_laplace(d, privacy.noise_scale(SENSITIVITY_SQUARES, epsilon), secure.PRECISION_BITS)
        secrets.append(pooled[d:] + squares)
    ctx.progress("revealing to receivers", 90)
    opened = secure.open_to_receivers(ctx, secrets)
    if opened is None:
        return None
    return _derive(opened, wanted, n, frame, columns, epsilon)


def releases(kind: str, epsilon: float, columns: int, touched: int) -> list[tuple[float, int, int]]:
    """The noisy releases of a dp job of `kind` over `columns` columns that touch
    one dataset (`touched` of the columns are its own, or all for horizontal
    data), as the privacy accountant's discrete Laplace events: (noise parameter
    1 / t, sensitivity in noise steps, how many)."""
    if kind == "stats.histogram":  # one vector of counts per column, L1 sensitivity 2
        return [(1 / (SENSITIVITY_HISTOGRAM / (epsilon / columns)), SENSITIVITY_HISTOGRAM, touched)]
    per = epsilon / (2 * columns)
    return [(1 / privacy.noise_scale(sensitivity, per), round(sensitivity / privacy.GRID), touched)
            for sensitivity in (SENSITIVITY_SUM, SENSITIVITY_SQUARES)]


def histogram(ctx: JobContext, edges: np.ndarray, rows: list[int], budget: privacy.Budget) -> dict[str, Result] | None:
    """Rows per bin and column plus whole-count noise (one row replaced moves one
    count from a bin to another: L1 sensitivity 2 per column; epsilon split over
    the columns). A bin whose noisy count is below the largest min_group_size of
    the parties is withheld: each party's rule, applied to what is released."""
    import crypten

    mine = ctx.layout[ctx.rank].columns
    privacy.bounds_for(ctx.rules, mine)  # a dp job reads only columns its owner declared for it
    bins = len(edges) - 1
    counts = np.stack([np.histogram(ctx.table[:, j], bins=edges)[0] for j in range(len(mine))]).astype(np.float64)
    if ctx.partitioning == "horizontal":
        columns = mine
        pooled = secure.total(secure.share_each(ctx, counts))
    else:
        columns = [c for entry in ctx.layout for c in entry.columns]
        pooled = crypten.cat([secure.share_from(ctx, r, counts if r == ctx.rank else None, (len(entry.columns), bins))
                              for r, entry in enumerate(ctx.layout) if entry.columns])
    smallest = max(int(k) for k in secure.public(ctx, ctx.rules.min_group_size))
    epsilon = budget.epsilon / len(columns)
    ctx.progress("adding noise no party knows", 60)
    noise = privacy.discrete_laplace(len(columns) * bins, SENSITIVITY_HISTOGRAM / epsilon, secure.PRECISION_BITS,
                                     step_bits=0)
    opened = secure.open_to_receivers(ctx, [pooled + noise.reshape(len(columns), bins)])
    if opened is None:
        return None
    noisy = np.maximum(np.round(opened[0]), 0.0)
    return {"histogram": histogram_result(columns, noisy, noisy < smallest, edges),
            "count_noise_std": Result(np.full(len(columns), np.sqrt(2) * SENSITIVITY_HISTOGRAM / epsilon), columns)}


def _sums_then_squares(shared: list, widths: list[int]):  # type: ignore[no-untyped-def]
    """Vertical: each party shared its columns' sums then sums of squares; reorder
    into all sums (in column order), then all sums of squares."""
    import crypten

    sums = [part[:w] for part, w in zip(shared, widths) if w]
    squares = [part[w:] for part, w in zip(shared, widths) if w]
    return crypten.cat([*sums, *squares])


def _derive(opened: list[np.ndarray], wanted: list[str], n: int, frame: list[tuple[float, float]],
            columns: list[str], epsilon: float) -> dict[str, Result]:
    lower, upper = np.array(frame).T
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    sum_z = opened[0]
    out = {"sum": Result(n * mid + half * sum_z, columns), "mean": Result(mid + half * sum_z / n, columns)}
    # the noise's standard deviation on each released sum: sqrt(2) * b, b = sensitivity / epsilon
    out["sum_noise_std"] = Result(np.sqrt(2) * SENSITIVITY_SUM / epsilon * half, columns)
    if len(opened) > 1:
        var_z = np.maximum((opened[1] - sum_z**2 / n) / (n - 1), 0.0)
        out["variance"] = Result(var_z * half**2, columns)
        out["std"] = Result(np.sqrt(var_z) * half, columns)
    return {name: result for name, result in out.items() if name in wanted or name == "sum_noise_std"}
