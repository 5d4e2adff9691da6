"""features.select: which feature columns a scorecard should keep, decided under
MPC against a 0/1 label another party may hold; only the decision is released.

The rule (a risk team's screen, as toad's `select` and FATE's filters apply it):
go down the columns by information value (IV, as features.woe_iv computes it on
the same bins, `bins` or `splits`), highest first (ties: the earlier column
first); keep a column if its IV is at least `iv_min` and its Pearson correlation
with every numeric column kept before it is at most `max_correlation` in
absolute value. Categorical columns are screened on IV alone (no Pearson
correlation). A column withheld by the WOE program (fewer than k events or
non-events altogether) is not kept.

Under MPC. The IVs stay shared (mpc.programs.features.woe); the correlations are
the statistics' (horizontal: the pooled moments, mpc.programs.stats.horizontal;
vertical: each owner's own columns' exactly, shared, and the cross-party ones,
mpc.programs.stats.vertical), shared at 24 bits. Shared bits then say, for every
pair, "too correlated" and "ranked before"; the greedy pass is their fixed point,
s_j = pass_j and no i with s_i ranked before j and too correlated, reached from s
= pass in at most d - 1 steps, each a shared matrix-vector product and a
comparison, always all d - 1 of them (stopping early would tell the chain's
length). IVs within ~1e-3 of `iv_min` or of each other, and correlations within
~1e-3 of `max_correlation`, may fall either way.

Released to the receivers: `selected`, one value per feature column (1 kept, 0
not). Every party learns, as features.woe_iv tells it, which bins merged and
which columns are withheld, and, as the statistics' correlations do, which
numeric columns are constant (never kept) and the columns' public frames
(horizontal) or how far each numeric column's farthest value lies from its mean,
in standard deviations to a power of two (vertical); nothing about the IVs,
correlations or ranking beyond the decision.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import SelectParameters
from mpc.errors import InvalidArgument
from mpc.programs import groups, secure
from mpc.programs.features import woe
from mpc.programs.solve import inverse
from mpc.programs.stats import horizontal, vertical

VIF_RIDGE = 2.0**-10
"""The ridge under the variance inflation factors' inverse (`_inflation_screen`)."""
VIF_COLUMNS = 64
"""The most numeric columns the VIF screen takes: an exactly collinear set's
largest VIF then stays above 3 / (VIF_RIDGE VIF_COLUMNS) = 48, above any max_vif."""
VIF_BITS = 12
"""The inverse's entries (up to 1 / VIF_RIDGE) enter the series at 12 bits: a
product's encoding then stays near 2^38, where CrypTen's truncation fails once in
~2^25 elements."""
VIF_ENTRY_ERROR = 2.0**-24
"""The correlations' error per entry, as solve.inverse's refusal bound takes it."""


def select(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(SelectParameters)
    found = woe.information(ctx, settings.label, dict(settings.splits), settings.bins, woe.LABEL,
                            woe.constraints(settings))
    names, kept = [c.name for c in found.columns], found.kept
    ctx.progress("correlations", 60)
    numeric = [k for k, i in enumerate(kept) if names[i] in ctx.layout[found.columns[i].owner].columns]
    correlation, usable = _correlations(ctx, [names[kept[k]] for k in numeric], found.n)
    passing = secure.greater_than(found.iv, settings.iv_min)  # 0/1 per kept column, exact integers
    constant = [k for k, ok in zip(numeric, usable) if not ok]
    if constant:  # (public) its IV is 0 and it has no correlation: never kept
        passing = passing * torch.tensor([0 if k in constant else 1 for k in range(len(kept))])
    candidates = [k for k, ok in zip(numeric, usable) if ok]
    dominates = _dominance(found.iv, correlation, candidates, len(kept), settings.max_correlation)
    chosen = passing
    for step in range(1, len(candidates)):  # always all of them: stopping early would tell the chain's length
        blocked = dominates.t().matmul(chosen)  # kept columns ranked before j and too correlated with it
        chosen = passing * secure.less_than(blocked, 0.5)
        ctx.progress(f"selecting: step {step} of {len(candidates) - 1}", 70 + 25 * step / len(candidates))
    if settings.max_vif and len(candidates) > 1:
        dropped = _inflation_screen(ctx, correlation, chosen[torch.tensor(candidates)], settings.max_vif)
        at = [[k for k, i in enumerate(candidates) if i == j] for j in range(len(kept))]
        chosen = chosen - groups.summed(dropped, groups.membership(at, len(candidates)))
    opened = secure.open_to_receivers(ctx, [chosen])
    if opened is None:
        return None
    values = np.zeros(len(names))
    values[kept] = np.asarray(opened[0]).reshape(-1) > 0.5
    return {"selected": Result(values, names)}


def _inflation_screen(ctx: JobContext, correlation: Any, kept: Any, limit: float) -> Any:
    """toad's `drop_vif` on the kept numeric columns (`kept`: their 0/1 bits, shared;
    `correlation`: their matrix): while the largest variance inflation factor among
    them is above `limit`, drop that column; always c - 1 passes (one column at most
    each). Returns the dropped columns' bits.

    A column's VIF is the diagonal entry of the inverse of the kept columns'
    correlation matrix; the dropped ones are masked out of it (their rows and columns
    of the identity: VIF 1). The 16-bit Newton-Schulz inverse X of that matrix
    plus `VIF_RIDGE` I (mpc.programs.solve.inverse: it keeps X's entries below
    1 / VIF_RIDGE) is corrected by the series A^-1 = X (I + eX + (eX)^2 + ...), e =
    VIF_RIDGE, to three terms: every term's diagonal is positive, so a VIF is never
    overstated, and for VIFs up to 20 the terms left out are below ~1e-4 of it
    (simulated over 2,000 random designs up to 64 columns); in an exactly collinear
    set of k columns the largest VIF stays above 3 / (e k). The largest is found by
    exact comparisons; each pass's one bit ("above the limit") stays shared."""
    import crypten

    c = int(kept.size(0))
    if c > VIF_COLUMNS:
        raise InvalidArgument(f"max_vif screens at most {VIF_COLUMNS} numeric columns; {c} passed the other screens "
                              "(raise iv_min or lower max_correlation)")
    eye = torch.eye(c, dtype=torch.float64)
    unit = crypten.cryptensor(torch.ones(c, dtype=torch.float64), precision=secure.PRODUCT_BITS)  # S = I
    ridge = torch.full((c,), VIF_RIDGE, dtype=torch.float64)
    s = kept
    for step in range(1, c):
        ctx.progress(f"variance inflation: pass {step} of {c - 1}", 85 + 10 * step / c)
        outer = s.unsqueeze(1) * s.unsqueeze(0)  # 0/1, precision 0: exact
        rest = secure.times_integers((1 - s).unsqueeze(1).expand(c, c), torch.eye(c, dtype=torch.long).tolist())
        masked = secure.mul_mixed(correlation, outer) + secure.raised(rest, secure.bits(correlation))
        x = secure.lowered(inverse(ctx, masked, unit, VIF_ENTRY_ERROR, phase="variance inflation",
                                   scaled_diagonal=ridge).x, VIF_BITS)
        y = x.mul(VIF_RIDGE)
        series = y + y.matmul(y) + eye
        vif = secure.mul_mixed((x * series.t()).sum(1), s)  # diag(X (I + Y + Y^2)); 0 where dropped
        largest = secure.first_smallest([v.neg() for v in vif.unsqueeze(1)]).reshape(c)  # one-hot, precision 0
        above = secure.greater_than(secure.mul_mixed(vif, largest).sum(), limit)  # 0/1, scale 1
        s = s - largest * above
    return kept - s


def _correlations(ctx: JobContext, columns: list[str], n: int) -> tuple[Any, list[bool]]:
    """The correlation matrix (shared, 24 bits) of the numeric `columns` that are
    not constant, and which are not (public)."""
    if not columns:
        return None, []
    own = ctx.layout[ctx.rank].columns
    if ctx.partitioning == "horizontal":
        x = ctx.table[:, [own.index(c) for c in columns]]
        (shift, scale), constant = horizontal.frame_and_constants(ctx, x, n, columns)
        varying = [j for j in range(len(columns)) if not constant[j]]
        if not varying:
            return None, [False] * len(columns)
        moments = horizontal.pooled_moments(ctx, x[:, varying], n, (shift[varying], scale[varying]),
                                            [columns[j] for j in varying])
        return horizontal.correlation(moments), [bool(not c) for c in constant]
    layout = [dataclasses.replace(e, columns=[c for c in e.columns if c in columns]) for e in ctx.layout]
    widths = [len(e.columns) for e in layout]
    x = ctx.table[:, [own.index(c) for c in layout[ctx.rank].columns]]
    ordered = [c for e in layout for c in e.columns]  # (by owner: the cross products' order)
    cross, _ = vertical.cross_correlations(dataclasses.replace(ctx, table=x, layout=layout), n, widths, ordered,
                                           constants=True)
    sigma = (x - x[:1]).std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    flat = [bool(v) for part in secure.public(ctx, (sigma <= 0).tolist()) for v in part]
    with np.errstate(divide="ignore", invalid="ignore"):
        mine = np.nan_to_num(np.atleast_2d(np.corrcoef(x, rowvar=False)), nan=0.0) if x.shape[1] else None
    blocks = [secure.share_from(ctx, r, mine if r == ctx.rank else None, (w, w)) if w else None
              for r, w in enumerate(widths)]
    full = _assembled(blocks, cross, widths)
    at = torch.tensor([ordered.index(c) for c in columns if not flat[ordered.index(c)]])
    usable = [not flat[ordered.index(c)] for c in columns]
    return (full[at][:, at] if len(at) else None), usable


def _assembled(blocks: list[Any], cross: dict[tuple[int, int], Any], widths: list[int]) -> Any:
    """The owners' own correlation blocks and the cross-party blocks as one matrix."""
    import crypten

    present = [r for r, w in enumerate(widths) if w]
    rows = [crypten.cat([blocks[a] if a == b else cross[(a, b)] if a < b else cross[(b, a)].t() for b in present],
                        dim=1) for a in present]
    return crypten.cat(rows, dim=0)


def _dominance(iv: Any, correlation: Any, candidates: list[int], d: int, threshold: float) -> Any:
    """d x d shared 0/1 (d the kept columns): entry (i, j) is 1 where candidates i
    and j are too correlated and i ranks before j (a higher IV; a tie: the
    earlier column). `correlation` is the candidates' matrix, in their order."""
    import crypten

    if len(candidates) < 2:
        return crypten.cryptensor(torch.zeros(d, d, dtype=torch.float64), precision=0)
    pairs = torch.triu_indices(len(candidates), len(candidates), 1)
    at = torch.tensor(candidates)
    i, j = at[pairs[0]], at[pairs[1]]
    before = 1 - secure.greater_than(iv[j] - iv[i], 0.0)  # i (the earlier) ranks before j unless IV_j > IV_i
    r = correlation[pairs[0], pairs[1]]
    high = secure.greater_than(crypten.cat([r, r.neg()]), threshold)
    high = high[: len(i)] + high[len(i) :]  # |r| > threshold (the two sides exclude each other)
    both = crypten.cat([before, 1 - before]) * crypten.cat([high, high])  # (i, j) entries, then (j, i)
    slots: list[list[int]] = [[] for _ in range(d * d)]
    for k, target in enumerate(torch.cat([i * d + j, j * d + i]).tolist()):
        slots[target].append(k)
    return groups.summed(both, groups.membership(slots, 2 * len(i))).reshape(d, d)  # (each slot: one entry or none)
