"""Shared matrices of a vertical model, joined from each party's own blocks: a
vector over every party's columns (by_column), and the full correlation matrix
from its owners' diagonal blocks and the cross blocks computed under MPC
(assemble). Used by linear and logistic regression and by R^2."""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.programs import secure


def by_column(ctx: JobContext, widths: list[int], local: np.ndarray, axis: int = 0, precision: int | None = None) -> Any:
    """Each party's array over its own columns (along `axis`), shared by it (at
    `precision` fractional bits, by default the configured) and joined in rank order."""
    import crypten

    parts = []
    for r, width in enumerate(widths):
        shape = list(local.shape)
        shape[axis] = width
        if width:
            parts.append(secure.share_from(ctx, r, local if r == ctx.rank else None, tuple(shape), precision))
    return crypten.cat(parts, dim=axis)


def assemble(ctx: JobContext, widths: list[int], own: np.ndarray, cross: dict[tuple[int, int], Any],
             precision: int | None = None) -> Any:
    """The full correlation matrix, shared: own blocks from their owners, cross blocks
    from MPC (a party with no columns, a model's label holder, adds none), all at
    the cross blocks' `precision` (default: the configured one)."""
    import crypten

    blocks: list[list[Any]] = [[None] * len(widths) for _ in widths]
    for r, width in enumerate(widths):
        blocks[r][r] = (secure.share_from(ctx, r, own if r == ctx.rank else None, (width, width), precision)
                        if width else None)
    for (a, b), block in cross.items():
        blocks[a][b], blocks[b][a] = block, block.t()
    holding = [r for r, width in enumerate(widths) if width]
    return crypten.cat([crypten.cat([blocks[a][b] for b in holding], dim=1) for a in holding], dim=0)
