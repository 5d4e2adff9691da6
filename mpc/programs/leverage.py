"""Rows one party's own columns single out, found exactly at that party.

A row's leverage in a design with an intercept, h_i = x_i^T (X^T X)^+ x_i, is
what bounds how well a receiver can read that row's value off a released model
or table (mpc.programs.models.influence). The bound there is computed under MPC
in fixed point, where a direction of the design whose variance is below its
ridge (2^-8 of a standardized column's) is discounted, and a partner can build
such a direction inside its own columns alone: two copies of a column that
differ in one customer's value (their difference is that customer's indicator,
of variance ~1/n), or bins of two such copies (whose events differ by that
customer's label). A row's leverage in some of a design's columns is at most its
leverage in the whole design, so each party computes it on its own columns,
exactly, in float64, before anything is opened: where a row's reaches the
strictest `max_leverage`, the job is refused. Parties are semi-honest
(DESIGN.md): each runs this check on its own inputs as written. Every party
learns one bit per party: whose own columns single out a row.
"""

from __future__ import annotations

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.errors import PolicyRefused
from mpc.programs import secure

RANK_TOLERANCE = 2.0**-40
"""Directions below this share of the largest singular value of the standardized
columns count as absent (exactly collinear columns span no more: float64 puts
their direction at ~2^-52); a difference this small relative to the column's
spread is below every fixed-point grid the rows are shared on."""


def limit(ctx: JobContext) -> float | None:
    """The strictest max_leverage of the job's parties (each sends its own), or
    None where no party bounds it."""
    strictest = min(float(v) for v in secure.public(ctx, float(ctx.rules.max_leverage)))
    return None if strictest >= 1 else strictest


def own_leverage(columns: np.ndarray) -> np.ndarray:
    """Each row's leverage in [1, columns] (float64, exact to rounding): 1/n plus
    the squared row norms of an orthonormal basis of the centered columns' span."""
    rows = columns.shape[0]
    centered = columns - columns.mean(axis=0)
    spread = centered.std(axis=0)
    varying = spread > 0
    if not rows or not varying.any():
        return np.full(rows, 1.0 / max(rows, 1))
    basis, singular, _ = np.linalg.svd(centered[:, varying] / spread[varying], full_matrices=False)
    rank = int(np.sum(singular > singular[0] * RANK_TOLERANCE))
    return 1.0 / rows + np.sum(basis[:, :rank] ** 2, axis=1)


def refuse_singled_out(ctx: JobContext, own: np.ndarray | None, bound: float | None, released: str) -> None:
    """Refuses (every party learns whose columns) where a row's leverage in this
    or another party's own columns `own` (its rows x columns as the job uses
    them; None where it has none) reaches `bound`."""
    if bound is None:
        return
    high = own is not None and own.size > 0 and float(own_leverage(own).max()) >= bound
    flags = secure.public(ctx, bool(high))
    named = [ctx.layout[r].party_id for r, flag in enumerate(flags) if flag]
    if named:
        raise PolicyRefused(
            f"the columns of {', '.join(named)} alone single out a row (its leverage in them reaches {bound:g}, the "
            f"strictest max_leverage of the parties' policies: an indicator of one customer, or two copies of a "
            f"column that differ in one customer's value?): {released} would show that row's values; nothing was "
            "released")
