"""Missing cells, handled before a job's program runs (mpc.programs.run calls
`prepare` once vertical jobs have aligned their rows), as the job's `missing`
parameter chooses per column. Each party handles its own rows; programs then see
complete tables.

- drop (horizontal jobs only): a party drops its rows that miss a value in a
  column so marked. Row counts are public, so every party learns every party's
  count of complete rows.
- mean, median: a column's missing cells take the mean (median) of its observed
  cells. Horizontal: pooled over every party's observed cells under MPC, and told
  to every party of the job with the pooled count of observed cells (so the
  registry's review asks that every party be an allowed receiver). A party whose
  observed cells in such a column number more than 0 and fewer than its
  min_group_size refuses (else another party could subtract its own cells from
  the pooled value). The mean is exact to about 2^-32 of the cells' spread (two passes:
  the second sums deviations from the first); the median is the lower median, to
  2^-31 of the power of two above the largest distance of a cell from the mean
  (public, as statistics' frames are), found by bisection: one revealed bit per
  step, nothing else. Vertical: the column's
  owner fills it from its own observed cells among the common rows; nothing leaves it.
- indicator: as mean, plus a 0/1 column "<column>_missing" after the party's
  columns (added by the parameter alone, at every party holding the column, so
  every party's layout changes alike).

A categorical column's missing cells are dropped (drop) or stay missing: no
category in its one-hot encoding (mpc.programs.categories).

A label is never imputed: where the job names a choice for it, horizontal jobs
drop rows whose label is missing; a vertical job is refused if a common row
misses its label. A column with missing cells and no choice is refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from mpc.catalogue.context import JobContext, PartyLayout, Result
from mpc.catalogue.schemas import label_of, missing_choice, private, with_indicators
from mpc.errors import FailedPrecondition, PolicyRefused
from mpc.programs import secure

MEDIAN_STEPS = 32


def prepare(ctx: JobContext) -> JobContext:
    """`ctx` with every missing cell handled as the job chooses (see the module)."""
    columns = ctx.layout[ctx.rank].columns
    gaps = np.isnan(ctx.table)
    counts = gaps.sum(axis=0) if gaps.shape[1:] == (len(columns),) else np.zeros(len(columns), dtype=np.int64)
    if not ctx.parameters.missing:
        if counts.any():
            j = int(np.argmax(counts > 0))
            raise FailedPrecondition(f"column {columns[j]!r} has {int(counts[j])} missing cells: say what the job "
                                     "does with them, parameter missing (drop, mean, median or indicator)")
        return ctx
    vertical = ctx.partitioning == "vertical"
    problems = [p for p in secure.public(ctx, _problem(ctx, columns, gaps, counts)) if p]
    if problems:  # (every party stops alike)
        raise FailedPrecondition(problems[0])
    if not columns:  # (a model's holder, no rows) takes part in the pooled fill of a horizontal job's columns
        shared = next((entry.columns for entry in ctx.layout if entry.columns), [])
        if not vertical and _filled(ctx, shared):
            empty = np.zeros((0, len(shared)))
            _pooled_fill(ctx, empty, empty.astype(bool), _filled(ctx, shared), [missing_choice(ctx.parameters, c)
                                                                                   for c in shared])
        return dataclasses.replace(ctx, layout=[_with_indicators(ctx, entry) for entry in ctx.layout])
    choices = [missing_choice(ctx.parameters, c) for c in columns]
    label = label_of(ctx.parameters)
    drop = [j for j, (c, k) in enumerate(zip(columns, choices)) if k == "drop" or (c == label and k is not None)]
    keep = ~gaps[:, drop].any(axis=1)
    table, gaps = ctx.table[keep].copy(), gaps[keep]
    fill = _filled(ctx, columns)
    if fill:
        values = _local_fill(table, gaps, fill, choices) if vertical else _pooled_fill(ctx, table, gaps, fill, choices)
        for j, value in zip(fill, values):
            table[gaps[:, j], j] = value
    flagged = [j for j, c in enumerate(columns) if c != label and choices[j] == "indicator"]
    if flagged:
        table = np.concatenate([table, gaps[:, flagged].astype(np.float64)], axis=1)
    return dataclasses.replace(ctx, table=table, keys=None if ctx.keys is None else ctx.keys[keep],
                               layout=[_with_indicators(ctx, entry) for entry in ctx.layout], missing_counts=counts)


def _problem(ctx: JobContext, columns: list[str], gaps: np.ndarray, counts: np.ndarray) -> str:
    """Why this party cannot handle its missing cells as the job says ("" if it can)."""
    choices = [missing_choice(ctx.parameters, c) for c in columns]
    undecided = [c for c, k, n in zip(columns, choices, counts) if n and k is None]
    if undecided:
        return f"column {undecided[0]!r} has missing cells and parameter missing makes no choice for it"
    label = label_of(ctx.parameters)
    if ctx.partitioning != "vertical":
        return ""
    if label in columns and counts[columns.index(label)]:
        return (f"some common rows miss their label {label!r}; a vertical job cannot drop them without telling every "
                "party which: remove them from the dataset first")
    empty = [columns[j] for j in _filled(ctx, columns) if gaps[:, j].all()]
    return f"column {empty[0]!r} has no observed cell among the common rows: nothing to impute it from" if empty else ""


def _filled(ctx: JobContext, columns: list[str]) -> list[int]:
    """The numeric columns (by index) whose missing cells take a value: public,
    from the parameter (a categorical column's missing cells stay missing: no
    category, mpc.programs.categories)."""
    label = label_of(ctx.parameters)
    return [j for j, c in enumerate(columns) if c != label and c not in ctx.vocabularies
            and missing_choice(ctx.parameters, c) in ("mean", "median", "indicator")]


def _with_indicators(ctx: JobContext, entry: PartyLayout) -> PartyLayout:
    return dataclasses.replace(entry, columns=with_indicators(ctx.parameters, entry.columns))


def _local_fill(table: np.ndarray, gaps: np.ndarray, fill: list[int], choices: list[str | None]) -> list[float]:
    """Vertical: the owner's own observed cells among the common rows."""
    out = []
    for j in fill:
        seen = table[~gaps[:, j], j]  # (not empty: _problem)
        out.append(float(np.quantile(seen, 0.5, method="lower") if choices[j] == "median" else seen.mean()))
    return out


def _pooled_fill(ctx: JobContext, table: np.ndarray, gaps: np.ndarray, fill: list[int],
                 choices: list[str | None]) -> list[float]:
    """Horizontal: each column's pooled mean or lower median over every party's
    observed cells, computed under MPC and opened to every party."""
    seen = ~gaps[:, fill]
    counted = seen.sum(axis=0)
    small = (counted > 0) & (counted < ctx.rules.min_group_size)
    if any(secure.public(ctx, bool(small.any()))):
        raise PolicyRefused("a party's policy refuses to impute these columns from fewer observed cells than its "
                            "min_group_size; nothing was computed")
    observed = secure.open_integers_to_all(ctx, secure.total(secure.share_integers(ctx, counted)))
    if not observed.all():
        column = next(e.columns for e in ctx.layout if e.columns)[fill[int(np.argmin(observed))]]
        raise FailedPrecondition(f"column {column!r} has no observed cell at any party: nothing to impute it from")
    rows = sum(int(r) for r in secure.public(ctx, len(table)))
    values = np.where(seen, table[:, fill], 0.0)
    means, reach = np.zeros(len(fill)), np.zeros(len(fill))
    for _ in range(2):  # the second pass refines the first: a sum of deviations from it
        reach = _reach(ctx, np.where(seen, values - means, 0.0))
        means = means + _pooled_sum(ctx, np.where(seen, values - means, 0.0), reach, rows) / observed
    medians = _pooled_median(ctx, values, seen, means, reach, observed) \
        if any(choices[j] == "median" for j in fill) else means
    return [float(medians[i] if choices[j] == "median" else means[i]) for i, j in enumerate(fill)]


def _reach(ctx: JobContext, values: np.ndarray) -> np.ndarray:
    """Per column, the public power of two above every party's largest |value|
    (as statistics' frames reveal)."""
    own = [math.frexp(p)[1] if p > 0 else -1074 for p in np.abs(values).max(axis=0, initial=0.0)]
    return np.exp2(np.max(np.array(secure.public(ctx, own)), axis=0).astype(np.float64))


def _pooled_sum(ctx: JobContext, values: np.ndarray, reach: np.ndarray, rows: int) -> np.ndarray:
    """Every party's column sums, added shared and opened: each party's sum scaled
    into [-1, 1] by `reach` and the pooled row count, at 32 fractional bits."""
    local = values.sum(axis=0) / reach / max(rows, 1)
    pooled = secure.total(secure.share_each(ctx, local, precision=secure.AGGREGATE_BITS))
    return np.asarray(secure.opened(pooled), dtype=np.float64) * reach * rows


def _pooled_median(ctx: JobContext, values: np.ndarray, seen: np.ndarray, means: np.ndarray, reach: np.ndarray,
                   observed: np.ndarray) -> np.ndarray:
    """The smallest t (to 2^-(MEDIAN_STEPS - 1) of `reach`, which bounds every
    observed cell's distance from the mean) with at least ceil(observed / 2)
    observed cells <= t: per step, each party counts its own cells <= t, the
    counts are added shared and compared with the target; only the bit opens."""
    low, high = means - reach, means + reach
    target = torch.from_numpy(((observed + 1) // 2).astype(np.float64))
    for _ in range(MEDIAN_STEPS):
        middle = (low + high) / 2
        local = ((values <= middle) & seen).sum(axis=0)
        enough = ~secure.less_than_to_all(ctx, secure.total(secure.share_integers(ctx, local)), target)
        high, low = np.where(enough, middle, high), np.where(enough, low, middle)
    return high


def counts_result(ctx: JobContext, columns: list[str]) -> Result | None:
    """Statistics' `missing`: per column, the missing cells before the job handled
    them (pooled; vertical: the owner's among the common rows), to the receivers;
    a party's count above 0 and below its min_group_size is withheld (or the job
    refused, as its policy says). None where the job makes no choice (or adds
    noise: these counts carry none)."""
    if not ctx.parameters.missing or private(ctx.parameters) is not None or ctx.missing_counts is None:
        return None
    own = ctx.layout[ctx.rank].columns[: len(ctx.missing_counts)]  # (indicator columns miss nothing)
    local = np.array([ctx.missing_counts[own.index(c)] if c in own else 0 for c in columns], dtype=np.int64)
    small = (local > 0) & (local < ctx.rules.min_group_size)
    if small.any() and ctx.rules.small_groups == "refuse":
        raise FailedPrecondition(f"fewer than {ctx.rules.min_group_size} of this party's cells are missing in a "
                                 "column, and its policy refuses releasing such counts")
    withheld = np.any(np.array(secure.public(ctx, small.tolist()), dtype=bool), axis=0)
    opened = secure.open_to_receivers(ctx, [secure.total(secure.share_integers(ctx, local))])
    if opened is None:
        return None
    values = np.where(withheld, np.nan, np.round(opened[0]))
    return Result(values, list(columns), suppressed=[int(i) for i in np.flatnonzero(withheld)])
