"""psi.intersect: the private set intersection of the parties' key columns as a
job of its own. The intersection itself runs before every vertical job's program
(mpc.programs.intersection); this program only reports it. Every party learns the
intersection's size (as for any vertical job); the receivers get the size and,
unless `cardinality_only`, the common keys in the common order, each from its own
key column (a receiver holds every common key already), so nothing is opened."""

from __future__ import annotations

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import IntersectParameters


def intersect(ctx: JobContext) -> dict[str, Result] | None:
    assert ctx.aligned and ctx.keys is not None  # mpc.programs.run aligned the rows
    if ctx.rank not in ctx.receivers:
        return None
    ctx.before_release()
    out = {"intersection_size": Result(np.array([float(len(ctx.keys))]), ["entities"])}
    if not ctx.settings(IntersectParameters).cardinality_only:
        out["keys"] = Result(np.arange(len(ctx.keys), dtype=np.float64), [str(k) for k in ctx.keys])
    return out
