"""How much one training row can show through a model job: its leverage,
bounded under encryption before anything is revealed (logistic regression and
the MLP: before training, whose loss each epoch every party sees).

What a receiver learns about one row. A linear model's every released number
(coefficients, intercept, means, deviations, R^2; each party's own coefficients)
is a function of the Gram matrix of the standardized design [features, label]
with an intercept. A receiver who knows some columns (its own, perhaps crafted)
learns inner products a^T z of them with the others, and any such a lies in the
design's column space. Row i's share of any a in that space is bounded by the
row's leverage h_i = x_i^T (X^T X)^-1 x_i (Cauchy-Schwarz: a_i^2 <= h_i |a|^2), so
the best linear reading of row i's value weighs it h_i against other rows'
values with weight sqrt(h_i (1 - h_i)): where the other rows are unknown, the
reading errs by sqrt((1 - h_i) / h_i) of the column's deviation. An indicator
column (1 on one customer, 0 elsewhere) gives that row h = 1: its label is read
off exactly; an indicator of g rows gives each 1 / g. Leverage is invariant
under any reparametrization of the columns (a ridge penalty with a known alpha
is undone by the receiver, so the unpenalized leverage counts).

The rule. Every data party's policy sets `max_leverage` (default 0.9); a model is
revealed only if every training row's leverage is below the strictest of them.
Linear regression bounds the leverage of [features, label] (it also stops a
label holder reading a feature through a crafted label); logistic regression and
the MLP bound the features' leverage and, for the labels, each class's row count
(a class of c rows gives its rows the label column's leverage 1 / c). The MLP's
hidden layers can single out rows a linear bound cannot see: a label holder that
needs more uses `label_release` (dp or shared_only). Models kept shared are
checked alike: they reveal no weights, but the training losses (an indicator
column's fall in the last loss reads that customer's label) and the R^2s.

Computed under MPC: the rows standardized and divided by sqrt(n) (unit-norm
columns, |v| <= 1, 16 bits), their Gram matrix G = V^T V (the correlation matrix
the program computed already, or one secure matmul),
(G + LEVERAGE_RIDGE I)^-1 by the Newton-Schulz inverse (mpc/programs/solve.py), then
h_i = 1/n + v_i^T M v_i per row and one comparison each. Every party learns one
bit: whether every row is below the limit. A direction of the design whose
variance is below LEVERAGE_RIDGE of a standardized column's is discounted (its
leverage counts mu / (mu + LEVERAGE_RIDGE)). Tested: the bit agrees with numpy's
leverage for rows 0.04 either side of the bound. Without an intercept the
programs fit the data with its mirror image: a row's leverage is then twice its
share among the 2n rows (`mirrored`), and only the rows themselves count a class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext
from mpc.errors import FailedPrecondition, PolicyRefused
from mpc.programs import leverage, secure
from mpc.programs.solve import inverse

LEVERAGE_RIDGE = 2.0**-8
INVERSE_BOUND = 2 / LEVERAGE_RIDGE
"""A converged inverse of G + ridge has entries below 1 / ridge; solve.inverse's
own check is set just above that (a wrapped truncation fails it)."""


def refuse_influential_rows(ctx: JobContext, rows: Any, n: int, bound: float | None,
                            correlation: Any | None = None, mirrored: bool = False, percent: float = 96,
                            own: np.ndarray | None = None) -> None:
    """Refuses (every party learns one bit) unless every row of `rows` (shared,
    n x d, each column standardized: mean 0, deviation 1) has leverage below
    `bound` in the design [1, rows]. `correlation`: the columns' correlation
    matrix where the program computed it already (shared, >= 24 bits).
    `mirrored`: the rows are the data and its mirror image (a fit through the
    origin): a row's leverage in the data, without an intercept, is twice its
    leverage among the 2n rows, where its image shares its weight. `own`
    (vertical): this party's own columns of the design, its training rows, first
    checked exactly at the party (mpc.programs.leverage: what this bound's ridge
    discounts)."""
    if bound is None:
        return
    import crypten

    if ctx.partitioning == "vertical":
        leverage.refuse_singled_out(ctx, own, bound, "the model")

    ctx.progress("bounding each row's leverage", percent)
    v = secure.lowered(rows).div(math.sqrt(n))  # unit-norm columns: |v| <= 1, V^T V ~ the correlation matrix
    d = int(v.size(1))
    gram = secure.raised(v.t().matmul(v)) if correlation is None else correlation
    gram = gram + torch.eye(d, dtype=torch.float64) * LEVERAGE_RIDGE
    scale = crypten.cryptensor(torch.full((d,), 1 / math.sqrt(1 + LEVERAGE_RIDGE), dtype=torch.float64),
                               precision=secure.PRODUCT_BITS)
    inv = inverse(ctx, gram, scale, 1e-3 / (math.sqrt(d) * INVERSE_BOUND), phase="bounding each row's leverage")
    middle = secure.mul_mixed(secure.mul_mixed(inv.x, inv.scale.unsqueeze(1).expand(d, d)),
                              inv.scale.unsqueeze(0).expand(d, d))  # (G + ridge)^-1 = S X S, d x d
    quadratic = (v.matmul(middle) * v).sum(1)
    each = quadratic.mul(2) if mirrored else quadratic + 1.0 / n
    if not _all_below(ctx, each, bound):
        raise PolicyRefused(
            f"a training row's leverage exceeds {bound:g}, the strictest max_leverage of the parties' policies: the "
            "model would let a receiver read that row's values off its coefficients (a column that singles out a few "
            "rows, such as an indicator of one customer?); nothing was released. Drop such columns, keep the model "
            "shared (keep_shared), or train it with dp")


def standardized(rows: Any, shift: Any, scale: Any) -> Any:
    """(rows - shift) * scale per column at 16 bits: `shift` and `scale` (d) shared
    (horizontal: the pooled moments) or public tensors (vertical: each owner's own)."""
    z = secure.raised(secure.lowered(rows), secure.PRODUCT_BITS)
    if torch.is_tensor(scale):
        return (z - shift).mul(scale)
    shape = (int(z.size(0)), int(z.size(1)))
    centered = z - secure.lowered(shift).unsqueeze(0).expand(*shape)
    return secure.mul_mixed(centered, secure.lowered(scale).unsqueeze(0).expand(*shape))


def refuse_small_classes(ctx: JobContext, labels: Any, bound: float | None, originals: Any | None = None) -> None:
    """Refuses (one public bit) unless each class of the one-hot (or 0/1) shared
    `labels` holds no row or at least 1 / bound rows: a class of c rows gives each
    of them leverage 1 / c in the label column. `originals`: a public 0/1 mask of
    the rows that are not mirror images (a fit through the origin), which alone
    count."""
    if bound is None:
        return
    counts = class_counts(labels, originals)
    few = secure.greater_than(counts, 0.5) * secure.less_than(counts, math.ceil(1 / bound - 1e-9) - 0.5)
    if secure.greater_than_to_all(ctx, few.sum(), 0.5).all():
        raise PolicyRefused(
            f"a class of the label holds fewer than {math.ceil(1 / bound - 1e-9)} rows (the strictest max_leverage of the "
            f"parties' policies is {bound:g}): a released model would show those rows' labels; nothing was released")


def refuse_one_class(ctx: JobContext, labels: Any, label: str, originals: Any | None = None) -> None:
    """Refuses (one public bit) a label whose rows all hold one class: no classifier
    and no AUC is defined on it (scikit-learn refuses such a label too)."""
    present = secure.greater_than(class_counts(labels, originals), 0.5).sum()
    if not secure.greater_than_to_all(ctx, present, 1.5).all():
        raise FailedPrecondition(f"the label column {label!r} holds one class only: a classifier needs rows of at "
                                 "least two classes")


def class_counts(labels: Any, originals: Any | None = None) -> Any:
    """Each class's rows in the one-hot (or 0/1) shared `labels`, shared; with
    `originals` (a public 0/1 mask of the rows that are not mirror images), theirs."""
    import crypten

    one_hot = labels if labels.dim() == 2 else labels.unsqueeze(1)
    rows = int(one_hot.size(0))
    if originals is not None:
        one_hot, rows = one_hot.mul(originals.unsqueeze(1)), int(originals.sum().item())
    counts = secure.lowered(one_hot.sum(0))
    if int(one_hot.size(1)) == 1:  # 0/1 labels: the other class holds the other rows
        counts = crypten.cat([counts, counts.neg() + rows])
    return counts


def _all_below(ctx: JobContext, values: Any, bound: float) -> bool:
    below = secure.less_than(values, bound)  # 0/1 at scale 1
    return bool(secure.greater_than_to_all(ctx, below.sum() - (int(values.size(0)) - 1), 0.5).all())
