"""Which rows a model job sets aside for its held-out metrics, and a classifier's
metrics on them. The rule is reproducible from the job's seed and needs no
messages. Horizontal parties hold different rows: each draws over its own rows,
salting the draw with its rank. Vertical parties hold the same entities (in an
order the private set intersection draws afresh per job): an entity is held out
when a hash of the seed, the job's key salt and its key falls below the
fraction, so every party holds out the same entities, whatever their order, and
the same seed holds out the same entities in every job. (A regression's
held-out R^2 is in r2.py.)"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext
from mpc.catalogue.schemas import SupervisedParameters
from mpc.errors import InvalidArgument
from mpc.programs import secure

AUC_BINS = 32


def mask(ctx: JobContext, rows: int, default: float) -> np.ndarray:
    """True for this party's held-out rows (the `holdout` fraction, else `default`)."""
    settings = ctx.settings(SupervisedParameters)
    fraction = default if settings.holdout is None else settings.holdout
    if ctx.partitioning == "vertical":
        assert ctx.keys is not None and len(ctx.keys) == rows
        return entity_draws(ctx.keys, settings.seed, settings.key_salt) < fraction
    return np.random.default_rng([settings.seed, ctx.rank]).random(rows) < fraction


def entity_draws(keys: np.ndarray, seed: int, salt: str) -> np.ndarray:
    """A uniform draw in [0, 1) per entity, from SHA-256(seed, salt, key) (keys as
    the intersection compares them)."""
    from mpc.catalogue.keys import canonical

    prefix = f"mpcgate-holdout-v1\x00{seed}\x00{salt}\x00".encode()
    return np.array([int.from_bytes(hashlib.sha256(prefix + canonical(k)).digest()[:8], "big") / 2.0**64 for k in keys])


def check(ctx: JobContext, n_test: int, default: float) -> None:
    """A job that asked for held-out rows has at least two of them (every party
    decides alike: the count is public)."""
    asked = ctx.settings(SupervisedParameters).holdout
    if (default if asked is None else asked) > 0 and n_test < 2:
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
