"""Which rows a model job sets aside for its held-out metrics. The rule is
reproducible from the job's seed and needs no messages. Horizontal parties hold
different rows: each draws over its own rows, salting the draw with its rank. Vertical parties hold the same entities (in an
order the private set intersection draws afresh per job): an entity is held out
when a hash of the seed, the job's key salt and its key falls below the
fraction, so every party holds out the same entities, whatever their order, and
the same seed holds out the same entities in every job. (A classifier's
held-out metrics are in evaluation.py, a regression's R^2 in r2.py.)"""

from __future__ import annotations

import hashlib

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.catalogue.schemas import SupervisedParameters
from mpc.errors import InvalidArgument


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

