"""Private set intersection and row alignment for vertical jobs: before a vertical
job's program runs, the parties find the entities they all hold, by ECDH on their
key columns (protocol.py), and every party keeps only those rows, in a common
order derived from the doubly blinded keys. Each party then checks its own
policy's minimum intersection size and largest key ratio (the size and every
party's key count are public to every party) and audits the set sizes."""

from __future__ import annotations

import dataclasses

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.errors import FailedPrecondition, PolicyRefused
from mpc.programs import secure
from mpc.programs.intersection.protocol import Alignment, intersect

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
    salt = ctx.parameters.key_salt.encode()
    found = intersect(ctx.rank, ctx.world_size, ctx.keys, salt, ctx.progress,
                      where=f"party {ctx.layout[ctx.rank].party_id}'s keys", parties=[e.party_id for e in ctx.layout],
                      counted=counted)
    sizes = [int(n) for n in secure.public(ctx, len(ctx.keys))]
    ctx.audit("psi.intersection", {"dataset_keys": str(len(ctx.keys)), "common": str(found.size),
                                   "others_keys": ",".join(f"{e.party_id}:{n}" for e, n in zip(ctx.layout, sizes)
                                                           if e.rank != ctx.rank and counted[e.rank])})
    refusals = secure.public(ctx, _refuses(ctx, found.size, [n for r, n in enumerate(sizes) if r != ctx.rank and counted[r]]))
    if any(refusals):
        party = ctx.layout[refusals.index(True)].party_id
        raise PolicyRefused(f"party {party} refused: its dataset's policy does not allow this intersection "
                            "(min_intersection_size or max_key_ratio); nothing was computed on it")
    if found.size == 0:
        raise FailedPrecondition("the parties' key columns have no entity in common: nothing to compute")
    return dataclasses.replace(ctx, table=ctx.table[found.rows], keys=ctx.keys[found.rows], aligned=True)


def _refuses(ctx: JobContext, size: int, others: list[int]) -> bool:
    """This party's own rules on an intersection: at least min_intersection common
    entities, and no other party's key set more than max_key_ratio times their
    number (a probe of guessed keys with few hits). Every party learns only
    whether some party refused, never which rule or why: the size is public
    already, but a refusal naming the rule would tell a prober its thresholds."""
    ratio = ctx.rules.max_key_ratio
    return size < ctx.rules.min_intersection or (ratio > 0 and any(n > ratio * max(size, 1) for n in others))
