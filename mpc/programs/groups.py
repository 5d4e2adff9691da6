"""Small groups: the rule every release of counts computed under MPC applies. A
released count holds 0 or at least k rows, k the strictest data party's
min_group_size; every party learns which counts were withheld."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext
from mpc.errors import FailedPrecondition
from mpc.programs import secure


def floor(ctx: JobContext) -> tuple[int, bool]:
    """The strictest data party's min_group_size, and whether a data party's policy
    refuses small groups (small_groups = "refuse"): each party sends its own."""
    data = {e.rank for e in ctx.layout if e.columns}
    rules = [rule for r, rule in enumerate(secure.public(ctx, (int(ctx.rules.min_group_size), ctx.rules.small_groups)))
             if r in data]
    return max(int(k) for k, _ in rules), any(mode == "refuse" for _, mode in rules)


def small(ctx: JobContext, counts: Any, k: int) -> np.ndarray:
    """Which shared counts hold at least one but fewer than k rows (opened to every party)."""
    flat = counts.reshape(-1)
    return secure.open_bits_to_all(ctx, secure.greater_than(flat, 0.5) * secure.less_than(flat, k - 0.5))


def suppressed_counts(ctx: JobContext, counts: Any) -> tuple[Any, list[int]]:
    """Counts with every cell holding at least one but fewer than k rows zeroed
    (every party learns which), or the job refused where a policy says so."""
    k, refuse = floor(ctx)
    withheld = small(ctx, counts, k)
    if withheld.any() and refuse:
        raise FailedPrecondition(f"a count holds fewer than {k} rows: a data party's policy refuses it")
    return counts * kept(withheld, counts), [int(i) for i in np.flatnonzero(withheld)]


def kept(withheld: np.ndarray, counts: Any) -> torch.Tensor:
    """The public 0/1 mask that zeroes the withheld counts before anything opens."""
    return torch.from_numpy((~withheld).astype(np.float64)).reshape(tuple(counts.size()))


def membership(groups: list[list[int]], items: int) -> torch.Tensor:
    """The public 0/1 matrix (items x groups) of a partition of items into groups."""
    out = torch.zeros(items, len(groups), dtype=torch.long)
    for g, members in enumerate(groups):
        out[members, g] = 1
    return out


def summed(values: Any, membership: torch.Tensor) -> Any:
    """Sums of a shared vector's entries over groups (a public 0/1 matrix, entries x
    groups), exactly: each party sums its own shares."""
    out = values.clone()
    out._tensor.share = values._tensor.share @ membership
    return out


def merged(groups: list[list[int]], small: np.ndarray) -> list[list[int]]:
    """Each small group of an ordered partition joined to the next, the last to
    the one before (small deciles, bins)."""
    out: list[list[int]] = []
    carry: list[int] = []
    for g, members in enumerate(groups):
        carry = carry + members
        if small[g] and g < len(groups) - 1:
            continue
        if small[g] and out:  # the last group, still small: into the one before
            out[-1] = out[-1] + carry
        else:
            out.append(carry)
        carry = []
    return out


def paired(partition: list[list[int]], small: np.ndarray) -> list[list[int]]:
    """Each small group joined to its next neighbour, which then takes part in no
    other join this pass; a small last group left over joins the one before."""
    out: list[list[int]] = []
    g = 0
    while g < len(partition):
        if small[g] and g + 1 < len(partition):
            out.append(partition[g] + partition[g + 1])
            g += 2
            continue
        if small[g] and out:
            out[-1] = out[-1] + partition[g]
        else:
            out.append(partition[g])
        g += 1
    return out
