"""Joint statistics: what each kind computes and reveals.

Every kind reveals its statistics to the job's result receivers only. Every party
learns the public facts the computation needs: each party's row count, each
column's names, and per column, for horizontal jobs, the power of two of the
pooled range and the pooled mean rounded to an eighth of it (the frame, see
horizontal.py), plus one bit per column saying whether its spread suffices for
1e-3; for vertical jobs, the power of two of the largest distance from the mean in
standard deviations (for covariance and correlation), and what the private set
intersection that aligns their rows reveals (mpc.programs.intersection: the common
entities' count; each party, which of its own rows are common). Nothing else
leaves a party unencrypted.

- stats.describe: count, sum, mean, variance, std per column; with parameter
  `extremes: true`, also min and max (exact single values: every party whose data
  is used must allow extremes in its policy).
- stats.covariance: count and the sample covariance matrix.
- stats.correlation: count and the correlation matrix.
- stats.summary: describe's statistics, covariance and correlation.
- stats.histogram: count and, per column, the pooled number of rows in each bin of
  `bin_edges`. A bin holding at least one but fewer than `min_group_size` rows of
  any party's dataset is withheld (released as suppressed) or the job is refused,
  as that party's own policy says.
Sample statistics (ddof = 1). Accuracy: see request.py.

A job that says what to do with missing cells (parameter `missing`, see
mpc.programs.missing) computes on the rows and values that leaves, and also
releases `missing`: per column, the cells that were missing (a party's count
above 0 and below its min_group_size withheld, as histogram bins are).

With parameter `dp: {epsilon, mechanism}` (every kind; min and max excluded),
the values are clipped to the bounds each party's policy declares and released
with noise no party knows, under epsilon-differential privacy: see private.py.
A dataset whose policy sets require_dp takes part in no other job.
"""

from __future__ import annotations

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import private as dp_of
from mpc.programs import missing, secure
from mpc.programs.stats import horizontal, private, vertical
from mpc.programs.stats.request import job_shape, ordered, request

DESCRIBE = ["count", "sum", "mean", "variance", "std"]


def describe(ctx: JobContext) -> dict[str, Result] | None:
    return _run(ctx, DESCRIBE)


def covariance(ctx: JobContext) -> dict[str, Result] | None:
    return _run(ctx, ["count", "covariance"])


def correlation(ctx: JobContext) -> dict[str, Result] | None:
    return _run(ctx, ["count", "correlation"])


def summary(ctx: JobContext) -> dict[str, Result] | None:
    return _run(ctx, [*DESCRIBE, "covariance", "correlation"])


def histogram(ctx: JobContext) -> dict[str, Result] | None:
    return _run(ctx, ["count", "histogram"])


def _run(ctx: JobContext, base: list[str]) -> dict[str, Result] | None:
    secure.configure()
    req = request(ctx, base)  # every party checks its own rules before anything is shared
    rows, n, columns = job_shape(ctx)
    if dp_of(ctx.parameters) is not None:
        if req.edges is not None:
            results = private.histogram(ctx, req.edges, columns)
        else:
            results = private.describe(ctx, req.wanted, n, columns)
        noise = {k: v for k, v in (results or {}).items() if k.endswith("_noise_std")}
        return None if results is None else {**ordered(results, req.wanted, n, columns), **noise}
    gaps = missing.counts_result(ctx, columns)
    results = horizontal.compute(ctx, req, rows) if ctx.partitioning == "horizontal" else vertical.compute(ctx, req, n)
    return None if results is None else {**ordered(results, req.wanted, n, columns), **({"missing": gaps} if gaps else {})}
