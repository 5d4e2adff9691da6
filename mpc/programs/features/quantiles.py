"""Equal-frequency cut points of columns whose rows are spread over the parties
(horizontal data), found under MPC without pooling the rows or their counts.

Each column is placed in the statistics' public frame (mpc.programs.stats.
horizontal: z = (x - shift) / scale, |z| <= 0.53). Cut k of `bins` is the lowest
point t of a grid with at least k / bins of the reference rows below it. The
search narrows every cut of every column at once, WAYS - 1 candidate points a
step: each party counts its own reference rows below each candidate (plaintext),
the counts are shared and added, and only the bits "fewer than k / bins of the
rows below" are opened, as `bins * below - k * rows` < 0 in integers, so no
count is. STEPS steps place a cut in a cell of 2^-15 of the frame; then, while
that cell holds at least k reference rows (k the strictest data party's
min_group_size: one more opened bit), the cut is kept and refined within the
cell, up to LEVELS times (2^-30 of the frame: a heavy tail or an outlier that
widens the frame still leaves the bulk finely cut). A cut whose first cell
holds fewer than k rows is dropped (a bin fewer).

What every party learns (each must bin its own rows at the cuts): each column's
cut points; so, for each cut, that the pooled k / bins quantile lies in the cell
just below it, which holds at least k reference rows: no cut pins one row's
value. Ties at a cut: values equal to it fall above it (bins [t_k, t_k+1));
duplicate cuts are dropped.
"""

from __future__ import annotations

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.programs import groups, secure
from mpc.programs.stats import horizontal

WAYS = 32
STEPS = 3
LEVELS = 2
LOW, HIGH = -0.5625, 0.5625
"""z's search range: the frame keeps |z| <= 1/2 + 1/32."""


def joint_cuts(ctx: JobContext, x: np.ndarray, n: int, bins: int, columns: list[str],
               reference: np.ndarray | None = None) -> list[np.ndarray]:
    """Per column of `x` (this party's rows; every party's alike in columns), the
    equal-frequency cut points of the pooled `reference` rows (all rows where
    None), in the columns' units; none for a column constant at every party."""
    (shift, scale), constant = horizontal.frame_and_constants(ctx, x, n, columns)
    k, _ = groups.floor(ctx)
    chosen = np.ones(len(x), dtype=bool) if reference is None else reference
    z = np.sort(((x - shift) / scale)[chosen], axis=0)
    shape = (len(columns), bins - 1)
    column = np.repeat(np.arange(len(columns)), bins - 1)
    quantile = np.tile(np.arange(1, bins), len(columns))
    low, width = np.full(len(column), LOW), np.full(len(column), HIGH - LOW)  # each cut in (low, low + width]
    cuts = np.full(len(column), np.nan)
    active = np.arange(len(column))
    for _ in range(LEVELS):
        for _ in range(STEPS):
            width[active] /= WAYS
            points = low[active, None] + width[active, None] * np.arange(1, WAYS)
            local = bins * _below(z, column[active], points) - quantile[active, None] * len(z)
            short = secure.less_than_to_all(ctx, secure.total(secure.share_integers(ctx, local)), 0.0)
            low[active] += width[active] * short.reshape(local.shape).sum(axis=1)
        top = (low + width)[active]
        held = _below(z, column[active], top[:, None]) - _below(z, column[active], (top - width[active])[:, None])
        enough = secure.greater_than_to_all(ctx, secure.total(secure.share_integers(ctx, held)), k - 0.5).reshape(-1)
        cuts[active[enough]] = top[enough]
        active = active[enough]
        if not len(active):
            break
    found = (shift[column] + scale[column] * cuts).reshape(shape)
    return [np.zeros(0) if constant[c] else np.unique(found[c][~np.isnan(found[c])]) for c in range(len(columns))]


def _below(z: np.ndarray, columns: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How many of this party's sorted rows lie below each point (row i of
    `points` in column `columns[i]`), as int64."""
    if not len(z):
        return np.zeros(points.shape, dtype=np.int64)
    return np.stack([np.searchsorted(z[:, c], p, side="left") for c, p in zip(columns, points)]).astype(np.int64)
