"""features.woe_iv: each feature column's bins, the weight of evidence (WOE) of
each bin and the column's information value (IV), against a 0/1 label that one
party holds (vertical) or every party holds for its rows (horizontal).

Bins. A numeric column is cut at `splits` where the job gives them for it
((-inf, s1), [s1, s2), ..., [sm, inf)); otherwise, vertically, its owner cuts
its own rows into `bins` equal-frequency bins (distinct quantiles of its values:
fewer bins where values tie); horizontally, the parties cut every such column
alike at the pooled rows' equal-frequency points, found under MPC on a fine
public grid (mpc.programs.features.quantiles: every party learns these cuts).
A categorical column has a bin per category.
Bins are then merged, each short one paired with its next neighbour (the last
with the one before; a run of short bins pairs up, pass after pass, rather than
collapsing into one), until every bin holds at least k events and k non-events (k the strictest data party's
min_group_size; horizontally also at each party: none or at least k of either
at every party), as the lift table merges deciles: a bin of fewer rows would
tell its rows' labels. A column whose rows hold fewer than k events or
non-events altogether is withheld (IV NaN); where that is every column the job
is refused. Then the job's binning constraints (`min_share`, `monotone`,
`max_bins`: mpc.programs.features.merging) merge further.

WOE and IV (optbinning's convention): WOE_b = ln(p_nonevent_b / p_event_b), with
p_event_b = events_b / events, and IV = sum_b (p_nonevent_b - p_event_b) WOE_b.
Every count is an exact integer under MPC: vertically the owner's one-hot bin
matrix times the label holder's shared labels (a secure matmul; the label holder
multiplies its own columns locally), horizontally each party's own counts,
added. The logarithms and quotients are mpc.programs.ratios': WOE within 1e-4,
IV within 1e-4 x the number of bins.

Released. To the receivers: `count`, the `iv` of every column (withheld columns
NaN, listed in `suppressed`) and, with `woe` (default), `woe.<column>`: each
merged bin's WOE, rows and events (horizontal: to every receiver; vertical: a
column's table only to its owner, and only where the owner is a receiver: the
bins are the owner's own cuts of its own values). What a receiver learns about
one row: nothing beyond its bin's counts, each of at least k events and k
non-events; a column's owner, which knows each row's bin, learns its bins' event
rates. Vertically, before any table or value is opened, each party checks its
own columns' merged bins for a row they single out (mpc.programs.leverage): the
bins of two copies of a column that differ in one customer would otherwise tell
that customer's label by difference. Every party learns which bins merged (so which held fewer than k events
or non-events) and which columns are withheld.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LabelBinnedParameters, WoeParameters
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import groups, leverage, ratios, secure
from mpc.programs.features import cuts, merging, quantiles
from mpc.programs.stats.request import party_rows

WOE_LIMIT = 30.0
"""|WOE| beyond this is a failed fixed-point truncation (counts below 2^48 give at most ~67)."""


@dataclasses.dataclass
class Column:
    """One feature column as binned: its owner (vertical; every party horizontally),
    its bins' labels and, at a party holding it, each row's bin and (numeric) the
    cut points."""

    name: str
    owner: int
    labels: list[str]
    bins: np.ndarray | None  # row -> bin index at a party holding the column
    cut_points: np.ndarray | None = None  # a numeric column's, at a party holding it

    def binned(self, table: np.ndarray, columns: list[str]) -> np.ndarray:
        """Each row's bin for new rows of a holding party's `table` (its `columns`)."""
        if self.cut_points is None:
            return cuts.category_bins(table, columns, self.name, self.labels)
        return cuts.located(self.cut_points, table[:, columns.index(self.name)])


@dataclasses.dataclass(frozen=True)
class Role:
    """What the 0/1 column splits the rows into, in messages: WOE's label (events
    and non-events) or the stability index's period (recent and baseline rows)."""

    column: str  # "the label column", "the period column"
    values: str  # "0 and 1", "0 (baseline) and 1 (recent)"
    sides: str  # "events or non-events", "recent or baseline rows"
    baseline: bool = False  # equal-frequency cuts from the rows where the column is 0 (where it is known)


LABEL = Role("the label column", "0 and 1", "events or non-events")


@dataclasses.dataclass
class Binned:
    """Every column's bins as merged (partition: per column, its groups of bins),
    the columns kept (the others withheld), the row count and, shared: each kept
    column's information value and per group (woe, rows, events)."""

    columns: list[Column]
    partition: list[list[list[int]]]
    kept: list[int]
    n: int
    iv: Any
    table: Any


def woe_iv(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(WoeParameters)
    found = information(ctx, settings.label, dict(settings.splits), settings.bins, LABEL, constraints(settings))
    return release(ctx, found, "iv", "woe" if settings.woe else None, lambda t: t, ["woe", "rows", "events"])


def constraints(settings: LabelBinnedParameters) -> merging.Constraints:
    return merging.Constraints(settings.min_share, settings.monotone, settings.max_bins)


def information(ctx: JobContext, label: str, splits: dict[str, tuple[float, ...]], bins: int,
                role: Role, rules: merging.Constraints = merging.Constraints()) -> Binned:
    """The job's columns binned and merged against the 0/1 column `label` (then
    as `rules` say: mpc.programs.features.merging), their WOE tables and
    information values, shared (see the module's docstring)."""
    import crypten

    secure.configure()
    rows_per_party = party_rows(ctx)
    n = sum(rows_per_party) if ctx.partitioning == "horizontal" else max(rows_per_party)
    y = _labels(ctx, label, role)
    reference = y == 0 if y is not None and role.baseline else None
    if ctx.partitioning == "horizontal":
        splits = {**splits, **_joint_splits(ctx, label, splits, bins, n, reference)}
    columns = _columns(ctx, label, splits, bins, reference)
    if not columns:
        raise InvalidArgument(f"{ctx.kind} needs at least one feature column besides {role.column} {label!r}")
    counts = _horizontal_counts if ctx.partitioning == "horizontal" else _vertical_counts
    events, rows, local = counts(ctx, columns, y, n, label)
    partition, withheld = _merged(ctx, columns, events, rows, local)
    if rules.any:
        ordered = [c for c in range(len(columns)) if not withheld[c] and columns[c].name not in ctx.vocabularies]
        offsets = np.cumsum([0, *(len(c.labels) for c in columns)])
        partition = merging.constrained(partition, ordered, events, rows, n, offsets, rules)
    kept = [c for c in range(len(columns)) if not withheld[c]]
    if not kept:
        raise FailedPrecondition(f"fewer than k {role.sides} among all the rows (k the strictest data "
                                 "party's min_group_size): no bin can be released")
    merge = _membership(columns, partition, kept)
    if ctx.partitioning == "vertical":  # an owner's bins of twin columns would tell one row's label by difference
        mine = [c for c in kept if columns[c].owner == ctx.rank]
        own = [np.eye(len(partition[c]))[group_of(partition[c], len(columns[c].labels))[columns[c].bins]]
               for c in mine]
        leverage.refuse_singled_out(ctx, np.concatenate(own, axis=1) if own else None, leverage.limit(ctx),
                                    "the bins' counts")
    group_events, group_rows = groups.summed(events, merge), groups.summed(rows, merge)
    first = sum(len(columns[c].labels) for c in range(kept[0]))
    total = events[first : first + len(columns[kept[0]].labels)].sum()  # every column's bins hold every row once
    woe, contributions = _woe(group_events, group_rows, total, n)
    owners = torch.tensor([c for c in kept for _ in partition[c]])
    iv = groups.summed(contributions, (owners.unsqueeze(1) == torch.tensor(kept).unsqueeze(0)).long())
    table = crypten.stack([woe, *(secure.raised(v, ratios.LOG_BITS) for v in (group_rows, group_events))], dim=1)
    return Binned(columns, partition, kept, n, iv, table)


def _labels(ctx: JobContext, name: str, role: Role) -> np.ndarray | None:
    """This party's labels (None where it holds none); every party learns one bit:
    all are 0 or 1."""
    columns = ctx.layout[ctx.rank].columns
    holders = [e.rank for e in ctx.layout if name in e.columns]
    if ctx.partitioning == "vertical" and len(holders) != 1:
        raise InvalidArgument(f"{role.column} {name!r} must be held by exactly one party (held by {len(holders)})")
    y = ctx.table[:, columns.index(name)] if name in columns else None
    ok = y is None or bool(np.all((y == 0) | (y == 1)))
    if not all(secure.public(ctx, ok)):
        raise InvalidArgument(f"{role.column} {name!r} must hold only {role.values}")
    return None if y is None else y.astype(np.int64)


def _columns(ctx: JobContext, label: str, splits: dict[str, tuple[float, ...]], bins: int,
             reference: np.ndarray | None) -> list[Column]:
    """The job's feature columns in order, binned where this party holds them (bin
    counts public; a vertical owner's own cuts stay with it); equal-frequency cuts
    from the `reference` rows where given (else from all)."""
    out: list[Column] = []
    for entry in ctx.layout[:1] if ctx.partitioning == "horizontal" else ctx.layout:  # (horizontal: alike at all)
        for name in dict.fromkeys(c.split("=", 1)[0] for c in entry.columns):
            if name == label:
                continue
            held = ctx.partitioning == "horizontal" or entry.rank == ctx.rank
            if name in ctx.vocabularies:
                levels = list(ctx.vocabularies[name])
                own = cuts.category_bins(ctx.table, entry.columns, name, levels) if held else None
                out.append(Column(name, entry.rank, levels, own))
                continue
            if not held:
                out.append(Column(name, entry.rank, [], None))
                continue
            values = ctx.table[:, entry.columns.index(name)]
            found = cuts.points(values, splits.get(name), bins, reference)
            out.append(Column(name, entry.rank, cuts.labels(found), cuts.located(found, values), found))
    if ctx.partitioning == "vertical":  # each owner's bin counts, public; its cuts stay its own
        counts = secure.public(ctx, [len(c.labels) for c in out if c.owner == ctx.rank])
        for c in out:
            if c.owner != ctx.rank:
                c.labels = [f"bin {b + 1}" for b in range(counts[c.owner].pop(0))]
    return out


def _joint_splits(ctx: JobContext, label: str, splits: dict[str, tuple[float, ...]], bins: int, n: int,
                  reference: np.ndarray | None) -> dict[str, tuple[float, ...]]:
    """Horizontal: the numeric columns without `splits`, cut at the pooled
    reference rows' equal-frequency points (mpc.programs.features.quantiles)."""
    own = ctx.layout[ctx.rank].columns
    names = [c for c in ctx.layout[0].columns if c != label and c not in splits and "=" not in c
             and c not in ctx.vocabularies]
    if not names:
        return {}
    joint = quantiles.joint_cuts(ctx, ctx.table[:, [own.index(c) for c in names]], n, bins, names, reference)
    return {name: tuple(cuts.decimal(found)) for name, found in zip(names, joint)}


def _one_hot(columns: list[Column], rows: int, owner: int | None = None) -> np.ndarray:
    """rows x bins: each row's bin of every column (of `owner`'s columns)."""
    chosen = [c for c in columns if owner is None or c.owner == owner]
    blocks = [np.eye(len(c.labels), dtype=np.int64)[c.bins] if c.bins is not None and len(c.bins)
              else np.zeros((rows, len(c.labels)), dtype=np.int64) for c in chosen]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((rows, 0), dtype=np.int64)


def _horizontal_counts(ctx: JobContext, columns: list[Column], y: np.ndarray | None, n: int,
                       label: str) -> tuple[Any, Any, np.ndarray]:
    """Pooled events and rows per bin (each party's own, added), and this party's own."""
    assert y is not None  # (every horizontal party holds the label)
    one_hot = _one_hot(columns, len(y))
    local = np.stack([one_hot.T @ y, one_hot.sum(axis=0)])
    pooled = secure.total(secure.share_integers(ctx, local))
    return pooled[0], pooled[1], local


def _vertical_counts(ctx: JobContext, columns: list[Column], y: np.ndarray | None, n: int,
                     label: str) -> tuple[Any, Any, np.ndarray]:
    """Events per bin: each owner's one-hot bins times the shared labels (the label
    holder multiplies its own locally); rows per bin from each owner."""
    import crypten

    holder = next(e.rank for e in ctx.layout if label in e.columns)
    labels = None
    events, rows = [], []
    for owner in sorted({c.owner for c in columns}):
        width = sum(len(c.labels) for c in columns if c.owner == owner)
        mine = _one_hot(columns, n, owner) if owner == ctx.rank else None
        counted = mine.sum(axis=0) if mine is not None else np.zeros(width, dtype=np.int64)
        rows.append(crypten.cryptensor(torch.from_numpy(counted), src=owner, precision=0))
        if owner == holder:
            local = mine.T @ y if mine is not None and y is not None else np.zeros(width, dtype=np.int64)
            events.append(crypten.cryptensor(torch.from_numpy(local), src=owner, precision=0))
            continue
        if labels is None:
            local_y = torch.from_numpy(y if y is not None else np.zeros(n, dtype=np.int64))
            labels = crypten.cryptensor(local_y, src=holder, precision=0)
        shape = (n, width)
        bins = crypten.cryptensor(torch.from_numpy(mine if mine is not None else np.zeros(shape, dtype=np.int64)),
                                  src=owner, precision=0)
        events.append(bins.t().matmul(labels))
    return crypten.cat(events), crypten.cat(rows), np.zeros((2, 0), dtype=np.int64)


def _merged(ctx: JobContext, columns: list[Column], events: Any, rows: Any,
            local: np.ndarray) -> tuple[list[list[list[int]]], list[bool]]:
    """Per column, its bins merged with their next neighbour until every group
    holds at least k events and k non-events (horizontal: also none or at least k
    of either at every party); and which columns are withheld (one group, still
    short). Every party learns each step's merges."""
    import crypten

    k, _ = groups.floor(ctx)
    partition = [[[b] for b in range(len(c.labels))] for c in columns]
    withheld = [False] * len(columns)
    while True:
        live = [c for c in range(len(columns)) if not withheld[c]]
        if not live:
            return partition, withheld
        merge = _membership(columns, partition, live)
        group_events, group_rows = groups.summed(events, merge), groups.summed(rows, merge)
        short = secure.open_bits_to_all(ctx, secure.less_than(crypten.cat([group_events, group_rows - group_events]),
                                                              k - 0.5))
        size = merge.size(1)
        small = short[:size] | short[size:]
        if local.shape[1]:  # horizontal: this party's own counts, too
            own = local @ merge.numpy()
            mine = ((own[0] > 0) & (own[0] < k)) | ((own[1] - own[0] > 0) & (own[1] - own[0] < k))
            small = small | np.any(np.array(secure.public(ctx, mine.tolist()), dtype=bool), axis=0)
        changed, at = False, 0
        for c in live:
            flags = small[at : at + len(partition[c])]
            at += len(partition[c])
            if not flags.any():
                continue
            changed = True
            if len(partition[c]) == 1:
                withheld[c] = True
            else:
                partition[c] = groups.paired(partition[c], flags)
        if not changed:
            return partition, withheld


def group_of(groups: list[list[int]], bins: int) -> np.ndarray:
    """Each bin's group in a column's merged groups."""
    out = np.zeros(bins, dtype=np.int64)
    for g, members in enumerate(groups):
        out[members] = g
    return out


def _membership(columns: list[Column], partition: list[list[list[int]]], chosen: list[int]) -> torch.Tensor:
    """bins x groups: every column's bins (all columns, in order) in the chosen
    columns' groups."""
    offsets = np.cumsum([0, *(len(c.labels) for c in columns)])
    flat = [[int(offsets[c]) + b for b in members] for c in chosen for members in partition[c]]
    return groups.membership(flat, int(offsets[-1]))


def _woe(events: Any, rows: Any, total: Any, n: int) -> tuple[Any, Any]:
    """Per group, WOE (at ratios.LOG_BITS) and its IV term (p_nonevent - p_event) WOE."""
    import crypten

    g = int(events.size(0))
    non_events, non_total = rows - events, total.neg() + n
    logs = ratios.logarithm(crypten.cat([events, non_events, total.unsqueeze(0), non_total.unsqueeze(0)]))
    woe = logs[g : 2 * g] - logs[:g] + (logs[2 * g] - logs[2 * g + 1])
    shares = ratios.quotient(crypten.cat([non_events, events]),
                             crypten.cat([non_total.unsqueeze(0).expand(g), total.unsqueeze(0).expand(g)]))
    difference = secure.lowered(shares[:g] - shares[g:], ratios.LOG_BITS)
    return woe, secure.mul_mixed(difference, secure.lowered(woe))


def release(ctx: JobContext, found: Binned, index: str, tables_as: str | None,
            rows_of: Callable[[np.ndarray], np.ndarray], headers: list[str]) -> dict[str, Result] | None:
    """The information values as result `index` to the receivers; unless
    `tables_as` is None, the tables (`rows_of` (woe, rows, events) per group, as
    results `<tables_as>.<column>` with `headers`) to the receivers (horizontal)
    or to each column's owner where it is a receiver (vertical)."""
    columns, partition, kept, n, iv, table = (found.columns, found.partition, found.kept, found.n, found.iv,
                                              found.table)
    with_woe = tables_as is not None
    starts = np.cumsum([0, *(len(partition[c]) for c in kept)])
    groups_of = {c: list(range(int(starts[i]), int(starts[i + 1]))) for i, c in enumerate(kept)}
    tables: dict[int, np.ndarray] = {}
    if ctx.partitioning == "horizontal":
        opened = secure.open_to_receivers(ctx, [iv, table] if with_woe else [iv])
        if opened is not None and with_woe:
            tables = {c: np.asarray(opened[1]).reshape(-1, 3)[groups_of[c]] for c in kept}
    else:
        shown = [c for c in kept if with_woe and columns[c].owner in ctx.receivers]
        owners = sorted({columns[c].owner for c in shown})
        parts = [(o, table[[g for c in shown if columns[c].owner == o for g in groups_of[c]]]) for o in owners]
        own = secure.open_to_owners(ctx, parts) if parts else []
        mine = [c for c in shown if columns[c].owner == ctx.rank]
        if mine:
            flat = np.asarray(own[0]).reshape(-1, 3)
            ends = np.cumsum([0, *(len(partition[c]) for c in mine)])
            tables = {c: flat[ends[i] : ends[i + 1]] for i, c in enumerate(mine)}
        opened = secure.open_to_receivers(ctx, [iv])
    if opened is None:
        return None
    values = np.full(len(columns), np.nan)
    values[kept] = np.asarray(opened[0]).reshape(-1)
    _check(values[kept], [t[:, 0] for t in tables.values()])
    out = {"count": Result(np.array([float(n)]), ["count"]),
           index: Result(values, [c.name for c in columns], suppressed=[c for c in range(len(columns)) if c not in kept])}
    for c, rows in tables.items():
        out[f"{tables_as}.{columns[c].name}"] = Result(rows_of(np.column_stack([rows[:, 0], np.round(rows[:, 1:])])),
                                                      [merged_label(columns[c], members) for members in partition[c]],
                                                      headers)
    return out


def _check(iv: np.ndarray, woe: list[np.ndarray]) -> None:
    """A failed truncation's wrap is gross: refused, never released."""
    out_of_range = any(np.any(np.abs(w) > WOE_LIMIT) for w in woe)
    if out_of_range or np.any(iv < -0.01) or np.any(iv > 2 * WOE_LIMIT):
        raise FailedPrecondition("a fixed-point truncation failed (a WOE or information value out of range); "
                                 "nothing was released, please resubmit the job")


def merged_label(column: Column, members: list[int]) -> str:
    """A merged group's label: its categories joined, or its first bin's lower end
    to its last bin's upper end."""
    first, last = column.labels[members[0]], column.labels[members[-1]]
    if len(members) == 1:
        return first
    if first[:1] in "([" and first.endswith(")"):
        return f"{first.split(',')[0]},{last.split(',')[1]}"
    return "|".join(column.labels[b] for b in members)
