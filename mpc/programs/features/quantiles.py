"""Equal-frequency cut points of columns whose rows are spread over the parties
(horizontal data), found under MPC without pooling the rows.

Each column is placed in the statistics' public frame (mpc.programs.stats.
horizontal: z = (x - shift) / scale, |z| <= 0.53) and its cuts are searched on
a public grid of GRID_BITS bits over z's range: cut k of `bins` is the lowest
grid point t with at least k / bins of the reference rows below it. The search
narrows every cut of every column at once, WAYS - 1 candidate points a step:
each party counts its own reference rows below each candidate (plaintext), the
counts are shared and added, and only the bits "fewer than k / bins of the rows
below" are opened, to every party (each must bin its own rows at the cuts), as
`bins * below - k * reference` < 0 in integers, so the pooled counts stay
secret. GRID_BITS / log2(WAYS) = 3 steps of comparisons.

What every party learns: each column's cut points, on the grid (1 / 32,768 of
the column's frame, fine enough for a skewed column's bulk); so, for each cut,
that the pooled k / bins quantile lies in the grid cell just below it (some
reference row's value lies in that cell), and nothing else about the counts. Ties at a cut: values equal to it fall above it
(bins [t_k, t_k+1)); duplicate cuts are dropped.
"""

from __future__ import annotations

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.programs import secure
from mpc.programs.stats import horizontal

GRID_BITS = 15
WAYS = 32
LOW, HIGH = -0.5625, 0.5625
"""z's search range: the frame keeps |z| <= 1/2 + 1/32."""


def joint_cuts(ctx: JobContext, x: np.ndarray, n: int, bins: int, columns: list[str],
               reference: np.ndarray | None = None) -> list[np.ndarray]:
    """Per column of `x` (this party's rows; every party's alike in columns), the
    equal-frequency cut points of the pooled `reference` rows (all rows where
    None), in the columns' units; none for a column constant at every party."""
    (shift, scale), constant = horizontal.frame_and_constants(ctx, x, n, columns)
    chosen = np.ones(len(x), dtype=bool) if reference is None else reference
    z_ref = np.sort(((x - shift) / scale)[chosen], axis=0)
    quantiles = np.arange(1, bins)
    lo = np.zeros((len(columns), bins - 1), dtype=np.int64)  # grid cell indices: the cut lies in (lo, lo + width]
    width = 1 << GRID_BITS
    step = (HIGH - LOW) / width
    while width > 1:
        width //= WAYS
        candidates = lo[:, :, None] + width * np.arange(1, WAYS)  # columns x cuts x WAYS - 1 grid indices
        points = LOW + candidates * step
        below = np.stack([np.searchsorted(z_ref[:, c], points[c].ravel(), side="left").reshape(points[c].shape)
                          for c in range(len(columns))]) if len(z_ref) else np.zeros(points.shape, dtype=np.int64)
        local = bins * below - quantiles[None, :, None] * len(z_ref)
        short = secure.less_than_to_all(ctx, secure.total(secure.share_integers(ctx, local)), 0.0)
        lo = lo + width * short.reshape(local.shape).sum(axis=2)  # candidates below the cut: all short ones
    cuts = shift[:, None] + scale[:, None] * (LOW + (lo + 1) * step)
    return [np.zeros(0) if constant[c] else np.unique(cuts[c]) for c in range(len(columns))]
