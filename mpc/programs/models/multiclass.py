"""model.logistic_regression with `classes` above 2: one-vs-rest, as
scikit-learn's OneVsRestClassifier(LogisticRegression(C = 1 / alpha)) fits it: a
binary model per class (its rows against the rest), each trained as the binary
program trains (models/logistic.py), all sharing the design, its standardization
and the Hessian bound's inverse (the bound does not depend on the labels). A row
is predicted the class of the largest logit.

The labels enter as class numbers (0 to classes - 1, checked at their owner) and
become one indicator per class under encryption (comparisons against k +- 1/2).
What a receiver learns: the per-class coefficients and intercepts (classes x
features, in the features' units), the features' means and deviations, the loss
per class and epoch, and on held-out rows the accuracy and the confusion counts
(true x predicted class; a count of 1 to k-1 rows withheld, as model.evaluate's).
Every party learns, besides the binary program's bits for each class's fit,
whether every class occurs in the training rows (else the job is refused, naming
the missing classes: a class's model needs rows of it). Unless `keep_shared`,
each class must hold no row or at least 1 / max_leverage rows (the binary
program's rule, for every class).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LogisticParameters
from mpc.errors import FailedPrecondition
from mpc.programs import groups, leverage, secure
from mpc.programs.models import fitted, influence, logistic


def logistic_regression(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(LogisticParameters)
    label, classes = settings.label, settings.classes
    design, features, stats = logistic.prepared(ctx, label)
    one_hot = indicators(design.y, classes)
    _refuse_missing_classes(ctx, one_hot, label)
    bound = leverage.limit(ctx)  # before training: every party sees the loss each epoch, kept shared or not
    influence.refuse_influential_rows(ctx, influence.standardized(design.z, design.shift, design.scale), design.n,
                                      bound, design.correlation, percent=8, own=design.own)
    influence.refuse_small_classes(ctx, one_hot, bound)
    bound_inverse = logistic.inverse_bound(ctx, design)
    models, losses = [], []
    for k in range(classes):
        ctx.progress(f"class {k} against the rest", 10 + 80 * k // classes)
        ones = secure.raised(one_hot[:, k], logistic.DESIGN_BITS)
        w, b, loss = logistic.train(ctx, dataclasses.replace(design, y=ones), bound_inverse)
        models.append((w, b))
        losses.append(loss)
    held: list[Any] = []
    suppressed: list[int] = []
    if design.z_test is not None and design.y_test is not None:
        held, suppressed = _held_out(ctx, design, models, classes)
    return _release(ctx, label, features, models, stats, losses, held, suppressed)


def indicators(y: Any, classes: int) -> Any:
    """rows x classes one-hot (0/1, precision 0) of shared class numbers."""
    import crypten

    rows = int(y.size(0))
    cuts = secure.greater_than(y.unsqueeze(1).expand(rows, classes - 1),
                               torch.arange(classes - 1, dtype=torch.float64) + 0.5)  # y > k + 1/2, k < classes - 1
    ones = cuts[:, :1].mul(0) + 1
    zeros = cuts[:, :1].mul(0)
    return crypten.cat([ones, cuts], dim=1) - crypten.cat([cuts, zeros], dim=1)


def _refuse_missing_classes(ctx: JobContext, one_hot: Any, label: str) -> None:
    present = secure.open_bits_to_all(ctx, secure.greater_than(influence.class_counts(one_hot), 0.5))
    if not present.all():
        missing = ", ".join(str(k) for k in np.flatnonzero(~present))
        raise FailedPrecondition(f"the label column {label!r} has no training rows of class {missing}: each class's "
                                 "model needs rows of it (set classes to the classes the label holds)")


def _held_out(ctx: JobContext, design: logistic.Design, models: list[tuple[Any, Any]],
              classes: int) -> tuple[list[Any], list[int]]:
    """Accuracy and confusion counts (small cells withheld) on the held-out rows, shared."""
    n = design.n_test
    # the first largest logit, by exact comparisons (CrypTen's argmax compares right at the configured precision only)
    guess = secure.first_smallest([logistic.logits(design, design.z_test, w, b).neg() for w, b in models]).t()
    truth = indicators(design.y_test, classes)
    counts = truth.t().matmul(guess)  # true class x predicted class
    accuracy = secure.raised((truth * guess).sum()).div(n)  # a count (precision 0): divided at 24 bits
    shown, suppressed = groups.suppressed_counts(ctx, counts)
    return [accuracy, shown], suppressed


def _release(ctx: JobContext, label: str, features: list[str], models: list[tuple[Any, Any]], stats: dict[str, Any],
             losses: list[list[float]], held: list[Any], suppressed: list[int]) -> dict[str, Result] | None:
    import crypten

    w = crypten.stack([w for w, _ in models])
    b = crypten.cat([b for _, b in models])
    if ctx.settings(LogisticParameters).keep_shared:
        ctx.keep_shares({"weights_std": w, "intercept_std": b})
        opened = secure.open_to_receivers(ctx, held)
        values = None
    else:
        opened = secure.open_to_receivers(ctx, [w, b, *fitted.standardization(stats), *held])
        values = opened[:4] if opened is not None else None
    if opened is None:
        return None
    names = [f"class {k}" for k in range(len(models))]
    longest = max(len(loss) for loss in losses)
    padded = np.array([loss + [np.nan] * (longest - len(loss)) for loss in losses])
    out = {"loss": Result(padded, names, [f"epoch {i + 1}" for i in range(longest)])}
    if held:
        accuracy, confusion = opened[-2], np.round(opened[-1]).astype(np.float64)
        confusion.ravel()[suppressed] = np.nan
        out["accuracy"] = Result(np.atleast_1d(accuracy).astype(np.float64), ["holdout"])
        out["confusion"] = Result(confusion, [f"true {k}" for k in range(len(models))],
                                  [f"predicted {k}" for k in range(len(models))], suppressed)
    if values is None:
        return out
    means, stds = fitted.in_units(stats, values[2:])
    coefficients = values[0] / stds
    intercepts = values[1] - coefficients @ means
    return {"coefficients": Result(coefficients, names, features), "intercept": Result(intercepts, names),
            "feature_means": Result(means, features), "feature_stds": Result(stds, features), **out}
