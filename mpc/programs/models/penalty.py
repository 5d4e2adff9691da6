"""Logistic regression's L2 penalty per standardized feature, ridge_j = 4 alpha /
((n - 1) sigma_j^2) in units of the feature's curvature, and the scaling that
puts it into the Böhning bound's inverse (mpc/programs/solve.py takes the penalty as
S ridge S, formed here without large encodings). Capped at RIDGE_CAP: any alpha,
1e300 included, is a valid request for a small model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext
from mpc.programs import secure
from mpc.programs.models import blocks

RIDGE_CAP = 2.0**12
"""The largest penalty taken, in units of a standardized feature's curvature
((n - 1) / 4): a larger alpha is a valid request for a smaller model. Under this
penalty a coefficient is within ~1e-3 of zero in standard deviations of the
log-odds either way (its gradient is at most ~(n - 1) / 4), and every encoding of
the penalty stays far from the ring."""


def pooled(inverse_std: Any, factor: np.ndarray) -> Any:
    """min(factor inverse_std^2, RIDGE_CAP) (24 bits): the penalty per standardized
    feature, sigma_j^2 = c_j^2 var(z_j) = c_j^2 / (256 inverse_std^2), with the public
    factor 4 alpha 256 / ((n - 1) c_j^2). inverse_std^2 lies in [1/64, 13]
    (var(z) in [CORRELATION_FLOOR, 1/4]); it is clipped at RIDGE_CAP / factor
    first (one comparison per feature), so no product exceeds the cap's encoding
    whatever alpha (1e300 included)."""
    square = secure.lowered(secure.mul_mixed(secure.raised(inverse_std, secure.PRECISION_BITS), inverse_std))
    factor = np.minimum(factor, 64 * RIDGE_CAP)
    limit = torch.from_numpy(np.minimum(RIDGE_CAP / np.maximum(factor, 1e-300), 16.0))
    below = secure.less_than(square, limit)
    clipped = (square - limit) * below + limit
    return secure.raised(clipped.mul(torch.from_numpy(factor)), secure.PRECISION_BITS)


def scaling(ridge: Any) -> dict[str, Any]:
    """The Hessian bound's scale S ~ (1 + ridge)^-1/2 and its scaled penalty S ridge S
    (solve.inverse), under encryption: (1 + ridge) / 32 lies in [1/32, 128], where
    the inverse square root is accurate. None: no penalty."""
    if ridge is None:
        return {"ridge": None, "precondition": None, "scaled_ridge": None}
    precondition = secure.inv_sqrt(secure.lowered(ridge.add(1).div(32))).div(math.sqrt(32))
    return {"ridge": ridge, "precondition": precondition,
            "scaled_ridge": secure.mul_mixed(secure.mul_mixed(ridge, precondition), precondition)}


def own(ctx: JobContext, widths: list[int], ridge: np.ndarray) -> dict[str, Any]:
    """Vertical: each owner's penalties, S and S ridge S for its own features, exact
    (S as shared, on the 16-bit grid), shared by it."""
    ridge = np.minimum(ridge, RIDGE_CAP)
    scale = secure.on_grid(1 / np.sqrt(1 + ridge), secure.PRODUCT_BITS)
    return {"ridge": blocks.by_column(ctx, widths, ridge),
            "precondition": blocks.by_column(ctx, widths, scale, precision=secure.PRODUCT_BITS),
            "scaled_ridge": blocks.by_column(ctx, widths, ridge * scale**2, precision=secure.AGGREGATE_BITS)}
