"""stats.crosstab: the contingency table of two categorical columns (or the
frequencies of one), across parties, and Pearson's chi-square test of
independence.

Released to the receivers: `count` (the job's rows), `crosstab` (rows: the first
column's categories, columns: the second's; one column: `frequencies`) and,
where no cell is withheld, `chi2`, `dof` and `p_value`. A withheld cell is NaN
and listed in `suppressed`; the test is then not released (it would tell the
withheld cells).

Small cells. Horizontal: a cell holding 1 to k-1 of any party's rows is withheld
(k that party's min_group_size; or the job refused, as its policy says), as
histogram bins are. Vertical: every cell is every party's rows; a cell of 1 to
k-1 rows is withheld, k the strictest party's. Because the job's row count is
public, the withheld cells together must hold 0 or at least k rows (of each
party, horizontal): where they do not, one more cell is withheld, the smallest
that restores it (horizontal: the party that needs it picks its own smallest
cell of at least k rows; vertical: the smallest non-empty cell, found under MPC).
Every party learns which cells are withheld and why nothing else: the counts
are added (horizontal) or multiplied (vertical: one-hot columns of different
owners) as exact integers under MPC and opened to the receivers only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import groups, secure

BIG = 2**40


def crosstab(ctx: JobContext) -> dict[str, Result] | None:
    secure.configure()
    blocks = _blocks(ctx)
    rows = [int(r) for r in secure.public(ctx, len(ctx.table))]
    n = sum(rows) if ctx.partitioning == "horizontal" else max(rows)  # (vertical: the aligned rows; a party may hold none)
    if ctx.partitioning == "horizontal":
        counts, withheld = _horizontal(ctx, blocks)
    else:
        counts, withheld = _vertical(ctx, blocks, n)
    opened = secure.open_to_receivers(ctx, [counts * groups.kept(withheld, counts)])
    if opened is None:
        return None
    (first, first_levels), *rest = blocks
    table = np.where(withheld, np.nan, np.round(opened[0]))
    suppressed = [int(i) for i in np.flatnonzero(withheld)]
    if not rest:
        return {"count": Result(np.array([float(n)]), ["count"]),
                "frequencies": Result(table.reshape(-1), list(first_levels), suppressed=suppressed)}
    out = {"count": Result(np.array([float(n)]), ["count"]),
           "crosstab": Result(table, list(first_levels), list(rest[0][1]), suppressed)}
    if not suppressed:
        chi2, dof, p = _chi_square(table)
        out |= {"chi2": Result(np.array([chi2]), ["chi2"]), "dof": Result(np.array([float(dof)]), ["dof"]),
                "p_value": Result(np.array([p]), ["p_value"])}
    return out


def _blocks(ctx: JobContext) -> list[tuple[str, tuple[str, ...]]]:
    """The job's categorical columns, in order (1 or 2), with their categories."""
    names = [c for c in ctx.vocabularies if any(c in _originals(e.columns) for e in ctx.layout)]
    order = [c for e in ctx.layout for c in _originals(e.columns)]
    names = sorted(dict.fromkeys(names), key=order.index)
    if not 1 <= len(names) <= 2 or len(names) != len(dict.fromkeys(order)):
        raise InvalidArgument("stats.crosstab reads one or two categorical columns (and nothing else)")
    return [(c, ctx.vocabularies[c]) for c in names]


def _originals(columns: list[str]) -> list[str]:
    """The job's columns behind a layout of one-hot names ("<column>=<category>")."""
    return list(dict.fromkeys(c.split("=", 1)[0] for c in columns if not c.endswith("_missing")))


def _one_hot(ctx: JobContext, column: str, levels: tuple[str, ...]) -> np.ndarray:
    names = ctx.layout[ctx.rank].columns
    return ctx.table[:, [names.index(f"{column}={level}") for level in levels]].astype(np.int64)


def _local_counts(ctx: JobContext, blocks: list[tuple[str, tuple[str, ...]]]) -> np.ndarray:
    first = _one_hot(ctx, *blocks[0])
    second = _one_hot(ctx, *blocks[1]) if len(blocks) > 1 else np.ones((len(first), 1), dtype=np.int64)
    return first.T @ second


def _horizontal(ctx: JobContext, blocks: list[tuple[str, tuple[str, ...]]]) -> tuple[Any, np.ndarray]:
    """Each party's own counts, its own small-cell rule, then the complement rule
    until no party needs another cell withheld."""
    shape = tuple(len(levels) for _, levels in blocks) + ((1,) if len(blocks) == 1 else ())
    local = _local_counts(ctx, blocks) if len(ctx.table) else np.zeros(shape, dtype=np.int64)
    k = ctx.rules.min_group_size
    small = (local > 0) & (local < k)
    refusing = bool(small.any()) and ctx.rules.small_groups == "refuse"
    flags = secure.public(ctx, (small.reshape(-1).tolist(), refusing))
    if any(r for _, r in flags):
        raise FailedPrecondition("a crosstab cell holds fewer rows of a party than its min_group_size, and its "
                                 "policy refuses such jobs")
    withheld = np.any([np.array(f, dtype=bool) for f, _ in flags], axis=0).reshape(shape)
    while True:
        wanted = _own_complement(local, withheld, k)
        asked = secure.public(ctx, wanted)
        if any(a == -2 for a in asked):
            raise FailedPrecondition("the withheld crosstab cells would tell a party's few rows in them, and no other "
                                     "cell can be withheld to protect them: merge categories")
        extra = [a for a in asked if a >= 0]
        if not extra:
            break
        withheld.reshape(-1)[extra] = True
    pooled = secure.total(secure.share_integers(ctx, local))
    return pooled, withheld


def _own_complement(local: np.ndarray, withheld: np.ndarray, k: int) -> int:
    """-1 if this party's rows in the withheld cells number 0 or at least k; else
    the flat index of its smallest cell of at least k rows not yet withheld (-2
    if there is none)."""
    inside = int(local[withheld].sum())
    if inside == 0 or inside >= k:
        return -1
    candidates = np.flatnonzero((~withheld.reshape(-1)) & (local.reshape(-1) >= k))
    if not len(candidates):
        return -2
    return int(candidates[np.argmin(local.reshape(-1)[candidates])])


def _vertical(ctx: JobContext, blocks: list[tuple[str, tuple[str, ...]]], n: int) -> tuple[Any, np.ndarray]:
    """The counts as a product of one-hot columns shared by their owners (exact
    integers), the strictest party's small-cell rule and the complement rule
    under MPC."""
    import crypten

    owners = [next(e.rank for e in ctx.layout if f"{c}={levels[0]}" in e.columns) for c, levels in blocks]
    if len(blocks) == 1 or owners[0] == owners[1]:
        local = _local_counts(ctx, blocks) if ctx.rank == owners[0] else None
        shape = (len(blocks[0][1]), len(blocks[1][1]) if len(blocks) > 1 else 1)
        counts = crypten.cryptensor(torch.from_numpy(local if local is not None else np.zeros(shape, dtype=np.int64)),
                                    src=owners[0], precision=0)
    else:
        shared = [crypten.cryptensor(torch.from_numpy(_one_hot(ctx, c, levels) if ctx.rank == owner else
                                                      np.zeros((n, len(levels)), dtype=np.int64)),
                                     src=owner, precision=0)
                  for (c, levels), owner in zip(blocks, owners)]
        counts = shared[0].t().matmul(shared[1])
    k, refuse = groups.floor(ctx)
    withheld = groups.small(ctx, counts, k).reshape(tuple(counts.size()))
    if withheld.any() and refuse:
        raise FailedPrecondition(f"a crosstab cell holds fewer than {k} rows: a data party's policy refuses it")
    for attempt in range(3):  # (the second pick is needed only if the first found an empty cell)
        if not withheld.any() or not _exposed(ctx, counts, withheld, k):
            return counts, withheld
        if attempt < 2:
            withheld.reshape(-1)[_smallest_open(ctx, counts, withheld)] = True
    raise FailedPrecondition("the withheld crosstab cells would tell their few rows, and no other cell can be "
                             "withheld to protect them: merge categories")


def _exposed(ctx: JobContext, counts: Any, withheld: np.ndarray, k: int) -> bool:
    """Whether the withheld cells together hold 1 to k-1 rows (one bit, opened)."""
    inside = (counts * torch.from_numpy(withheld.astype(np.int64))).sum()
    return bool(secure.open_bits_to_all(ctx, (secure.greater_than(inside, 0.5) *
                                              secure.less_than(inside, k - 0.5)).reshape(1))[0])


def _smallest_open(ctx: JobContext, counts: Any, withheld: np.ndarray) -> int:
    """The flat index of the smallest non-empty cell not withheld (every party
    learns which; nothing else)."""
    flat = counts.reshape(-1)
    candidates = [int(i) for i in np.flatnonzero(~withheld.reshape(-1))]
    empty = 1 - secure.greater_than(flat, 0.5)
    values = [flat[i] + empty[i] * BIG for i in candidates]
    if not candidates:
        raise FailedPrecondition("every crosstab cell would be withheld: merge categories")
    winner = secure.open_bits_to_all(ctx, secure.first_smallest(values).reshape(-1))
    return candidates[int(np.argmax(winner))]


def _chi_square(table: np.ndarray) -> tuple[float, int, float]:
    """Pearson's chi-square of independence over the non-empty rows and columns."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), 0, float("nan")
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    p = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                      torch.tensor(chi2 / 2, dtype=torch.float64)))
    return chi2, dof, p
