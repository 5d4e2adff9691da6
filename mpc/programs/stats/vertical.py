"""Statistics of vertically partitioned data: the parties hold different columns of
the same rows (aligned by the private set intersection, mpc.programs.intersection).

A party's own columns need no cryptography to be computed: it knows them whole.
So each party computes its own columns' statistics exactly in float64 (sum, mean,
variance, std, extremes, histogram with its own group-size rule, and the
covariance and correlation among its own columns) and delivers them as secret-
shared mantissas and exponents, which only the receivers open: exact to 2^-25
relative whatever the magnitude, and nothing about their size is public.

Only cross-party products need MPC. Each party standardizes its own columns
locally, u = (x - mean) / std, and scales them by a public power of two
2^b >= max |u| (b is public: how many standard deviations the farthest value
lies from the mean, to a power of two). The correlation between two parties'
columns is then a secure matmul of the scaled columns at 16 bits, in row chunks,
divided by n - 1; the covariance multiplies it by the two shared standard
deviations. Where 2^(b_i + b_j) is so large (heavy tails at both parties: values
~16 to 32 standard deviations out) that 16 bits would miss 1e-3, the scaled
columns go in two 16-bit limbs (the rest below the first limb's grid, scaled by
2^16, as a second), multiplied exactly at 32 bits: twice the shares and four
times the products, for that pair only. Where even that would miss 1e-3 (values
~1,000 standard deviations out at both parties), the job is refused naming the
columns, before anything is shared. A constant column (every party learns which
are) enters the products as zeros: covariance 0, correlation undefined (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.errors import FailedPrecondition
from mpc.programs import secure
from mpc.programs.rows import CHUNK_ROWS, row_sum
from mpc.programs.stats.request import Request, histogram_result, local_histogram

TOLERANCE = 1e-3
LIMB = 1 << secure.PRODUCT_BITS
LIMB_AT = 64
"""A pair of parties' correlations take two limbs once one limb's error bound
passes TOLERANCE / LIMB_AT: a model's coefficients multiply these errors by the
features' condition, and with few rows single truncations dominate them (17 rows
with one outlier: coefficients 1.5x past their bound in half the runs at
TOLERANCE / 4). Large tables stay in one limb: the bound falls as 1 / n."""


def compute(ctx: JobContext, req: Request, n: int) -> dict[str, Result] | None:
    widths = [len(entry.columns) for entry in ctx.layout]
    columns = [c for entry in ctx.layout for c in entry.columns]
    bins = len(req.edges) - 1 if req.edges is not None else 0
    ctx.progress("own columns' statistics", 15)
    own_names, own = _own_statistics(ctx, req)
    sizes = [_own_size(w, bins, req) for w in widths]
    delivered = [secure.share_from(ctx, r, secure.split(own) if r == ctx.rank else None, (secure.SPLIT_ROWS, sizes[r]))
                 for r in range(ctx.world_size)]
    cross: list[tuple[str, Any]] = []
    if req.wants({"covariance", "correlation"}) and ctx.world_size > 1:
        cross = _cross(ctx, req, n, widths, columns)
    ctx.progress("revealing to receivers", 90)
    opened = secure.open_to_receivers(ctx, [*delivered, *(value for _, value in cross)])
    if opened is None:
        return None
    own_values = [secure.join(o) for o in opened[: ctx.world_size]]
    cross_values = dict(zip([name for name, _ in cross], opened[ctx.world_size :]))
    return _assemble(req, n, widths, columns, own_names, own_values, cross_values)


def _own_size(width: int, bins: int, req: Request) -> int:
    size = width * len([s for s in ("sum", "mean", "variance", "std", "min", "max") if s in req.wanted])
    size += 2 * width * width * req.wants({"covariance", "correlation"})
    return size + 2 * width * bins


def _own_statistics(ctx: JobContext, req: Request) -> tuple[list[str], np.ndarray]:
    x = ctx.table
    centered = _centered(x)
    names: list[str] = []
    parts: list[np.ndarray] = []
    local = {
        "sum": lambda: x.sum(axis=0), "mean": lambda: x[0] + centered.mean(axis=0),
        "variance": lambda: centered.var(axis=0, ddof=1), "std": lambda: centered.std(axis=0, ddof=1),
        "min": lambda: x.min(axis=0), "max": lambda: x.max(axis=0),
    }
    for name in ("sum", "mean", "variance", "std", "min", "max"):
        if name in req.wanted:
            names.append(name)
            parts.append(local[name]())
    if req.wants({"covariance", "correlation"}):
        cov = np.atleast_2d(np.cov(centered, rowvar=False, ddof=1))
        sigma = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(np.outer(sigma, sigma) > 0, cov / np.outer(sigma, sigma), np.nan)
        names += ["own_cov", "own_corr"]
        parts += [cov.ravel(), np.nan_to_num(corr, nan=0.0).ravel()]
    if req.edges is not None:
        counts, small = local_histogram(ctx, x, req.edges)
        names += ["histogram", "withheld"]
        parts += [counts.ravel(), small.ravel()]
    return names, np.concatenate(parts) if parts else np.zeros(0)


def _centered(x: np.ndarray) -> np.ndarray:
    """x minus its first row: exact for values within a factor two of each other
    (a large offset), so float64 moments of it keep their precision."""
    return x - x[0]


def _cross(ctx: JobContext, req: Request, n: int, widths: list[int], columns: list[str]) -> list[tuple[str, Any]]:
    """Correlations (and covariances) between every pair of parties' columns."""
    sigma = _centered(ctx.table).std(axis=0, ddof=1)
    correlations, _ = cross_correlations(ctx, n, widths, columns, constants=True)
    sigmas = [secure.share_from(ctx, r, secure.split(sigma) if r == ctx.rank else None, (secure.SPLIT_ROWS, widths[r]),
                                precision=secure.PRODUCT_BITS) for r in range(ctx.world_size)]
    out: list[tuple[str, Any]] = []
    for (a, b), corr in correlations.items():
        if "correlation" in req.wanted:
            out.append((f"corr:{a}:{b}", corr))
        if "covariance" in req.wanted:
            shape = (widths[a], widths[b])
            mantissa = secure.mul_mixed(corr, sigmas[a][0].unsqueeze(1).expand(*shape))
            mantissa = secure.mul_mixed(mantissa, sigmas[b][0].unsqueeze(0).expand(*shape))
            exponent = sigmas[a][-1].unsqueeze(1) + sigmas[b][-1].unsqueeze(0)
            out += [(f"covm:{a}:{b}", mantissa), (f"cove:{a}:{b}", exponent)]
    return out


def cross_correlations(ctx: JobContext, n: int, widths: list[int], columns: list[str], limbs: bool = True,
                       constants: bool = False, precise: bool = False) -> tuple[dict[tuple[int, int], Any], float]:
    """Secret-shared correlations (24 bits; `precise`: 40 bits, always in two
    limbs, for a solver whose condition number multiplies their error) between the
    columns of every pair of parties (a < b), from each party's locally
    standardized columns, and the bound on their error; refused, naming the
    columns, where outliers would push the
    error past 1e-3 even in two limbs (or, without `limbs`, in one). A constant
    column is refused by name (every party learns which are), or, with
    `constants`, enters as zeros (its correlations are undefined: the caller's)."""
    x = _centered(ctx.table)
    sigma = x.std(axis=0, ddof=1)
    constant = [c for c, s in zip(ctx.layout[ctx.rank].columns, sigma) if not s > 0]
    flat = secure.public(ctx, constant)
    if any(flat) and not constants:
        name = next(c for c in flat if c)[0]
        raise FailedPrecondition(f"column {name!r} is constant: it has no correlation with other columns")
    u = (x - x.mean(axis=0)) / np.where(sigma > 0, sigma, 1.0)
    bounds = [int(math.ceil(math.log2(max(float(np.abs(col).max()), 1.0)))) for col in u.T]
    exps = np.concatenate([np.asarray(b, dtype=np.int64) for b in secure.public(ctx, bounds)])
    offsets = np.cumsum([0, *widths])
    pairs = [(a, b) for a in range(len(widths)) for b in range(a + 1, len(widths)) if widths[a] and widths[b]]
    errors = _unit_errors(n)
    limbed: set[tuple[int, int]] = set()
    bound = 0.0
    for a, b in pairs:  # (a party may hold no columns here: a model's label holder)
        reach = 2.0 ** (exps[offsets[a] : offsets[a + 1]].max() + exps[offsets[b] : offsets[b + 1]].max())
        if precise or (limbs and errors[0] * reach > TOLERANCE / LIMB_AT):
            limbed.add((a, b))
        worst = errors[(a, b) in limbed] * reach
        bound = max(bound, worst)
        if worst > TOLERANCE / 4:
            i = offsets[a] + int(np.argmax(exps[offsets[a] : offsets[a + 1]]))
            j = offsets[b] + int(np.argmax(exps[offsets[b] : offsets[b + 1]]))
            raise FailedPrecondition(
                f"columns {columns[i]!r} and {columns[j]!r} have values up to 2^{exps[i]} and 2^{exps[j]} standard "
                "deviations from their means: their correlation cannot be computed to 1e-3 in the fixed point")
    scaled = u / np.exp2(bounds)
    high = np.round(scaled * 2.0**secure.PRODUCT_BITS) / 2.0**secure.PRODUCT_BITS
    lows = {r for pair in limbed for r in pair}
    shared = [secure.share_from(ctx, r, high if r == ctx.rank else None, (n, widths[r]), precision=secure.PRODUCT_BITS)
              if widths[r] else None for r in range(ctx.world_size)]
    rest = [secure.share_from(ctx, r, (scaled - high) * LIMB if r == ctx.rank else None, (n, widths[r]),
                              precision=secure.PRODUCT_BITS) if r in lows else None for r in range(ctx.world_size)]
    out: dict[tuple[int, int], Any] = {}
    for done, (a, b) in enumerate(pairs):
        factors = [[int(2 ** (exps[offsets[a] + i] + exps[offsets[b] + j])) for j in range(widths[b])]
                   for i in range(widths[a])]
        if (a, b) in limbed:
            total = _divided(_limbed_sum(shared[a], rest[a], shared[b], rest[b]), n - 1)  # 40 bits
            bits = secure.PRECISE_BITS if precise else secure.PRECISION_BITS
            out[(a, b)] = secure.lowered(secure.times_integers(total, factors), bits)
        else:
            block = row_sum(shared[a], shared[b])
            out[(a, b)] = secure.times_integers(secure.raised(block).div(n - 1), factors)
        ctx.progress("cross-party products", 20 + 60 * (done + 1) / len(pairs))
    return out, bound


def _unit_errors(n: int) -> tuple[float, float]:
    """The error bound of a cross-party correlation per unit of 2^(b_i + b_j), in
    one limb and in two. One: each chunk's 16-bit truncation and the 16-bit inputs'
    rounding in the sums, over n - 1, then the 24-bit division. Two: the inputs to
    2^-33 (their rest in a second 16-bit limb, scaled by 2^16), sums exact at 32
    bits, two truncations combining the limbs, then the division to 40 bits."""
    chunks = math.ceil(n / CHUNK_ROWS)
    one = (chunks * 2.0**-16 + math.sqrt(n) * 2.0**-16) / (n - 1) + 2.0**-24
    two = (math.sqrt(n) * 2.0**-32 + 2.0**-30) / (n - 1) + 2.0**-40
    return one, two


def _divided(total: Any, divisor: int, extra: int = 8) -> Any:
    """total / divisor with `extra` more fractional bits than total's: the
    quotient's truncation (one unit of its last place) refined from the exact
    remainder, so the factors 2^(b_i + b_j) applied after it do not scale that
    unit into the correlation's error."""
    quotient = total.div(divisor)
    remainder = total - secure.times_integers(quotient, divisor)  # exact: |.| <= a few units x divisor
    bits = secure.bits(total) + extra
    return secure.raised(quotient, bits) + secure.raised(remainder, bits).div(divisor)


def _limbed_sum(high_a: Any, low_a: Any, high_b: Any, low_b: Any) -> Any:
    """sum over rows of v_a^T v_b at 32 bits, each v = high + low / 2^16 in 16-bit
    limbs: [high | low]^T [high | low] exactly (16 x 16 bits, no truncation: with
    |v| <= 1 a chunk's encodings stay below 2^45), then hh + (hl + lh + ll / 2^16) / 2^16."""
    import crypten

    wa, wb = int(high_a.size(1)), int(high_b.size(1))
    left, right = crypten.cat([high_a, low_a], dim=1), crypten.cat([high_b, low_b], dim=1)
    block = row_sum(left, right, lambda a, b: secure.exact_product(a, b, "matmul"))
    cross = block[:wa, wb:] + block[wa:, :wb] + block[wa:, wb:].div(LIMB)
    return block[:wa, :wb] + cross.div(LIMB)


def _assemble(req: Request, n: int, widths: list[int], columns: list[str], names: list[str],
              own: list[np.ndarray], cross: dict[str, np.ndarray]) -> dict[str, Result]:
    d = len(columns)
    offsets = np.cumsum([0, *widths])
    vectors: dict[str, np.ndarray] = {name: np.zeros(d) for name in ("sum", "mean", "variance", "std", "min", "max")}
    cov, corr = np.zeros((d, d)), np.eye(d)
    bins = len(req.edges) - 1 if req.edges is not None else 0
    counts, withheld = np.zeros((d, bins)), np.zeros((d, bins))
    for r, values in enumerate(own):
        w, block = widths[r], slice(offsets[r], offsets[r + 1])
        at = 0
        for name in names:
            size = w * w if name in ("own_cov", "own_corr") else w * bins if name in ("histogram", "withheld") else w
            part = values[at : at + size]
            at += size
            if name == "own_cov":
                cov[block, block] = part.reshape(w, w)
            elif name == "own_corr":
                corr[block, block] = part.reshape(w, w)
            elif name == "histogram":
                counts[block] = part.reshape(w, bins)
            elif name == "withheld":
                withheld[block] = part.reshape(w, bins)
            else:
                vectors[name][block] = part
    for a in range(len(widths)):
        for b in range(a + 1, len(widths)):
            rows, cols = slice(offsets[a], offsets[a + 1]), slice(offsets[b], offsets[b + 1])
            if f"corr:{a}:{b}" in cross:
                corr[rows, cols] = cross[f"corr:{a}:{b}"]
                corr[cols, rows] = corr[rows, cols].T
            if f"covm:{a}:{b}" in cross:
                cov[rows, cols] = np.ldexp(cross[f"covm:{a}:{b}"], np.round(cross[f"cove:{a}:{b}"]).astype(np.int64))
                cov[cols, rows] = cov[rows, cols].T
    if "own_cov" in names:  # a constant column (variance 0): covariances 0, correlations undefined, as numpy's
        flat = np.diag(cov) == 0
        cov[flat, :], cov[:, flat] = 0.0, 0.0
        corr[flat, :], corr[:, flat] = np.nan, np.nan
    out = {name: Result(vectors[name], columns) for name in vectors if name in req.wanted}
    if "covariance" in req.wanted:
        out["covariance"] = Result(cov, columns)
    if "correlation" in req.wanted:
        out["correlation"] = Result(np.clip(corr, -1, 1), columns)
    if req.edges is not None:
        out["histogram"] = histogram_result(columns, counts, withheld > 0.5, req.edges)
    return out
