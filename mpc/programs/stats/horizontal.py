"""Statistics of horizontally partitioned data: every party holds the same columns
for different rows. Each party computes its aggregates locally in float64 and
shares only those; the parties add them under encryption.

Offsets and dynamic range. Before anything is aggregated, the parties fix a
public frame per column: a shift `a` near the pooled mean and a power-of-two scale
`c` of the pooled range, and aggregate z = (x - a) / c, which lies within [-1, 1]
whatever the column's offset (unix timestamps, values near 2^47) or outliers.
To find it they compute, under encryption, the pooled range and mean of x / 2^e
(2^e >= max |x|, public), and open only the range's power of two (by comparisons
against 2^-k, k = 0..RANGE_STEPS) and the mean rounded to an eighth of that power
of two. A column whose range is below 2^-RANGE_STEPS of its magnitude is refused,
unless it is constant (one value at every party, its float64 bits compared exactly;
every party learns that bit for such columns only): then its count, sum and mean
are answered as any column's, its variance, std and covariances are 0, and its
correlations undefined (NaN), as numpy's are. Models refuse a constant column.

Precision. Aggregates (sums of z and of z z^T over rows, divided by the pooled row
count) are shared at 32 fractional bits, error ~2^-33 per party; the square of
the mean is taken in two limbs (16-bit high part, 32-bit rest) so no product's
encoding nears the ring. A heavy-tailed column's range is many standard
deviations, so in the range's frame its variance is tiny and those errors large
beside it: programs that need dispersion first tighten the frame (`tightened_moments`:
the scale divided by a public 2^j that brings var(z) to at least TIGHT_VARIANCE)
and aggregate again. A column is refused, every party learning the same one bit
per column, only where even that cannot work: a range beyond ~7,000 standard
deviations (var(z) below 4.6e-9 in the range's frame), or, after tightening,
var(z) below `var_floor` (the 1e-3 bound; a failed truncation) or, where 1/sqrt is
taken under encryption (stats.correlation at 16 bits, linear regression),
`CORRELATION_FLOOR`. Logistic regression and the MLP share each row's z at 12 bits
in the range's frame and keep that floor (`row_frame_moments`: a range within ~15
to 30 standard deviations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.errors import FailedPrecondition
from mpc.programs import compare, secure
from mpc.programs.stats.request import DISPERSION, MOMENTS, Request, histogram_result, local_histogram

RANGE_STEPS = 20
SHIFT_GRID = 3  # the shift is a multiple of 2^(E - 3), E the range's power of two
VAR_SCALE = 256  # inv_sqrt works on VAR_SCALE * var(z), inside its accurate range
ERROR_PER_PARTY = 2.0**-33  # encoding error of one party's shared aggregate
TOLERANCE = 1e-3
CORRELATION_FLOOR = 3e-4  # 1/sqrt at 16 bits of VAR_SCALE * var(z) >= 0.077
TIGHT_VARIANCE = CORRELATION_FLOOR  # a tightened frame's var(z) is at least this: every column answered before stays j = 0
TIGHTEN_STEPS = 8  # var(z) from 4.6e-9 (a range up to ~7,000 standard deviations) to >= TIGHT_VARIANCE
MEAN_LIMIT = 2.0 ** (TIGHTEN_STEPS + 1)  # |mean(z)| <= 2^j / 32 in a tightened frame: beyond, a truncation failed


def var_floor(parties: int) -> float:
    """Smallest var(z) still known to 1e-3: the aggregates' and the mean square's
    error over the tolerance, with a margin of 4."""
    return 4 * (parties + 4) * ERROR_PER_PARTY / TOLERANCE


def compute(ctx: JobContext, req: Request, rows: list[int]) -> dict[str, Result] | None:
    x = ctx.table
    columns = ctx.layout[0].columns
    n = sum(rows)
    secrets: list[tuple[str, Any]] = []
    frame = None
    constant = np.zeros(len(columns), dtype=bool)
    if req.wants(MOMENTS):
        ctx.progress("fixing each column's frame", 10)
        frame, constant = frame_and_constants(ctx, x, n, columns)
        frame, shared = _moments(ctx, req, x, n, frame, columns, constant)
        secrets += shared
    if req.wants({"min", "max"}):
        ctx.progress("exact extremes", 50)
        lowest, highest = secure.extremes(ctx, x.min(axis=0), x.max(axis=0))
        secrets += [("min", lowest), ("max", highest)]
    if req.edges is not None:
        counts, small = local_histogram(ctx, x, req.edges)
        pooled = secure.total(secure.share_each(ctx, np.stack([counts, small])))
        withheld = secure.greater_than(pooled[1], 0.5)  # some party's own rule withholds the bin
        secrets += [("histogram", pooled[0] * (1 - withheld)), ("withheld", withheld)]
    ctx.progress("revealing to receivers", 90)
    opened = secure.open_to_receivers(ctx, [s for _, s in secrets])
    if opened is None:
        return None
    values = dict(zip([name for name, _ in secrets], opened))
    if req.wants(DISPERSION) and constant.any():
        values = _with_constants(values, constant, req)
    return _derive(values, req, n, frame, columns)


def column_frame(ctx: JobContext, x: np.ndarray, n: int, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The public shift and scale of every column (see the module docstring), for
    programs that need every column to vary (models): a constant one is refused."""
    frame, constant = frame_and_constants(ctx, x, n, columns)
    if constant.any():
        raise FailedPrecondition(f"column {columns[int(np.argmax(constant))]!r} is constant (one value at every party): "
                                 "it cannot explain anything; drop it from the job")
    return frame


def frame_and_constants(ctx: JobContext, x: np.ndarray, n: int,
                        columns: list[str]) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The public frame of every column and which columns are constant (public).
    A party with no rows (a bank whose one row was held out) takes part with
    placeholders that no pair of parties' comparisons includes."""
    present, low, high = _local_extremes(ctx, x)  # (z = x / first, a power of two: z's sum and extremes are these scaled)
    peak = np.maximum(np.abs(low), np.abs(high))
    own = [_exponent(p) for p in peak] if len(x) else [NO_ROWS] * len(columns)
    exponents = np.max(np.array(secure.public(ctx, own)), axis=0)
    first = np.exp2(exponents)
    mean = secure.total(secure.share_each(ctx, x.sum(axis=0) / first / n))
    steps = _range_steps(ctx, low / first, high / first, present)
    constant = np.zeros(len(columns), dtype=bool)
    if (steps == 0).any():
        constant[steps == 0] = _same_everywhere(ctx, low[steps == 0], high[steps == 0], present)
    nearly = [c for c, s, k in zip(columns, steps, constant) if s == 0 and not k]
    if nearly:
        raise FailedPrecondition(f"column {nearly[0]!r} is nearly constant (its range is below 2^-{RANGE_STEPS} of its "
                                 "magnitude): its statistics cannot be computed to 1e-3")
    below = RANGE_STEPS - steps  # range <= 2^(exponent - below)
    range_exp = exponents - below
    multiplier = [int(2 ** (b + SHIFT_GRID)) for b in below]
    grid = secure.open_integers_to_all(ctx, secure.times_integers(mean, multiplier))
    shift, scale = grid * np.exp2(range_exp - SHIFT_GRID), np.exp2(range_exp + 1)
    if np.abs((x - shift) / scale).max(initial=0) > 4:  # |z| <= 1/2 + 1/32 by construction
        raise FailedPrecondition("the columns' public frame is inconsistent (a fixed-point failure); please resubmit")
    return (shift, scale), constant


def constant_columns(ctx: JobContext, x: np.ndarray) -> np.ndarray:
    """Which columns hold one value at every party (public: one bit per column)."""
    present, low, high = _local_extremes(ctx, x)
    return _same_everywhere(ctx, low, high, present)


def _local_extremes(ctx: JobContext, x: np.ndarray) -> tuple[list[bool], np.ndarray, np.ndarray]:
    """Which parties hold rows (public, as row counts are in every program) and this
    party's column minima and maxima; zeros as placeholders where it holds none,
    which no comparison between parties includes."""
    present = [bool(rows) for rows in secure.public(ctx, len(x))]
    if len(x):
        return present, x.min(axis=0), x.max(axis=0)
    return present, np.zeros(x.shape[1]), np.zeros(x.shape[1])


def _same_everywhere(ctx: JobContext, low: np.ndarray, high: np.ndarray, present: list[bool]) -> np.ndarray:
    """For each column, whether every party's minimum and maximum have exactly the
    float64 bits of the first party's minimum (-0.0 taken as 0.0; parties with rows
    only): the column is one value everywhere. The bit patterns go in 32-bit halves (their differences fit the
    ring); every difference is compared with zero from both sides in one batch and
    the bits ANDed in the binary domain; only the per-column result is opened."""
    import crypten

    m = len(low)
    bits = (np.concatenate([low, high]) + 0.0).view(np.int64)
    halves = secure.share_integers(ctx, np.concatenate([bits >> 32, bits & 0xFFFFFFFF]).reshape(4, m))
    halves = [half for half, rows in zip(halves, present) if rows]
    first = halves[0][[0, 0, 2, 2]]  # the first party's minimum, against every party's minimum and maximum
    differences = crypten.stack([half - first for half in halves]).reshape(-1, m)
    nonzero = compare.sign_bits(crypten.cat([differences, differences.neg()]), binary=True)
    return secure.revealed_bits(secure.all_of(nonzero ^ 1)).reshape(-1)


def tightened_moments(ctx: JobContext, x: np.ndarray, n: int, frame: tuple[np.ndarray, np.ndarray],
                      columns: list[str], floor: float | None = None,
                      target: float = TIGHT_VARIANCE) -> tuple[tuple[np.ndarray, np.ndarray], Moments]:
    """The pooled moments with dispersion in a frame whose scale is divided, per
    column, by a public 2^j so that var(z) >= `target` (TIGHT_VARIANCE, or more
    where a program needs the 32-bit aggregates' error small beside the variance:
    linear regression); refused (as pooled_moments, at `floor`) where that cannot
    be done.

    A heavy-tailed column's range is many standard deviations (lognormal amounts:
    15-110; California housing's occupancy: ~120), so in the range's frame its
    variance is tiny: 1/sqrt of it under encryption was refused beyond ~20, and the
    32-bit aggregates' error beside it grew as 1/var(z) (refused beyond ~500). j is
    how many of the thresholds TIGHT_VARIANCE / 4^k (k = 0..TIGHTEN_STEPS - 1) the
    pooled var(z) lies below, opened to every party with one more bit, "below
    the quarter of the last" (refused), in one comparison: the bits are monotone,
    so they tell j and no more. Only that binade is needed of these first
    moments. Where some j > 0, each party aggregates z 2^j again, locally in
    float64 (no precision lost; |z 2^j| <= 2^j, a party's mean square at most
    4^TIGHTEN_STEPS: encodings below 2^51), where the aggregates' absolute error is
    at most ~2^-22 of var(z); where every j is 0 (a range within ~15 to 30 standard
    deviations: most data), the first moments are kept: var(z) >= TIGHT_VARIANCE
    meets any floor."""
    assert floor is None or floor <= TIGHT_VARIANCE <= target
    moments = pooled_moments(ctx, x, n, frame, columns, floor=0.0)
    steps = TIGHTEN_STEPS + int(round(math.log(target / TIGHT_VARIANCE, 4)))  # the same coarsest floor
    levels = target * 4.0 ** -np.arange(steps + 1)  # the last: the coarsest binade's floor
    thresholds = torch.from_numpy(levels * (n - 1) / n)
    below = secure.less_than_to_all(ctx, moments.variance.unsqueeze(1).expand(len(columns), len(levels)), thresholds)
    if below[:, -1].any():
        _refuse_spread(columns[int(np.argmax(below[:, -1]))])
    steps = below[:, :-1].sum(axis=1)
    if not steps.any():
        return frame, moments
    shift, scale = frame
    tight = (shift, scale / np.exp2(steps))
    return tight, pooled_moments(ctx, x, n, tight, columns, floor=floor)


def _range_steps(ctx: JobContext, low: np.ndarray, high: np.ndarray, present: list[bool]) -> np.ndarray:
    """For each column, how many of the thresholds 2^-k (k = 0..RANGE_STEPS) its
    pooled range max_i high_i - min_j low_j exceeds: all that is opened. The range
    exceeds t iff some pair of parties (i, j) has high_i - low_j > t, so all pairs'
    comparisons go in one batch and their bits are combined in the binary domain
    (log2(pairs) rounds of ANDs); selecting the pooled extremes first took two
    rounds of products and a second comparison. The opened bits "the range is at
    most 2^-k" are 1 up to some k and 0 after it (exact comparisons against
    decreasing thresholds), so they tell exactly the count."""
    import crypten

    lows = secure.share_each(ctx, low, precision=secure.PRECISION_BITS)
    highs = secure.share_each(ctx, high, precision=secure.PRECISION_BITS)
    spans = crypten.stack([h - lo for h, i in zip(highs, present) if i for lo, j in zip(lows, present) if j])
    thresholds = torch.tensor([2.0**-k for k in range(RANGE_STEPS + 1)], dtype=torch.float64)
    exceeds = secure.greater_than(spans.unsqueeze(2), thresholds, binary=True)  # pairs x d x steps
    within = secure.revealed_bits(secure.all_of(exceeds ^ 1))  # d x steps: no pair exceeds 2^-k
    return RANGE_STEPS + 1 - within.sum(axis=1).astype(np.int64)


NO_ROWS = -(2**20)  # a party with no rows: its placeholder exponent, below any column's


def _exponent(peak: float) -> int:
    return int(math.ceil(math.log2(peak))) if peak > 0 else 0


def _moments(ctx: JobContext, req: Request, x: np.ndarray, n: int, frame: tuple[np.ndarray, np.ndarray],
             columns: list[str], constant: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[str, Any]]]:
    """The shared moments the request needs, and the frame they are in. Constant
    columns have no dispersion to compute: only their mean is (`constant_mean_z`,
    in their frame), the others' moments as usual (`_with_constants` joins them)."""
    if not req.wants(DISPERSION):
        return frame, [("mean_z", pooled_mean(ctx, x, n, frame))]
    if constant.any():
        varying = ~constant
        means = [("constant_mean_z", pooled_mean(ctx, x[:, constant], n, (frame[0][constant], frame[1][constant])))]
        if not varying.any():
            return frame, means
        (shift, scale), shared = _moments(ctx, req, x[:, varying], n, (frame[0][varying], frame[1][varying]),
                                          [c for c, v in zip(columns, varying) if v], constant[varying])
        joined = frame[0].copy(), frame[1].copy()
        joined[0][varying], joined[1][varying] = shift, scale
        return joined, [*means, *shared]
    frame, moments = tightened_moments(ctx, x, n, frame, columns, CORRELATION_FLOOR if _mpc_correlation(req) else None)
    out: list[tuple[str, Any]] = []
    if req.wants({"sum", "mean"}):
        out.append(("mean_z", moments.mean))
    if req.wants({"covariance"}):  # variance, std and correlation follow from it
        return frame, [*out, ("biased_cov_z", moments.biased)]
    if req.wants({"variance", "std"}):
        out.append(("biased_var_z", moments.variance))
    if _mpc_correlation(req):
        out.append(("correlation", correlation(moments)))
    return frame, out


@dataclass
class Moments:
    """Secret-shared pooled moments of z = (x - shift) / scale, at 32 bits."""

    mean: Any  # mean(z)
    biased: Any  # cov(z) * (n - 1) / n
    variance: Any  # its diagonal


def pooled_moments(ctx: JobContext, x: np.ndarray, n: int, frame: tuple[np.ndarray, np.ndarray], columns: list[str],
                   floor: float | None = None, bits: int = secure.AGGREGATE_BITS) -> Moments:
    """The parties' local aggregates of z and of its products, added under
    encryption at `bits` (more than 32 for a solver whose condition number
    multiplies their error), refusing (every party alike) a column whose
    variance is below `floor` (by default var_floor, what 1e-3 needs; 0: no check)."""
    shift, scale = frame
    z = (x - shift) / scale
    d = len(columns)
    local = np.concatenate([z.sum(axis=0) / n, (z.T @ z).ravel() / n])
    pooled = secure.total(secure.share_each(ctx, local, precision=bits))
    mean = pooled[:d]
    biased = pooled[d:].reshape(d, d) - _outer(mean, d)  # cov(z) * (n-1)/n
    variance = biased[torch.arange(d), torch.arange(d)] if d > 1 else biased.reshape(1)
    floor = var_floor(ctx.world_size) if floor is None else floor
    if floor:
        ok = secure.greater_than_to_all(ctx, variance, floor * (n - 1) / n)
        if not ok.all():
            _refuse_spread(columns[int(np.argmin(ok))])
    return Moments(mean, biased, variance)


def pooled_mean(ctx: JobContext, x: np.ndarray, n: int, frame: tuple[np.ndarray, np.ndarray]) -> Any:
    """mean(z), shared: the parties' local sums added under encryption."""
    shift, scale = frame
    return secure.total(secure.share_each(ctx, ((x - shift) / scale).sum(axis=0) / n,
                                          precision=secure.AGGREGATE_BITS))


def row_frame_moments(ctx: JobContext, x: np.ndarray, n: int, frame: tuple[np.ndarray, np.ndarray],
                      columns: list[str]) -> Moments:
    """The pooled moments for programs that share each row in the range's frame
    (logistic regression, the MLP: z at 12 bits), which 1/sqrt(var(z)) then
    standardizes: refused, naming the column, below CORRELATION_FLOOR (a range
    beyond ~15 to 30 standard deviations), where 12 bits cannot carry the rows'
    spread."""
    moments = pooled_moments(ctx, x, n, frame, columns, floor=0.0)
    ok = secure.greater_than_to_all(ctx, moments.variance, CORRELATION_FLOOR * (n - 1) / n)
    if not ok.all():
        raise FailedPrecondition(
            f"column {columns[int(np.argmin(ok))]!r} ranges over more than ~15 to 30 standard deviations (a heavy tail "
            "or an outlier): this model shares rows at 12 fractional bits and cannot standardize it; log-transform or "
            "clip it before registration (linear regression and the statistics take it as it is)")
    return moments


def _refuse_spread(column: str) -> None:
    raise FailedPrecondition(
        f"column {column!r}: its spread is too small relative to its range (an outlier?) for its variance, "
        "std, covariance or correlation to be computed to 1e-3 at 24 fractional bits; it was not released")


def _mpc_correlation(req: Request) -> bool:
    return req.wants({"correlation"}) and not req.wants({"covariance"})


def _outer(mean: Any, d: int) -> Any:
    """mean mean^T at mean's precision b (32 or 40 bits): mean = hi + lo with hi at
    b / 2 bits, |lo| < 2^-b/2; hi hi^T exactly (no truncation), hi lo^T + lo hi^T as
    one batched product and truncation (lo lo^T < 2^-b is dropped). |mean| <= 2^j /
    32 <= 16 in a tightened frame, so no truncated product's encoding passes 2^44."""
    import crypten

    bits = secure.bits(mean)
    hi = secure.lowered(mean, bits // 2)
    lo = mean - secure.raised(hi, bits)  # (mean - hi would re-encode hi in place)
    rows, cols = (lambda v: v.unsqueeze(1).expand(d, d)), (lambda v: v.unsqueeze(0).expand(d, d))
    cross = secure.mul_mixed(crypten.stack([rows(lo), cols(lo)]), crypten.stack([cols(hi), rows(hi)])).sum(dim=0)
    return secure.exact_product(rows(hi), cols(hi)) + cross


def inverse_std(moments: Moments) -> Any:
    """1 / sqrt(VAR_SCALE * var(z)) at 16 bits, for var(z) >= CORRELATION_FLOOR:
    the argument lies in [0.07, 103], where CrypTen's inv_sqrt is accurate to ~1e-4."""
    return secure.inv_sqrt(secure.lowered(moments.variance.mul(VAR_SCALE)))


def correlation(moments: Moments) -> Any:
    """cov_ij / sqrt(var_i var_j) under encryption, at 24 bits (|r| error ~2e-4):
    the 16-bit inverse deviations applied by mixed-precision products."""
    biased = secure.lowered(moments.biased, secure.PRECISION_BITS)
    inverse = inverse_std(moments)
    rows = secure.mul_mixed(biased, inverse.unsqueeze(1).expand(*biased.size()))
    return secure.mul_mixed(rows, inverse.unsqueeze(0).expand(*biased.size())).mul(VAR_SCALE)


def _with_constants(opened: dict[str, np.ndarray], constant: np.ndarray, req: Request) -> dict[str, np.ndarray]:
    """The varying columns' opened moments with the constant columns' joined in,
    under the names `_moments` gives them: their means, zero (co)variances and
    undefined (NaN) correlations."""
    varying = ~constant

    def joined(name: str, fill: float, square: bool = False) -> np.ndarray:
        shape = (len(constant), len(constant)) if square else (len(constant),)
        out = np.full(shape, fill)
        if name in opened:
            out[np.ix_(varying, varying) if square else varying] = opened[name]
        return out

    out: dict[str, np.ndarray] = {}
    if req.wants({"sum", "mean"}):
        out["mean_z"] = joined("mean_z", 0.0)
        out["mean_z"][constant] = opened["constant_mean_z"]
    if req.wants({"covariance"}):
        return {**out, "biased_cov_z": joined("biased_cov_z", 0.0, square=True)}
    if req.wants({"variance", "std"}):
        out["biased_var_z"] = joined("biased_var_z", 0.0)
    if _mpc_correlation(req):
        out["correlation"] = joined("correlation", np.nan, square=True)
    return out


def _derive(opened: dict[str, np.ndarray], req: Request, n: int, frame: tuple[np.ndarray, np.ndarray] | None,
            columns: list[str]) -> dict[str, Result]:
    out: dict[str, Result] = {}
    unbias = n / (n - 1)
    for name in ("mean_z", "biased_cov_z", "biased_var_z"):
        if name in opened and not np.all(np.abs(opened[name]) <= MEAN_LIMIT):  # |z| <= 2^j by construction
            raise FailedPrecondition(f"a fixed-point truncation failed in {name.split('_')[0]}; nothing was released, "
                                     "please resubmit the job")
    if frame is not None:
        shift, scale = frame
        if "mean_z" in opened:
            mean = shift + scale * opened["mean_z"]
            out["sum"], out["mean"] = Result(mean * n, columns), Result(mean, columns)
        if "biased_cov_z" in opened:
            cov = opened["biased_cov_z"] * unbias * np.outer(scale, scale)
            cov = (cov + cov.T) / 2
            var = np.diag(cov).copy()
            out["covariance"] = Result(cov, columns)
            out["variance"] = Result(var, columns)
            sigma = np.sqrt(np.maximum(var, 0))
            out["std"] = Result(sigma, columns)
            with np.errstate(divide="ignore", invalid="ignore"):  # a constant column's: undefined (NaN)
                out["correlation"] = Result(np.clip(cov / np.outer(sigma, sigma), -1, 1), columns)
        if "biased_var_z" in opened:
            var = opened["biased_var_z"] * unbias * scale**2
            out["variance"], out["std"] = Result(var, columns), Result(np.sqrt(np.maximum(var, 0)), columns)
        if "correlation" in opened:
            corr = (opened["correlation"] + opened["correlation"].T) / 2
            np.fill_diagonal(corr, np.where(np.isnan(np.diag(corr)), np.nan, 1.0))
            out["correlation"] = Result(corr, columns)
    if "min" in opened:
        out["min"] = Result(secure.from_keys(opened["min"]), columns)
        out["max"] = Result(secure.from_keys(opened["max"]), columns)
    if "histogram" in opened and req.edges is not None:
        out["histogram"] = histogram_result(columns, opened["histogram"], opened["withheld"] > 0.5, req.edges)
    return out
