"""Joint statistics on horizontally or vertically partitioned data.

How the fixed point is kept safe and accurate (CrypTen encodes reals in a 64-bit
ring; we use 24 fractional bits):
- Every column is divided by a public power of two c >= max |value| over all
  parties, so each party only reveals the order of magnitude of its column's
  largest value, and every scaled value z lies in [-1, 1]. Sums of n values are
  then at most n; moments are at most 1 after dividing by the public row count.
  Products are only ever taken of numbers below 2^7, far inside the 2^15 the ring
  leaves for a product at 24 bits, so nothing can overflow silently; row counts
  past `MAX_ROWS` are refused up front.
- Horizontal data: each party shares only its local aggregates (column sums, the
  cross-product matrix z^T z, minima, maxima, histogram counts), which the
  parties add under encryption. Vertical data: a party's own columns work the
  same way; cross-party products come from a secure matmul of the shared scaled
  columns, in row chunks of `CHUNK_ROWS` so no sum outgrows the ring.
- Variances go through `inv_sqrt` (Newton iterations) on 256·var_z, which keeps
  its input in the range where CrypTen's approximation is accurate for any
  column whose variance exceeds 1e-4 of its scale squared.
- Accuracy: relative 1e-3 of numpy float64 on the pooled rows for every statistic
  (measured: about 1e-5); a covariance entry is accurate to 1e-3 of sigma_i*sigma_j,
  which is what "near zero" means for it (24 fractional bits of z).
- Sample statistics (ddof = 1). Only the requested statistics are revealed, only
  to the job's result receivers; everything else stays secret-shared.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gateway.errors import FailedPrecondition, InvalidArgument
from mpc.programs.context import JobContext, Result

PRECISION_BITS = 24
MAX_ROWS = 2**32
CHUNK_ROWS = 16_384
VAR_SCALE = 256
NEWTON_ITERATIONS = 8
KEY_HASH_BITS = 30

DESCRIBE = ["count", "sum", "mean", "variance", "std", "min", "max"]


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


@dataclass
class _Moments:
    """Secret-shared aggregates of the scaled data, and the public facts about it."""

    columns: list[str]
    scales: np.ndarray  # c per column
    rows: int  # N (pooled rows, or the aligned rows of vertical data)
    sums: Any  # Σ z, per column
    second: Any  # Σ z z^T / N
    minima: Any
    maxima: Any
    histogram: Any | None


def _run(ctx: JobContext, wanted: list[str]) -> dict[str, Result] | None:
    import crypten

    crypten.cfg.encoder.precision_bits = PRECISION_BITS
    crypten.cfg.functions.sqrt_nr_iters = NEWTON_ITERATIONS
    if "histogram" in wanted:
        _bin_edges(ctx)  # every party validates before anything is shared
    _validate_local(ctx)
    rows = [int(r) for r in _public(ctx, ctx.table.shape[0])]
    if ctx.partitioning == "horizontal":
        _validate_horizontal(ctx, rows)
    elif ctx.partitioning == "vertical":
        _validate_vertical(ctx, rows)
    else:
        raise InvalidArgument(f"unknown partitioning {ctx.partitioning!r}")
    ctx.progress("sharing inputs", 10)
    if ctx.partitioning == "horizontal":
        moments = _horizontal(ctx, rows, "histogram" in wanted)
    else:
        _check_keys(ctx)
        moments = _vertical(ctx, rows[0], "histogram" in wanted)
    ctx.progress("computing statistics", 60)
    secure = _statistics(moments, wanted)
    ctx.progress("revealing to receivers", 90)
    return _reveal(ctx, moments, secure, wanted)


# -- public facts and validation (identical on every party) ------------------------------

def _public(ctx: JobContext, value: Any) -> list[Any]:
    """Every party's `value` (public metadata such as row counts), by rank."""
    import crypten.communicator as comm

    return [comm.get().broadcast_obj(value if r == ctx.rank else None, r) for r in range(ctx.world_size)]


def _validate_local(ctx: JobContext) -> None:
    table = ctx.table
    columns = ctx.layout[ctx.rank].columns
    if table.ndim != 2 or table.shape[1] != len(columns):
        raise InvalidArgument(f"expected a table with columns {columns}, got shape {table.shape}")
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise InvalidArgument(f"column {columns[col]!r}, row {row + 1}: {table[row, col]} is not a finite number")
    if table.shape[0] > MAX_ROWS:
        raise InvalidArgument(f"{table.shape[0]} rows exceed the {MAX_ROWS} a fixed-point sum can hold")


def _validate_horizontal(ctx: JobContext, rows: list[int]) -> None:
    names = [entry.columns for entry in ctx.layout]
    if any(n != names[0] for n in names):
        raise InvalidArgument("horizontal jobs need the same columns, in the same order, at every party")
    if sum(rows) < 2:
        raise InvalidArgument("sample statistics need at least two rows in all")
    if sum(rows) > MAX_ROWS:
        raise InvalidArgument(f"{sum(rows)} pooled rows exceed the {MAX_ROWS} a fixed-point sum can hold")


def _validate_vertical(ctx: JobContext, rows: list[int]) -> None:
    if len(set(rows)) != 1:
        raise FailedPrecondition(f"key columns do not line up: the parties hold {rows} rows")
    if rows[0] < 2:
        raise InvalidArgument("sample statistics need at least two rows")
    if ctx.keys is None or len(ctx.keys) != ctx.table.shape[0]:
        raise InvalidArgument("vertical jobs need this party's key column, one key per row")


def _bin_edges(ctx: JobContext) -> np.ndarray:
    edges = np.asarray(ctx.parameters.get("bin_edges", []), dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise InvalidArgument("parameter bin_edges must be at least two finite, strictly increasing numbers")
    return edges


def _exponents(table: np.ndarray) -> list[int]:
    """Per column, the smallest e with max |x| <= 2^e (0 for an all-zero column)."""
    peak = np.abs(table).max(axis=0) if table.size else np.zeros(table.shape[1])
    return [int(math.ceil(math.log2(p))) if p > 0 else 0 for p in peak]


# -- sharing the aggregates ---------------------------------------------------------------

def _share_each(ctx: JobContext, local: np.ndarray) -> list[Any]:
    """Every party's same-shaped `local`, secret-shared by its owner."""
    import crypten

    mine = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float64))
    return [crypten.cryptensor(mine if r == ctx.rank else torch.zeros_like(mine), src=r) for r in range(ctx.world_size)]


def _horizontal(ctx: JobContext, rows: list[int], with_histogram: bool) -> _Moments:
    import crypten

    columns = ctx.layout[0].columns
    d = len(columns)
    exponents = np.max(np.array(_public(ctx, _exponents(ctx.table))), axis=0)
    scales = np.exp2(exponents)
    z = ctx.table / scales
    total = sum(rows)
    edges = _bin_edges(ctx) if with_histogram else None
    counts = np.stack([np.histogram(ctx.table[:, j], bins=edges)[0] for j in range(d)]) if edges is not None else np.zeros((d, 0))
    local = np.concatenate([z.sum(axis=0), (z.T @ z).ravel(), counts.ravel()])
    pooled = _sum(_share_each(ctx, local))
    extremes = _share_each(ctx, np.concatenate([z.min(axis=0), z.max(axis=0)]) if len(z) else np.zeros(2 * d))
    stacked = crypten.stack(extremes)  # world_size x 2d
    nonempty = [r for r in range(ctx.world_size) if rows[r] > 0]
    stacked = stacked[nonempty]
    minima = stacked[:, :d].min(dim=0)[0] if len(nonempty) > 1 else stacked[0, :d]
    maxima = stacked[:, d:].max(dim=0)[0] if len(nonempty) > 1 else stacked[0, d:]
    return _Moments(
        columns=columns, scales=scales, rows=total,
        sums=pooled[:d], second=pooled[d : d + d * d].reshape(d, d).div(total),
        minima=minima, maxima=maxima,
        histogram=pooled[d + d * d :].reshape(d, -1) if edges is not None else None,
    )


def _vertical(ctx: JobContext, rows: int, with_histogram: bool) -> _Moments:
    import crypten

    exponents = _public(ctx, _exponents(ctx.table))
    widths = [len(entry.columns) for entry in ctx.layout]
    columns = [c for entry in ctx.layout for c in entry.columns]
    scales = np.exp2(np.concatenate([np.asarray(e, dtype=np.float64) for e in exponents]))
    offsets = np.cumsum([0, *widths])
    mine = slice(offsets[ctx.rank], offsets[ctx.rank + 1])
    z = ctx.table / scales[mine]
    edges = _bin_edges(ctx) if with_histogram else None
    bins = len(edges) - 1 if edges is not None else 0

    # each party's own block of aggregates, shared by it
    own = []
    for r, width in enumerate(widths):
        if r == ctx.rank:
            counts = np.stack([np.histogram(ctx.table[:, j], bins=edges)[0] for j in range(width)]) if bins else np.zeros((width, 0))
            local = np.concatenate([z.sum(axis=0), (z.T @ z).ravel(), z.min(axis=0), z.max(axis=0), counts.ravel()])
        else:
            local = np.zeros(width + width * width + 2 * width + width * bins)
        owner = torch.from_numpy(local)
        own.append(crypten.cryptensor(owner, src=r))
    blocks = [[None] * len(widths) for _ in widths]
    sums, minima, maxima, hist = [], [], [], []
    for r, (width, shared) in enumerate(zip(widths, own)):
        w2 = width * width
        sums.append(shared[:width])
        blocks[r][r] = shared[width : width + w2].reshape(width, width).div(rows)
        minima.append(shared[width + w2 : 2 * width + w2])
        maxima.append(shared[2 * width + w2 : 3 * width + w2])
        if bins:
            hist.append(shared[3 * width + w2 :].reshape(width, bins))

    # cross-party blocks: a secure matmul of the shared scaled columns
    shared_columns = _share_columns(ctx, z, rows, widths)
    for a in range(len(widths)):
        for b in range(a + 1, len(widths)):
            block = None
            for start in range(0, rows, CHUNK_ROWS):
                part = shared_columns[a][start : start + CHUNK_ROWS].t().matmul(
                    shared_columns[b][start : start + CHUNK_ROWS]).div(rows)
                block = part if block is None else block + part
            blocks[a][b] = block
            blocks[b][a] = block.t()
        ctx.progress("cross-party products", 20 + 40 * (a + 1) / len(widths))
    second = crypten.cat([crypten.cat(row, dim=1) for row in blocks], dim=0)
    return _Moments(
        columns=columns, scales=scales, rows=rows, sums=crypten.cat(sums), second=second,
        minima=crypten.cat(minima), maxima=crypten.cat(maxima),
        histogram=crypten.cat(hist, dim=0) if bins else None,
    )


def _share_columns(ctx: JobContext, z: np.ndarray, rows: int, widths: list[int]) -> list[Any]:
    import crypten

    shared = []
    for r, width in enumerate(widths):
        data = torch.from_numpy(np.ascontiguousarray(z)) if r == ctx.rank else torch.zeros(rows, width, dtype=torch.float64)
        shared.append(crypten.cryptensor(data, src=r))
    return shared


def _check_keys(ctx: JobContext) -> None:
    """Every party's keys must match party 0's, row by row; only that one bit is revealed."""
    import crypten

    salt = str(ctx.parameters.get("key_salt", "mpcgate")).encode()
    assert ctx.keys is not None
    hashed = np.array([
        int.from_bytes(hashlib.blake2b(salt + str(k).encode(), digest_size=8).digest(), "little") % (1 << KEY_HASH_BITS)
        for k in ctx.keys
    ], dtype=np.float64)
    shared = _share_each(ctx, hashed)
    mismatches = None
    for other in shared[1:]:
        differs = (other - shared[0]).ne(0).sum()
        mismatches = differs if mismatches is None else mismatches + differs
    if mismatches is not None and bool((mismatches > 0.5).get_plain_text().item()):
        raise FailedPrecondition("key columns do not line up: the parties' rows are not the same entities in the same order")



def _sum(values: list[Any]) -> Any:
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


# -- the statistics, under encryption ------------------------------------------------------

def _statistics(m: _Moments, wanted: list[str]) -> dict[str, Any]:
    """Secret-shared statistics of the scaled data z (unscaled after revealing)."""
    n = m.rows
    out: dict[str, Any] = {}
    mean = m.sums.div(n)
    if "sum" in wanted:
        out["sum"] = m.sums
    if "mean" in wanted:
        out["mean"] = mean
    if "min" in wanted:
        out["min"] = m.minima
    if "max" in wanted:
        out["max"] = m.maxima
    if "histogram" in wanted and m.histogram is not None:
        out["histogram"] = m.histogram
    if not {"variance", "std", "covariance", "correlation"} & set(wanted):
        return out
    outer = mean.unsqueeze(1).matmul(mean.unsqueeze(0))
    cov = (m.second - outer) * (n / (n - 1))
    d = len(m.columns)
    var = cov[torch.arange(d), torch.arange(d)] if d > 1 else cov.reshape(1)
    if "variance" in wanted:
        out["variance"] = var
    if "covariance" in wanted:
        out["covariance"] = cov
    if {"std", "correlation"} & set(wanted):
        inverse = (var * VAR_SCALE).inv_sqrt()  # 1 / (16 sqrt(var))
        if "std" in wanted:
            out["std"] = var * inverse * math.sqrt(VAR_SCALE)
        if "correlation" in wanted:
            scaled = inverse * math.sqrt(VAR_SCALE)  # 1 / sqrt(var)
            out["correlation"] = cov * scaled.unsqueeze(1) * scaled.unsqueeze(0)
    return out


def _reveal(ctx: JobContext, m: _Moments, secure: dict[str, Any], wanted: list[str]) -> dict[str, Result] | None:
    """One opening per receiver of everything requested, then unscaling in float64."""
    import crypten

    names = [name for name in wanted if name in secure]
    flat = crypten.cat([secure[name].reshape(-1) for name in names]) if names else None
    plain = None
    for receiver in ctx.receivers:
        opened = flat.get_plain_text(dst=receiver) if flat is not None else None
        if receiver == ctx.rank:
            plain = opened
    if ctx.rank not in ctx.receivers:
        return None
    values = plain.double().numpy() if plain is not None else np.zeros(0)
    c = m.scales
    unscale = {
        "sum": c, "mean": c, "min": c, "max": c, "variance": c**2, "std": c,
        "covariance": np.outer(c, c), "correlation": np.ones((len(c), len(c))), "histogram": None,
    }
    results: dict[str, Result] = {}
    offset = 0
    for name in names:
        shape = tuple(secure[name].size())
        size = int(np.prod(shape)) if shape else 1
        value = values[offset : offset + size].reshape(shape)
        offset += size
        factor = unscale[name]
        if name == "histogram":
            value = np.round(value)
        elif factor is not None:
            value = value * factor
        if name in ("covariance", "correlation"):
            value = (value + value.T) / 2  # the two halves were computed separately
        if name == "correlation":
            value = np.clip(value, -1.0, 1.0)
        results[name] = Result(value, list(m.columns))
    if "count" in wanted:
        results = {"count": Result(np.full(len(m.columns), float(m.rows)), list(m.columns)), **results}
    return results
