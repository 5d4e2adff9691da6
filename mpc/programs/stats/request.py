"""What a statistics job asks for, the checks every party makes before anything is
shared, and how revealed values become the released statistics.

Accuracy (documented in the README and asserted by tests/mpc/test_stats_numerics.py
against numpy float64 on the pooled rows): count exact; histogram counts exact;
min and max exact to 2^-49 relative; sum and mean within 1e-3 relative or 1e-5 of
the column's range; variance and std within 1e-3 relative; covariance within
1e-3 * sigma_i * sigma_j; correlation within 1e-3 absolute. A column whose
spread is too small for that, relative to its range or magnitude, is refused
with an error naming it, never answered wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import HistogramParameters, StatsParameters
from mpc.errors import FailedPrecondition, InvalidArgument

MAX_ROWS = 2**32
MOMENTS = {"sum", "mean", "variance", "std", "covariance", "correlation"}
DISPERSION = {"variance", "std", "covariance", "correlation"}
EXTREMES = {"min", "max"}


@dataclass(frozen=True)
class Request:
    wanted: list[str]  # in release order
    edges: np.ndarray | None = None

    def wants(self, names: set[str]) -> bool:
        return bool(names & set(self.wanted))


def request(ctx: JobContext, base: list[str]) -> Request:
    """The statistics to release: min and max only when the job asks for extremes
    (parameter `extremes`), and only if this party's own policy allows it."""
    wanted = list(base)
    settings = ctx.settings(StatsParameters)
    if settings.extremes:  # (this party's rules allow it: mpc.programs.run checked them)
        wanted += ["min", "max"]
    edges = None
    if "histogram" in wanted:
        edges = np.asarray(ctx.settings(HistogramParameters).bin_edges, dtype=np.float64)
    return Request(wanted, edges)


def validate_local(ctx: JobContext) -> None:
    table = ctx.table
    columns = ctx.layout[ctx.rank].columns
    if table.ndim != 2 or table.shape[1] != len(columns):
        raise InvalidArgument(f"expected a table with columns {columns}, got shape {table.shape}")
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise InvalidArgument(f"column {columns[col]!r}, row {row + 1}: not a finite number")
    if table.shape[0] > MAX_ROWS:
        raise InvalidArgument(f"{table.shape[0]} rows exceed the {MAX_ROWS} a fixed-point sum can hold")


def validate_shape(ctx: JobContext, rows: list[int]) -> None:
    if ctx.partitioning == "horizontal":
        names = [entry.columns for entry in ctx.layout]
        if any(n != names[0] for n in names):
            raise InvalidArgument("horizontal jobs need the same columns, in the same order, at every party")
        pooled = sum(rows)
    elif ctx.partitioning == "vertical":
        if len(set(rows)) != 1:
            raise FailedPrecondition(f"key columns do not line up: the parties hold {rows} rows")
        if ctx.keys is None or len(ctx.keys) != ctx.table.shape[0]:
            raise InvalidArgument("vertical jobs need this party's key column, one key per row")
        pooled = rows[0]
    else:
        raise InvalidArgument(f"unknown partitioning {ctx.partitioning!r}")
    if pooled < 2:
        raise InvalidArgument("sample statistics need at least two rows in all")
    if pooled > MAX_ROWS:
        raise InvalidArgument(f"{pooled} rows exceed the {MAX_ROWS} a fixed-point sum can hold")


def party_rows(ctx: JobContext) -> list[int]:
    """Every party's row count (public), after each checks its own table and all
    check the shapes alike."""
    from mpc.programs import secure

    validate_local(ctx)
    rows = [int(r) for r in secure.public(ctx, ctx.table.shape[0])]
    validate_shape(ctx, rows)
    return rows


def job_shape(ctx: JobContext) -> tuple[list[int], int, list[str]]:
    """`party_rows`; the rows the job runs on (pooled, or the aligned rows); and
    the job's columns in order (horizontal: every party's; vertical: each party's
    own, in rank order)."""
    rows = party_rows(ctx)
    if ctx.partitioning == "horizontal":
        return rows, sum(rows), list(ctx.layout[0].columns)
    return rows, rows[0], [c for entry in ctx.layout for c in entry.columns]


def local_histogram(ctx: JobContext, table: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """This party's counts per column and bin, and the bins its own rule withholds:
    those holding at least one but fewer than `min_group_size` of its rows."""
    counts = np.stack([np.histogram(table[:, j], bins=edges)[0] for j in range(table.shape[1])]).astype(np.float64)
    small = (counts > 0) & (counts < ctx.rules.min_group_size)
    if small.any() and ctx.rules.small_groups == "refuse":
        raise FailedPrecondition(f"a histogram bin holds fewer than {ctx.rules.min_group_size} of this party's rows, "
                                 "and its policy refuses such jobs")
    return counts, small.astype(np.float64)


def bin_labels(edges: np.ndarray) -> list[str]:
    return [f"[{a:g}, {b:g}{']' if i == len(edges) - 2 else ')'}" for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def histogram_result(columns: list[str], counts: np.ndarray, suppressed: np.ndarray, edges: np.ndarray) -> Result:
    values = np.where(suppressed, np.nan, np.round(counts))
    return Result(values, list(columns), bin_labels(edges), [int(i) for i in np.flatnonzero(suppressed.ravel())])


def check_plausible(name: str, values: np.ndarray, columns: list[str]) -> None:
    """Revealed values of bounded quantities outside their bounds mean a fixed-point
    failure (e.g. a truncation that wrapped); refuse rather than release them. A
    correlation's whole row and column are undefined (NaN) for a constant column."""
    if name == "correlation" and values.ndim == 2:
        defined = ~np.isnan(values).all(axis=1)
        values = values[defined][:, defined]
    if not np.all(np.isfinite(values)):
        raise FailedPrecondition(f"{name}: a non-finite value came out of the computation; nothing was released")
    if name == "correlation" and np.any(np.abs(values) > 1.01):
        raise FailedPrecondition("correlation: a fixed-point truncation failed (|r| > 1); nothing was released, "
                                 "please resubmit the job")
    if name in ("variance", "std") and np.any(values < 0):
        column = columns[int(np.argmin(values))]
        raise FailedPrecondition(f"{name} of column {column!r} came out negative (a fixed-point failure); "
                                 "nothing was released, please resubmit the job")


def ordered(results: dict[str, Result], wanted: list[str], rows: int, columns: list[str]) -> dict[str, Result]:
    out = {"count": Result(np.full(len(columns), float(rows)), list(columns))} if "count" in wanted else {}
    for name in wanted:
        if name in results:
            if name != "histogram":
                check_plausible(name, results[name].values, columns)
            out[name] = results[name]
    return out
