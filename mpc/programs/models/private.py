"""model.linear_regression and model.logistic_regression with parameter dp:
models trained under differential privacy (mpc.privacy.plan), from
values clipped to the bounds each party's policy declares (stats/private.py),
horizontal or vertical. The releases and their noise: mpc.privacy.plan.

Linear regression: sufficient-statistics perturbation. The noisy sums of Z and of
Z_i Z_j over the features and the label (stats/private.py) are opened to the
result receivers, which solve the ridge normal equations from them (the noisy
second-moment matrix projected onto the positive semidefinite cone first). The
coefficients, intercept and R^2 are post-processing of the noisy sums.

Logistic regression: noisy Newton steps with Böhning's Hessian bound. The noisy
moments of the features are opened to every party (each computes the same
bound, H = [Z 1]^T [Z 1] / 4 + penalty, and its inverse, in plain), then every
epoch computes under MPC the residual r = clamp(sigmoid(eta), 0, 1) - y, exactly
in [-1, 1], the gradient sums Z^T r and sum r (exact integer products: no
truncation), adds noise no party knows to them, and steps w -= H^-1 gradient. A
fixed number of epochs (`epochs`, default noise_plan.DP_EPOCHS); the loss is not
released. Only the final model is opened, to the receivers: post-processing of
the noisy moments and gradients.

What is public: the parties' row counts, the noisy feature moments (logistic, to
every party), and the results. holdout, keep_shared and own_coefficients are not
available with dp (each would release more than the noisy statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.kinds import check_private_model
from mpc.catalogue.schemas import LinearParameters, LogisticParameters
from mpc.privacy import plan as noise_plan
from mpc.privacy.plan import RESIDUAL_BITS, STEP
from mpc.programs import secure
from mpc.programs.models.fitted import fitted_results
from mpc.programs.models.linear import model_results
from mpc.programs.models.logistic import check_binary_labels
from mpc.programs.models.sigmoid import activations, clamp01
from mpc.programs.noise import release
from mpc.programs.stats.private import moments, on_grid
from mpc.programs.stats.request import job_shape


def linear_regression(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(LinearParameters)
    label = settings.label
    n, columns, _ = _shape(ctx)
    z, frame = on_grid(ctx, ctx.layout[ctx.rank].columns)
    opened = moments(ctx, z, noise_plan.plan(ctx.kind, ctx.parameters, columns), ctx.receivers)
    if opened is None:
        return None
    k = columns.index(label)
    coefficients, r2, means, stds = ridge(opened[0], opened[1], n, frame, k, settings.alpha,
                                          origin=not settings.fit_intercept)
    order = [j for j in range(len(columns)) if j != k] + [k]
    return model_results([columns[j] for j in order[:-1]], label, coefficients, means[order], stds[order],
                  {"r2": Result(np.array([r2]), ["r2"])}, origin=not settings.fit_intercept)


def ridge(sums: np.ndarray, products: np.ndarray, n: int, frame: list[tuple[float, float]], k: int, alpha: float,
          origin: bool) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The ridge fit of column k on the others from the (noisy) sums of Z and Z Z^T:
    coefficients, R^2, every column's mean and deviation (post-processing)."""
    lower, upper = np.array(frame).T
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    s1, s2 = sums / STEP, products / STEP**2
    means = mid + half * s1 / n
    covariance = (s2 - np.outer(s1, s1) / n) / (n - 1) * np.outer(half, half)
    x = [j for j in range(len(sums)) if j != k]
    # sums of products: centered (with an intercept), or of the data itself (through the origin)
    gram = (n - 1) * covariance + (n * np.outer(means, means) if origin else 0.0)
    features_gram = _psd(gram[np.ix_(x, x)])
    coefficients = np.linalg.lstsq(features_gram + alpha * np.eye(len(x)), gram[x, k], rcond=None)[0]
    residual = gram[k, k] - 2 * coefficients @ gram[x, k] + coefficients @ features_gram @ coefficients
    # scikit-learn's (centered) R^2, at most 1; its noise is the noisy label sums' over (n - 1) var(label)
    r2 = min(1 - residual / max((n - 1) * covariance[k, k], np.finfo(float).tiny), 1.0)
    return coefficients, r2, means, np.sqrt(np.maximum(np.diag(covariance), 0.0))


def logistic_regression(ctx: JobContext) -> dict[str, Result] | None:
    import crypten

    settings = ctx.settings(LogisticParameters)
    label = settings.label
    n, columns, rows = _shape(ctx)
    own = ctx.layout[ctx.rank].columns
    y = ctx.table[:, own.index(label)] if label in own else None
    check_binary_labels(ctx, y, label)
    z, frame = on_grid(ctx, [c for c in own if c != label])
    features = [c for c in columns if c != label]
    parts = noise_plan.plan(ctx.kind, ctx.parameters, columns)
    sums, products = moments(ctx, z, parts, list(range(ctx.world_size)))  # type: ignore[misc]
    lower, upper = np.array(frame).T
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    ridge = settings.alpha / half**2  # scikit-learn's penalty alpha / 2 |beta|^2, in z units
    step = _newton_inverse(sums / STEP, products / STEP**2, n, ridge, parts["cross"])
    design, labels = _shared_rows(ctx, z, y, rows)
    d = len(features)
    w = crypten.cryptensor(torch.zeros(d + 1, dtype=torch.float64), precision=RESIDUAL_BITS)  # [w; b], z units
    shrink = step.T @ torch.diag(torch.from_numpy(np.append(ridge, 0.0))) / n  # (H^-1 penalty)^T
    epochs = noise_plan.epochs(ctx.parameters)
    for epoch in range(1, epochs + 1):
        eta = design.matmul(w[:d]).div(STEP) + w[d:]  # Z w is exact at 16 bits in units of STEP
        residual = clamp01(activations(eta)[0]) - labels  # exactly in [-1, 1] (the clamp's bits are scale 1)
        gradient = release.noised(design.t().matmul(residual), parts["gradient"], RESIDUAL_BITS, RESIDUAL_BITS)
        intercept = release.noised(residual.sum().unsqueeze(0), parts["intercept"], RESIDUAL_BITS, RESIDUAL_BITS)
        noisy = crypten.cat([gradient, intercept]).div(n)  # the sums are exact integers before the noise
        # w -= H^-1 (gradient + penalty w), as (gradient / n)(n H^-1) (both of order one) and w (H^-1 penalty)
        w = w - crypten.cat([noisy[:d].div(STEP), noisy[d:]]).matmul(step.T) - w.matmul(shrink)
        ctx.progress(f"epoch {epoch}/{epochs}", 60 + 30 * epoch / epochs)
    opened = secure.open_to_receivers(ctx, [w])
    if opened is None:
        return None
    coefficients = opened[0][:d] / half
    intercept = float(opened[0][d]) - float(coefficients @ mid)
    var_z = np.maximum((products.diagonal() / STEP**2 - (sums / STEP) ** 2 / n) / (n - 1), 0.0)
    return fitted_results(features, label, coefficients, intercept, mid + half * sums / STEP / n, half * np.sqrt(var_z))


def _shape(ctx: JobContext) -> tuple[int, list[str], list[int]]:
    """The rows (checked alike at every party), the job's columns in order, and
    every party's row count."""
    secure.configure()
    check_private_model(ctx.parameters)  # again, where the data is used
    rows, n, columns = job_shape(ctx)
    return n, columns, rows


def _shared_rows(ctx: JobContext, z: np.ndarray, y: np.ndarray | None, sizes: list[int]) -> tuple[Any, Any]:
    """The features as shared integers Z (n x d, precision 0) and the labels at 16 bits."""
    if ctx.partitioning == "horizontal":
        design = secure.stacked_rows(ctx, z.astype(np.float64), sizes, precision=0)
        labels = secure.stacked_rows(ctx, y[:, None], sizes, precision=RESIDUAL_BITS).flatten()  # type: ignore[index]
        return design, labels
    widths = [int(w) for w in secure.public(ctx, z.shape[1])]
    design = secure.stacked_columns(ctx, z.astype(np.float64), widths, precision=0)
    holder = next(e.rank for e in ctx.layout if ctx.settings(LinearParameters).label in e.columns)
    return design, secure.share_from(ctx, holder, y, (sizes[0],), precision=RESIDUAL_BITS)


def _newton_inverse(s1: np.ndarray, s2: np.ndarray, n: int, ridge: np.ndarray, cross: noise_plan.Part) -> torch.Tensor:
    """n H^-1 for Böhning's bound H = [Z 1]^T [Z 1] / 4 + ridge (z units), from the
    noisy sums; its eigenvalues kept above the noise's spectral reach, so the
    steps stay bounded whatever the noise."""
    d = len(s1)
    h = np.zeros((d + 1, d + 1))
    h[:d, :d], h[:d, d], h[d, :d], h[d, d] = s2, s1, s1, n
    h = h / 4 + np.diag(np.append(ridge, 0.0))
    reach = 3 * cross.std / STEP**2 * np.sqrt(d + 1) / 4 + 1e-9 * n  # ~3 x the noise matrix's spectral norm
    return torch.from_numpy(n * np.linalg.inv(_psd(h, floor=reach)))


def _psd(matrix: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The symmetric matrix with its eigenvalues raised to at least `floor`."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.maximum(values, floor)) @ vectors.T
