"""The binning constraints a risk team sets (optbinning's OptimalBinning calls them
min_bin_size, monotonic_trend and max_n_bins), applied to every numeric column's
bins after the privacy merges (mpc.programs.features.woe), under MPC on the
shared counts, in order:

1. `min_share`: a group holding fewer than that share of the rows joins its next
   neighbour (the last one its previous), one pair at a time in each pass (a run
   of small groups pairs up rather than collapsing into one), until none is left.
2. `monotone`: the event rate runs one way across the groups, the way from the
   first group to the last: adjacent violators are pooled (each violating group
   joins its next neighbour) until none is left, as the pool-adjacent-violators
   algorithm does.
3. `max_bins`: while a column has more groups, the adjacent pair holding the
   fewest rows together is merged (the first such pair; every column at once).

Every comparison is of exact integer counts (event rates by cross products,
events_a rows_b against events_b rows_a), and only its bit is opened, to every
party: so every party learns the merges (which groups are below the share,
which adjacent rates run against the trend and the trend's direction, which pair
is smallest), as it learns the privacy merges; merging never breaks the k-row
rule, since merged counts only grow. Categorical columns have no order: they
keep a bin per category.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mpc.programs import compare, groups, secure

FAR = 2**40
"""Padding larger than any pair's rows."""


@dataclass(frozen=True)
class Constraints:
    min_share: float = 0.0
    monotone: bool = False
    max_bins: int = 0  # 0: no limit

    @property
    def any(self) -> bool:
        return self.min_share > 0 or self.monotone or self.max_bins > 0


def constrained(partition: list[list[list[int]]], ordered: list[int], events: Any, rows: Any, n: int,
                offsets: np.ndarray, rules: Constraints) -> list[list[list[int]]]:
    """`partition` (per column, its groups of bins) with the `ordered` columns'
    groups merged as `rules` say; `events` and `rows` are every bin's shared
    counts (all columns, in order; `offsets[c]` is column c's first bin)."""
    partition = [list(p) for p in partition]

    def counts(columns: list[int]) -> tuple[Any, Any, list[int]]:
        flat = [[int(offsets[c]) + b for b in members] for c in columns for members in partition[c]]
        merge = groups.membership(flat, int(offsets[-1]))
        return groups.summed(events, merge), groups.summed(rows, merge), [len(partition[c]) for c in columns]

    def merged_where(columns: list[int], flags: np.ndarray, sizes: list[int], join: Any = groups.merged) -> None:
        at = 0
        for c, size in zip(columns, sizes):
            if flags[at : at + size].any():
                partition[c] = join(partition[c], flags[at : at + size])
            at += size

    if rules.min_share > 0:
        while live := [c for c in ordered if len(partition[c]) > 1]:
            _, group_rows, sizes = counts(live)
            small = secure.revealed_bits(secure.less_than(group_rows, rules.min_share * n, binary=True))
            if not small.any():
                break
            merged_where(live, small, sizes, groups.paired)
    if rules.monotone:
        _monotone(partition, ordered, counts, merged_where)
    if rules.max_bins > 0:
        while live := [c for c in ordered if len(partition[c]) > rules.max_bins]:
            _, group_rows, sizes = counts(live)
            merged_where(live, _smallest_pairs(group_rows, sizes), sizes)
    return partition


def _monotone(partition: list[list[list[int]]], ordered: list[int], counts: Any, merged_where: Any) -> None:
    """Pools adjacent violators of each column's trend (its first group's event
    rate against its last's) until every column's rates run one way."""
    live = [c for c in ordered if len(partition[c]) > 1]
    if not live:
        return
    group_events, group_rows, sizes = counts(live)
    starts = np.cumsum([0, *sizes])
    first, last = torch.tensor(starts[:-1]), torch.tensor(starts[1:] - 1)
    rising = secure.revealed_bits(_rate_above(group_events, group_rows, last, first))  # rate_last > rate_first
    direction = dict(zip(live, rising))
    while live := [c for c in ordered if len(partition[c]) > 1]:
        group_events, group_rows, sizes = counts(live)
        starts = np.cumsum([0, *sizes])
        here = torch.tensor([starts[i] + g for i, size in enumerate(sizes) for g in range(size - 1)])
        if not len(here):
            return
        up = torch.from_numpy(np.repeat([direction[c] for c in live], [size - 1 for size in sizes]))
        # a violation: rising and rate_g > rate_g+1, or falling and rate_g+1 > rate_g (only that bit is opened)
        higher, lower = torch.where(up, here, here + 1), torch.where(up, here + 1, here)
        violating = secure.revealed_bits(_rate_above(group_events, group_rows, higher, lower))
        if not violating.any():
            return
        flags = np.zeros(int(starts[-1]), dtype=bool)
        flags[here.numpy()[violating]] = True
        merged_where(live, flags, sizes)


def _rate_above(events: Any, rows: Any, a: torch.Tensor, b: torch.Tensor) -> Any:
    """Binary-shared bits: group a's event rate above group b's (events_a rows_b >
    events_b rows_a, exact integer products)."""
    return compare.sign_bits((events[a] * rows[b] - events[b] * rows[a]).neg(), binary=True)  # (integers: > 0)


def _smallest_pairs(rows: Any, sizes: list[int]) -> np.ndarray:
    """Per column, a flag on the first group of its adjacent pair with the fewest
    rows together (all columns' pairs compared in one batch; padding never wins)."""
    width = max(sizes) - 1
    starts = np.cumsum([0, *sizes])
    pads = [[int(starts[i]) + g for g in range(width)] for i in range(len(sizes))]
    index = torch.tensor([[min(p, int(starts[i + 1]) - 2) for p in row] for i, row in enumerate(pads)])
    pair = rows[index] + rows[index + 1]  # columns x width
    valid = torch.tensor([[g < size - 1 for g in range(width)] for size in sizes], dtype=torch.long)
    padded = pair * valid + (1 - valid) * FAR
    winner = secure.opened(secure.first_smallest([padded[:, g] for g in range(width)]))  # width x columns, one-hot
    flags = np.zeros(int(starts[-1]), dtype=bool)
    for i in range(len(sizes)):
        flags[int(starts[i]) + int(np.argmax(winner[:, i]))] = True
    return flags
