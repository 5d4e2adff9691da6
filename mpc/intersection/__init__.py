"""Private set intersection and row alignment for vertical jobs: before a vertical
job's program runs, the parties find the entities they all hold, by ECDH on their
key columns (protocol.py), and every party keeps only those rows, in a common
order derived from the doubly blinded keys. Each party then checks its own
policy's minimum intersection size (the size is public to every party)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gateway.errors import FailedPrecondition, PolicyRefused
from mpc.intersection.protocol import Alignment, intersect
from mpc.programs import secure
from mpc.programs.context import JobContext

__all__ = ["Alignment", "align", "intersect"]


def align(ctx: JobContext) -> JobContext:
    """`ctx` on the rows every party holds, in the common order (aligned=True). A
    party with no input (a model's holder in model.predict) holds no rows: it
    takes part in the protocol without keys, and the intersection is the others'."""
    holds_rows = ctx.keys is not None or bool(ctx.layout[ctx.rank].columns)
    counted = [bool(c) for c in secure.public(ctx, holds_rows)]
    if not holds_rows:
        ctx = dataclasses.replace(ctx, keys=np.array([], dtype=object), table=np.zeros((0, 0)))
    if ctx.keys is None or len(ctx.keys) != ctx.table.shape[0]:
        raise FailedPrecondition("a vertical job needs this party's key column, one key per row")
    salt = str(ctx.parameters.get("key_salt", "mpcgate")).encode()
    found = intersect(ctx.rank, ctx.world_size, ctx.keys, salt, ctx.progress,
                      where=f"party {ctx.layout[ctx.rank].party_id}'s keys", parties=[e.party_id for e in ctx.layout],
                      counted=counted)
    minimum = ctx.rules.min_intersection
    refusals = secure.public(ctx, found.size < minimum)
    if any(refusals):
        party = ctx.layout[refusals.index(True)].party_id
        raise PolicyRefused(f"party {party} refused: the parties have {found.size} entities in common, fewer than its "
                            "dataset's policy allows (min_intersection_size); nothing was computed on them")
    if found.size == 0:
        raise FailedPrecondition("the parties' key columns have no entity in common: nothing to compute")
    return dataclasses.replace(ctx, table=ctx.table[found.rows], keys=ctx.keys[found.rows], aligned=True)
