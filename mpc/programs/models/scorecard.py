"""model.scorecard: a credit scorecard trained under MPC. Each feature column is
binned and merged as features.binning does it (mpc.programs.features.woe, on
the training rows), every training row's bins are turned into their weights of
evidence (WOE) without anyone seeing them, a logistic regression is fitted on
those WOE features (mpc.programs.models.logistic's steps), and each bin gets
points on the risk team's scale (optbinning's pdo_odds):

    factor = pdo / ln 2, offset = score - factor ln(odds),
    points(column c, bin b) = -(beta_c WOE_cb + intercept / m) factor + offset / m

(m the model's columns), so a row's score, the sum of its bins' points, is
offset + factor ln(odds of a good): `score` points at odds `odds` to one, `pdo`
more for twice the odds.

Under MPC. The WOE table stays shared (woe.information). Each column's WOE is
standardized under encryption from that table (its mean and variance are sums
over bins of rows x WOE and rows x WOE^2: no row pass), u = (WOE - mean) s; a
training row's u is its bin-holder's public-to-itself 0/1 bin matrix, shared,
times the shared u per bin (one exact product: no truncation). The rows' u lies
within sqrt(n / r) of zero (r the smallest bin's rows: at least 2k, and
min_share n where no model column is categorical), so the design enters logistic regression at 12 bits of u / B, B
a public power of two above that bound. Each bin's value is rounded there
(<= B 2^-13 standard deviations); the model is exact for the rounded values, and
the points are computed from the same values, so a row's score is the model's
log-odds. The correlation matrix (the Hessian bound's) is the design's Gram
matrix. Before anything is opened, the rows' leverage is bounded and each class
counted (mpc.programs.models.influence), as for every model; vertically, each
bank's own merged bins are first checked for a row they single out
(mpc.programs.leverage, in woe.information): the WOE features lie in their span.

Released. To the receivers: `count` (training rows), `iv` (each column's, as
features.woe_iv's), the loss per epoch and the held-out metrics (AUC, Gini, KS,
Brier, accuracy, lift: mpc.programs.models.evaluation). Horizontal: to every
receiver, `coefficients` (per WOE unit), `intercept` and `points.<column>` (per
bin: points, WOE, rows, events). Vertical: a column's `points.<column>` table and
coefficient only to its owner, where the owner is a receiver (its bins are its
own cuts; every bank scores its own columns, and a row's score is the sum over
banks). What a receiver learns about one row: its bin's counts (at least k
events and k non-events, as features.woe_iv) and the model, whose rows'
leverage is bounded. Every party learns what features.binning tells it, and for
each model column its WOE's variance to a power of four (it standardizes them).
An owner can derive the intercept from its points.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import ScorecardParameters
from mpc.errors import FailedPrecondition
from mpc.programs import groups, leverage, ratios, secure
from mpc.programs.features import woe
from mpc.programs.models import evaluation, holdout, influence, logistic, penalty, sigmoid
from mpc.programs.stats.request import party_rows

HOLDOUT = 0.2
VARIANCE_POWERS = range(-9, 6)
"""The WOE variances told apart, 4^-9 (~4e-6) to 4^5: a column below is refused
(its bins' WOE barely differ); |WOE| <= woe.WOE_LIMIT keeps it below 4^5."""


@dataclasses.dataclass
class Card:
    """The model's columns (indices into the binned columns) and each of their
    groups' column; shared: each column's WOE mean, s = root 2^-exponent its
    inverse deviation (root in (1, 2], the exponent public), and each group's
    standardized WOE u as u / bound at 12 bits."""

    used: list[int]
    group_column: list[int]
    index: list[int]  # the groups' rows in the binned table
    mean: Any
    root: Any
    exponents: np.ndarray
    scale: Any
    z: Any
    bound: float

    def members(self) -> torch.Tensor:
        """groups x model columns, 0/1."""
        out = torch.zeros(len(self.group_column), len(self.used), dtype=torch.long)
        out[torch.arange(len(self.group_column)), torch.tensor(self.group_column)] = 1
        return out


def scorecard(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(ScorecardParameters)
    secure.configure()
    party_rows(ctx)
    test = holdout.mask(ctx, ctx.table.shape[0], HOLDOUT)
    train = dataclasses.replace(ctx, table=ctx.table[~test], keys=None if ctx.keys is None else ctx.keys[~test])
    ctx.progress("binning", 5)
    found = woe.information(train, settings.label, dict(settings.splits), settings.bins, woe.LABEL,
                            woe.constraints(settings))
    ctx.progress("weights of evidence", 40)
    card = _card(ctx, found, settings.min_share)
    design = _design(ctx, found, card, test, settings)
    influence.refuse_one_class(ctx, design.y, settings.label)
    bound = leverage.limit(ctx)
    rows = influence.standardized(design.z, design.shift, design.scale)
    influence.refuse_influential_rows(ctx, rows, design.n, bound, design.correlation, percent=50)
    influence.refuse_small_classes(ctx, design.y, bound)
    w, b, losses = logistic.train(ctx, design)
    metrics = None
    if design.z_test is not None:
        eta = logistic.logits(design, design.z_test, w, b)
        p = sigmoid.clamp01(sigmoid.activations(eta)[0])
        metrics = evaluation.evaluation(ctx, p, secure.raised(design.y_test, secure.PRODUCT_BITS), design.n_test, eta)
    return _release(ctx, found, card, w, b, losses, metrics, settings)


def _card(ctx: JobContext, found: woe.Binned, min_share: float) -> Card:
    """The model's columns (those left with two bins or more) standardized under
    encryption from the WOE table; each column's variance to a power of four is
    opened to every party (it sets the column's scale)."""
    starts = np.cumsum([0, *(len(found.partition[c]) for c in found.kept)])
    used = [i for i, c in enumerate(found.kept) if len(found.partition[c]) > 1]
    if not used:
        raise FailedPrecondition("no feature column has two bins left after the merges: a scorecard needs one")
    index = [g for i in used for g in range(int(starts[i]), int(starts[i + 1]))]
    group_column = [k for k, i in enumerate(used) for _ in range(int(starts[i + 1] - starts[i]))]
    card = Card([found.kept[i] for i in used], group_column, index, None, None, np.zeros(0), None, None, 1.0)
    members = card.members()
    table = found.table[index]
    value = secure.lowered(table[:, 0])  # WOE, 16 bits
    share = secure.lowered(table[:, 1], ratios.LOG_BITS).div(found.n)  # each group's share of the rows
    card.mean = groups.summed(secure.mul_mixed(share, value), members)
    second = groups.summed(secure.mul_mixed(share, value * value), members)
    variance = second - secure.raised(secure.lowered(card.mean).square(), ratios.LOG_BITS)
    powers = torch.tensor([4.0**j for j in VARIANCE_POWERS], dtype=torch.float64)
    shape = (len(used), len(powers))
    above = secure.open_bits_to_all(ctx, secure.greater_than(variance.unsqueeze(1).expand(*shape),
                                                             powers.unsqueeze(0).expand(*shape)))
    card.exponents = above.reshape(shape).sum(axis=1) + VARIANCE_POWERS[0]  # var in [4^(e-1), 4^e)
    if (card.exponents <= VARIANCE_POWERS[0]).any():
        flat = found.columns[card.used[int(np.argmin(card.exponents))]].name
        raise FailedPrecondition(f"column {flat!r}: its bins' weights of evidence barely differ (variance below "
                                 f"{4.0**VARIANCE_POWERS[0]:.1g}); leave it out (features.select) or bin it otherwise")
    card.root = secure.inv_sqrt(secure.lowered(_times_powers(variance, 4.0 ** -card.exponents)))  # of [1/4, 1)
    card.scale = _times_powers(card.root, 2.0 ** -card.exponents)
    k, _ = groups.floor(ctx)
    shared_out = all(found.columns[c].name not in ctx.vocabularies for c in card.used)  # (categories: k merges only)
    smallest = max(2 * k, math.ceil(min_share * found.n) if shared_out else 0)
    card.bound = 2.0 ** math.ceil(math.log2(1.5 * math.sqrt(found.n / smallest)))  # |u| <= sqrt(n / r), a margin
    centered = table[:, 0] - groups.summed(card.mean, members.t())
    u = secure.mul_mixed(secure.raised(centered, ratios.LOG_BITS), groups.summed(card.scale, members.t()))
    card.z = secure.lowered(u.div(card.bound), logistic.DESIGN_BITS)
    return card


def _times_powers(value: Any, factors: np.ndarray) -> Any:
    """value * public powers of two, one per entry: exact where all are integers."""
    if np.all(factors >= 1):
        return secure.times_integers(value, [int(f) for f in factors])
    return value.mul(torch.from_numpy(np.asarray(factors, dtype=np.float64)))


def _design(ctx: JobContext, found: woe.Binned, card: Card, test: np.ndarray,
            settings: ScorecardParameters) -> logistic.Design:
    """Logistic regression's problem on the WOE features: every training (and
    held-out) row's u, its label, and the Gram matrix of u as the correlation."""
    names = ctx.layout[ctx.rank].columns
    label = ctx.table[:, names.index(settings.label)] if settings.label in names else None
    sizes = [(int(a), int(b)) for a, b in secure.public(ctx, (int((~test).sum()), int(test.sum())))]
    train_sizes, test_sizes = [a for a, _ in sizes], [b for _, b in sizes]
    if ctx.partitioning == "vertical":
        n, n_test = train_sizes[0], test_sizes[0]
    else:
        n, n_test = sum(train_sizes), sum(test_sizes)
    holdout.check(ctx, n_test, HOLDOUT)
    z = _rows(ctx, found, card, ctx.table[~test], train_sizes, training=True)
    z_test = _rows(ctx, found, card, ctx.table[test], test_sizes, training=False) if n_test else None
    y, y_test = (_labels(ctx, settings.label, label, mask, sizes_of, rows)
                 for mask, sizes_of, rows in ((~test, train_sizes, n), (test, test_sizes, n_test)))
    m = len(card.used)
    gram = secure.exact_product(z.t(), z, "matmul")  # sums of (u / B)^2 products, 24 bits, exact
    correlation = secure.times_integers(gram, int(card.bound**2)).div(n)
    ridge = None
    if settings.alpha:  # ridge_j = 4 alpha s_j^2 / (n - 1), s_j^2 = root_j^2 4^-e_j
        ridge = penalty.pooled(card.root, 4 * settings.alpha * 4.0 ** -card.exponents / (n - 1))
    return logistic.Design(z=z, y=y, z_test=z_test if n_test else None, y_test=y_test if n_test else None,
                           shift=torch.zeros(m, dtype=torch.float64),
                           scale=torch.full((m,), card.bound, dtype=torch.float64), correlation=correlation,
                           **penalty.scaling(ridge), n=n, n_test=n_test)


def _labels(ctx: JobContext, name: str, label: np.ndarray | None, mask: np.ndarray, sizes: list[int],
            rows: int) -> Any:
    """The chosen rows' labels, shared at 12 bits (vertical: from their holder)."""
    if not rows:
        return None
    if ctx.partitioning == "vertical":
        holder = next(e.rank for e in ctx.layout if name in e.columns)
        return secure.share_from(ctx, holder, None if label is None else label[mask], (rows,), logistic.DESIGN_BITS)
    assert label is not None
    return secure.stacked_rows(ctx, label[mask, None], sizes, logistic.DESIGN_BITS).squeeze(1)


def _rows(ctx: JobContext, found: woe.Binned, card: Card, table: np.ndarray, sizes: list[int],
          training: bool) -> Any:
    """The rows' u / B (rows x model columns, 12 bits): each holder's 0/1 matrix of
    its rows' groups, shared, times the groups' shared values placed in their
    columns (exact: the 0/1 side is an integer)."""
    offsets = np.cumsum([0, *(len(found.partition[c]) for c in card.used)])
    groups_total, m = int(offsets[-1]), len(card.used)
    values = secure.times_integers(card.z.unsqueeze(1).expand(groups_total, m), card.members().tolist())
    if ctx.partitioning == "horizontal":
        everyone = _groups_matrix(ctx, found, card, table, offsets, training, range(m))
        return secure.exact_product(secure.stacked_rows(ctx, everyone, sizes, precision=0), values, "matmul")
    total = None
    for owner in sorted({found.columns[c].owner for c in card.used}):
        mine = [k for k, c in enumerate(card.used) if found.columns[c].owner == owner]
        chosen = [g for k in mine for g in range(int(offsets[k]), int(offsets[k + 1]))]
        local = _groups_matrix(ctx, found, card, table, offsets, training, mine) if owner == ctx.rank else None
        shared = secure.share_from(ctx, owner, None if local is None else local[:, chosen],
                                   (table.shape[0], len(chosen)), 0)
        part = secure.exact_product(shared, values[chosen], "matmul")
        total = part if total is None else total + part
    return total


def _groups_matrix(ctx: JobContext, found: woe.Binned, card: Card, table: np.ndarray, offsets: np.ndarray,
                   training: bool, columns: Any) -> np.ndarray:
    """rows x groups (all model columns' groups; 1 where the row's bin is in the
    group), filled for the model columns among `columns` (this party's)."""
    out = np.zeros((table.shape[0], int(offsets[-1])), dtype=np.int64)
    names = ctx.layout[ctx.rank].columns
    for k in columns:
        column = found.columns[card.used[k]]
        bins: np.ndarray | None = column.bins if training else column.binned(table, names)
        assert bins is not None
        groups_of_bins = woe.group_of(found.partition[card.used[k]], len(column.labels))
        out[np.arange(table.shape[0]), int(offsets[k]) + groups_of_bins[bins]] = 1
    return out


def _release(ctx: JobContext, found: woe.Binned, card: Card, w: Any, b: Any, losses: list[float],
             metrics: evaluation.Evaluation | None, settings: ScorecardParameters) -> dict[str, Result] | None:
    """Per group (points, WOE, rows, events), per column its coefficient per WOE
    unit, and the intercept, opened as the module's docstring says."""
    import crypten

    m = len(card.used)
    factor = settings.pdo / math.log(2)
    offset = settings.score - factor * math.log(settings.odds)
    beta = secure.lowered(w) * secure.lowered(card.scale)  # per WOE unit
    centers = beta * secure.lowered(card.mean)  # beta_c mean_c
    intercept = secure.lowered(b) - centers.sum().unsqueeze(0)  # in WOE units
    # beta_c WOE_g + intercept / m, as w_c u_g + beta_c mean_c + intercept / m: the model's own log-odds terms
    u = secure.raised(secure.times_integers(card.z, int(card.bound)), secure.PRODUCT_BITS)
    constant = centers + intercept.div(m).expand(m)
    terms = secure.lowered(groups.summed(w, card.members().t())) * u + groups.summed(constant, card.members().t())
    points = terms.mul(-factor) + offset / m
    table = crypten.cat([secure.raised(points, ratios.LOG_BITS).unsqueeze(1), found.table[card.index]], dim=1)
    bounds = np.cumsum([0, *(len(found.partition[c]) for c in card.used)])
    spans = [list(range(int(bounds[k]), int(bounds[k + 1]))) for k in range(m)]
    shared_metrics = [] if metrics is None else metrics.shared
    out: dict[str, Result] = {}
    if ctx.partitioning == "horizontal":
        opened = secure.open_to_receivers(ctx, [found.iv, *shared_metrics, table, beta, intercept])
        if opened is None:
            return None
        flat = np.asarray(opened[-3]).reshape(-1, 4)
        tables = {k: flat[spans[k]] for k in range(m)}
        coefficients = dict(enumerate(np.asarray(opened[-2]).reshape(-1)))
        out["intercept"] = Result(np.asarray(opened[-1]).reshape(-1), [settings.label])
        opened = opened[:-3]
    else:
        owner_of = [found.columns[c].owner for c in card.used]
        shown = [k for k in range(m) if owner_of[k] in ctx.receivers]
        parts = [part for owner in sorted({owner_of[k] for k in shown})
                 for part in ((owner, table[[g for k in shown if owner_of[k] == owner for g in spans[k]]]),
                              (owner, beta[[k for k in shown if owner_of[k] == owner]]))]
        own = secure.open_to_owners(ctx, parts) if parts else []
        mine = [k for k in shown if owner_of[k] == ctx.rank]
        flat = np.asarray(own[0]).reshape(-1, 4) if mine else np.zeros((0, 4))
        ends = np.cumsum([0, *(len(spans[k]) for k in mine)])
        tables = {k: flat[int(ends[i]) : int(ends[i + 1])] for i, k in enumerate(mine)}
        coefficients = dict(zip(mine, np.asarray(own[1]).reshape(-1))) if mine else {}
        opened = secure.open_to_receivers(ctx, [found.iv, *shared_metrics])
        if opened is None:
            return None
    _check(tables, settings)
    names = [found.columns[c].name for c in card.used]
    values = np.full(len(found.columns), np.nan)
    values[found.kept] = np.asarray(opened[0]).reshape(-1)
    out.update({"count": Result(np.array([float(found.n)]), ["count"]),
                "iv": Result(values, [c.name for c in found.columns],
                             suppressed=[c for c in range(len(found.columns)) if c not in found.kept]),
                "loss": Result(np.array(losses), [f"epoch {i + 1}" for i in range(len(losses))])})
    if coefficients:
        out["coefficients"] = Result(np.array([coefficients[k] for k in sorted(coefficients)]),
                                     [names[k] for k in sorted(coefficients)])
    for k, rows in tables.items():
        column = found.columns[card.used[k]]
        labels = [woe.merged_label(column, members) for members in found.partition[card.used[k]]]
        out[f"points.{names[k]}"] = Result(np.column_stack([rows[:, :2], np.round(rows[:, 2:])]), labels,
                                           ["points", "woe", "rows", "events"])
    if metrics is not None:
        out.update(metrics.results(opened[1:], "holdout"))
    return out


def _check(tables: dict[int, np.ndarray], settings: ScorecardParameters) -> None:
    """A failed truncation's wrap is gross: refused, never released."""
    reach = abs(settings.score) + settings.pdo / math.log(2) * (abs(math.log(settings.odds)) + 4 * woe.WOE_LIMIT)
    if any(not np.all(np.isfinite(t)) or np.any(np.abs(t[:, 0]) > reach) or np.any(np.abs(t[:, 1]) > woe.WOE_LIMIT)
           for t in tables.values()):
        raise FailedPrecondition("a fixed-point truncation failed (points or a WOE out of range); nothing was "
                                 "released, please resubmit the job")
