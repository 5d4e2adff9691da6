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


def describe(ctx: JobContext, wanted: list[str], n: int, columns: list[str],
             budget: privacy.Budget) -> dict[str, Result] | None:
    unsupported = [s for s in wanted if s not in SUPPORTED]
    if unsupported:
        raise InvalidArgument(f"{', '.join(unsupported)} cannot be released with parameter dp yet")
    mine = ctx.layout[ctx.rank].columns
    bounds = secure.public(ctx, privacy.bounds_for(ctx.rules, mine))
    if ctx.partitioning == "horizontal":
        frame = [(min(b[j][0] for b in bounds), max(b[j][1] for b in bounds)) for j in range(len(mine))]
    else:
        frame = [pair for by_party in bounds for pair in by_party]
    z = privacy.clipped(ctx.table, bounds[ctx.rank], frame if ctx.partitioning == "horizontal" else None)
    pooled = _pooled(ctx, np.stack([z.sum(axis=0), privacy.on_grid(z * z).sum(axis=0)]))  # sums, sums of squares
    d = len(frame)
    (t_sum, _), (t_squares, _) = noise_scales("stats.describe", budget.epsilon, d)
    ctx.progress("adding noise no party knows", 60)
    noisy = [pooled[0] + privacy.discrete_laplace(d, t_sum, secure.PRECISION_BITS),
             pooled[1] + privacy.discrete_laplace(d, t_squares, secure.PRECISION_BITS)]
    ctx.progress("revealing to receivers", 90)
    opened = secure.open_to_receivers(ctx, noisy)
    if opened is None:
        return None
    return _derive(opened, wanted, n, frame, columns, t_sum)


def noise_scales(kind: str, epsilon: float, columns: int) -> list[tuple[float, int]]:
    """Each release of a dp job of `kind` over `columns` columns: the noise's scale
    t and the sensitivity, both in noise steps (GRID, or whole counts). The
    program samples with them and the budgets charge them."""
    if kind == "stats.histogram":  # one vector of counts per column, L1 sensitivity 2
        return [(SENSITIVITY_HISTOGRAM / (epsilon / columns), SENSITIVITY_HISTOGRAM)]
    per = epsilon / (2 * columns)  # per column, the sum and the sum of squares
    return [(privacy.noise_scale(sensitivity, per), round(sensitivity / privacy.GRID))
            for sensitivity in (SENSITIVITY_SUM, SENSITIVITY_SQUARES)]


def releases(kind: str, epsilon: float, columns: int, touched: int) -> list[tuple[float, int, int]]:
    """The noisy releases of a dp job of `kind` over `columns` columns that touch
    one dataset (`touched` of the columns are its own, or all for horizontal
    data), as the privacy accountant's discrete Laplace events: (noise parameter
    1 / t, sensitivity in noise steps, how many)."""
    return [(1 / t, sensitivity, touched) for t, sensitivity in noise_scales(kind, epsilon, columns)]


def histogram(ctx: JobContext, edges: np.ndarray, columns: list[str], budget: privacy.Budget) -> dict[str, Result] | None:
    """Rows per bin and column plus whole-count noise (one row replaced moves one
    count from a bin to another: L1 sensitivity 2 per column; epsilon split over
    the columns). A bin whose noisy count is below the largest min_group_size of
    the parties is withheld: each party's rule, applied to what is released."""
    mine = ctx.layout[ctx.rank].columns
    privacy.bounds_for(ctx.rules, mine)  # a dp job reads only columns its owner declared for it
    counts = np.stack([np.histogram(ctx.table[:, j], bins=edges)[0] for j in range(len(mine))]).astype(np.float64)
    pooled = _pooled(ctx, counts.T).t()  # columns x bins
    smallest = max(int(k) for k in secure.public(ctx, ctx.rules.min_group_size))
    ((t, _),) = noise_scales("stats.histogram", budget.epsilon, len(columns))
    ctx.progress("adding noise no party knows", 60)
    noise = privacy.discrete_laplace(len(columns) * (len(edges) - 1), t, secure.PRECISION_BITS, step_bits=0)
    opened = secure.open_to_receivers(ctx, [pooled + noise.reshape(len(columns), len(edges) - 1)])
    if opened is None:
        return None
    noisy = np.maximum(np.round(opened[0]), 0.0)
    return {"histogram": histogram_result(columns, noisy, noisy < smallest, edges),
            "count_noise_std": Result(np.full(len(columns), np.sqrt(2) * t), columns)}


def _pooled(ctx: JobContext, local: np.ndarray):  # type: ignore[no-untyped-def]
    """Per-column aggregates (a row each, this party's columns across): added over
    the parties (horizontal), or each party's own columns joined (vertical)."""
    if ctx.partitioning == "horizontal":
        return secure.total(secure.share_each(ctx, local))
    return secure.stacked_columns(ctx, local, [len(entry.columns) for entry in ctx.layout])


def _derive(opened: list[np.ndarray], wanted: list[str], n: int, frame: list[tuple[float, float]],
            columns: list[str], t_sum: float) -> dict[str, Result]:
    lower, upper = np.array(frame).T
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    sum_z = opened[0]
    out = {"sum": Result(n * mid + half * sum_z, columns), "mean": Result(mid + half * sum_z / n, columns)}
    # the noise's standard deviation on each released sum: sqrt(2) t steps of the grid, in the column's units
    out["sum_noise_std"] = Result(np.sqrt(2) * t_sum * privacy.GRID * half, columns)
    var_z = np.maximum((opened[1] - sum_z**2 / n) / (n - 1), 0.0)
    out["variance"] = Result(var_z * half**2, columns)
    out["std"] = Result(np.sqrt(var_z) * half, columns)
    return {name: result for name, result in out.items() if name in wanted or name == "sum_noise_std"}
