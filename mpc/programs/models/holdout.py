"""Which rows a model job sets aside for its held-out metrics, and a classifier's
metrics on them. Every party draws the rows from the job's seed, so the rule is
reproducible and needs no messages: horizontal parties hold different rows and
salt the draw with their rank; vertical parties hold the same rows (aligned) and
draw the same mask. (A regression's held-out R^2 is in r2.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gateway.errors import InvalidArgument
from mpc.programs import secure
from mpc.programs.context import JobContext

AUC_BINS = 32
SHARED_ROWS = 1 << 30
"""The salt of aligned (vertical) rows; horizontal parties use their rank."""


def mask(ctx: JobContext, rows: int, default: float) -> np.ndarray:
    """True for this party's held-out rows (the `holdout` fraction, else `default`)."""
    fraction = float(ctx.parameters.get("holdout", default))
    salt = SHARED_ROWS if ctx.partitioning == "vertical" else ctx.rank
    return np.random.default_rng([int(ctx.parameters.get("seed", 0)), salt]).random(rows) < fraction


def check(ctx: JobContext, n_test: int, default: float) -> None:
    """A job that asked for held-out rows has at least two of them (every party
    decides alike: the count is public)."""
    if float(ctx.parameters.get("holdout", default)) > 0 and n_test < 2:
        raise InvalidArgument(f"the holdout fraction leaves {n_test} held-out rows: a held-out metric needs at least 2 "
                              "(raise holdout, or set it to 0)")


def classification(p: Any, y: Any, n: int) -> list[Any]:
    """Accuracy and AUC of probabilities `p` (16 bits, within [0, 1]) against 0/1
    labels `y` (16 bits) on `n` held-out rows, under encryption (shared). The AUC
    from AUC_BINS score bins (ties within a bin count half), as scikit-learn's
    roc_auc_score on scores rounded to the bins."""
    import crypten

    guess = secure.greater_than(p, 0.5)
    right = guess * y + (1 - guess) * (1 - y)
    accuracy = right.sum().div(n)
    thresholds = torch.arange(1, AUC_BINS, dtype=torch.float64) / AUC_BINS
    above = secure.greater_than(p.unsqueeze(1).expand(n, AUC_BINS - 1), thresholds.unsqueeze(0))
    # positives and negatives above each threshold, then per bin (t_k, t_k+1]
    total_pos, total_neg = y.sum(), (1 - y).sum()
    zero = total_pos.mul(0).unsqueeze(0)
    cum_pos = crypten.cat([total_pos.unsqueeze(0), (above * y.unsqueeze(1)).sum(0), zero])
    cum_neg = crypten.cat([total_neg.unsqueeze(0), (above * (1 - y).unsqueeze(1)).sum(0), zero])
    pos_bin, neg_bin = cum_pos[:-1] - cum_pos[1:], cum_neg[:-1] - cum_neg[1:]
    neg_below = total_neg - cum_neg[:-1]
    # AUC = sum_k pos_k (neg_below_k + neg_k / 2) / (P N), each count over n to stay below 1
    numerator = (pos_bin.div(n) * (neg_below + neg_bin.mul(0.5)).div(n)).sum()
    denominator = total_pos.div(n) * total_neg.div(n)  # in (0, 1/4]
    with crypten.cfg.temp_override({"functions.reciprocal_all_pos": True}):
        auc = numerator * denominator.mul(4).reciprocal().mul(4)
    return [accuracy, auc]
