"""What a fitted logistic regression releases: the coefficients in the features'
units and the intercept, from the standardized weights and the features' means
and deviations (opened together to the receivers, or with own_coefficients each
party's own to it), and the held-out metrics (models/evaluation.py). Used by the
binary program (models/logistic.py), one-vs-rest (models/multiclass.py) and the
dp fit (models/private.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LogisticParameters
from mpc.programs import secure
from mpc.programs.models import evaluation


def release(ctx: JobContext, label: str, features: list[str], w: Any, b: Any, stats: dict[str, Any],
             losses: list[float], metrics: evaluation.Evaluation | None) -> dict[str, Result] | None:
    if ctx.settings(LogisticParameters).own_coefficients:
        return _release_own(ctx, label, features, w, b, stats["own"], losses, metrics)
    shared_values = [w, b, *standardization(stats)]
    if ctx.settings(LogisticParameters).keep_shared:
        ctx.keep_shares({"weights_std": w, "intercept_std": b})
        opened = secure.open_to_receivers(ctx, _shared(metrics))
        values = None
    else:
        opened = secure.open_to_receivers(ctx, [*shared_values, *_shared(metrics)])
        values = opened[: len(shared_values)] if opened is not None else None
    if opened is None:
        return None
    out = _metrics(losses, metrics, opened[len(opened) - len(_shared(metrics)):])
    if values is None:
        return out
    weights, intercept = values[0], float(values[1][0])
    means, stds = in_units(stats, values[2:])
    coefficients = weights / stds
    intercept = 0.0 if _through_origin(ctx) else intercept - float(coefficients @ means)
    return {**fitted_results(features, label, coefficients, intercept, means, stds), **out}


def standardization(stats: dict[str, Any]) -> list[Any]:
    """The shared values the features' means and deviations are opened from."""
    return [stats["mean_z"], stats["var_z"]] if "frame" in stats else [stats["means"], stats["stds"]]


def in_units(stats: dict[str, Any], opened: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The features' means and (population) deviations from `standardization`'s opened values."""
    if "frame" in stats:
        shift, scale = stats["frame"]
        return shift + scale * opened[0], scale * np.sqrt(np.maximum(opened[1], 0))
    return secure.join(opened[0]), secure.join(opened[1])


def _release_own(ctx: JobContext, label: str, features: list[str], w: Any, b: Any, own: tuple[np.ndarray, np.ndarray],
                 losses: list[float], metrics: evaluation.Evaluation | None) -> dict[str, Result] | None:
    """Vertical, own_coefficients: each party receives the weights of its own
    features (standardized; it converts them with its own means and deviations) and
    its part of the intercept (the label holder's includes the standardized
    intercept; the parts sum to the model's); every party the loss and metrics."""
    widths = [len([c for c in e.columns if c != label]) for e in ctx.layout]
    offsets = np.cumsum([0, *widths])
    holder = next(e.rank for e in ctx.layout if label in e.columns)
    parts = [(r, w[int(offsets[r]) : int(offsets[r + 1])]) for r in range(ctx.world_size)] + [(holder, b)]
    opened = secure.open_to_owners(ctx, parts)
    shown = secure.open_to_receivers(ctx, _shared(metrics))
    mean, sigma = own
    coefficients = opened[0] / sigma
    intercept = -float(coefficients @ mean) + (float(opened[1][0]) if ctx.rank == holder else 0.0)
    names = features[int(offsets[ctx.rank]) : int(offsets[ctx.rank + 1])]
    fitted = fitted_results(names, label, coefficients, 0.0 if _through_origin(ctx) else intercept, mean, sigma)
    return {**fitted, **_metrics(losses, metrics, shown if shown is not None else [])}


def fitted_results(features: list[str], label: str, coefficients: np.ndarray, intercept: float, means: np.ndarray,
            stds: np.ndarray) -> dict[str, Result]:
    return {"coefficients": Result(coefficients, features), "intercept": Result(np.array([intercept]), [label]),
            "feature_means": Result(means, features), "feature_stds": Result(stds, features)}


def _shared(metrics: evaluation.Evaluation | None) -> list[Any]:
    return [] if metrics is None else metrics.shared


def _metrics(losses: list[float], metrics: evaluation.Evaluation | None, opened: list[np.ndarray]) -> dict[str, Result]:
    out = {"loss": Result(np.array(losses), [f"epoch {i + 1}" for i in range(len(losses))])}
    if metrics is not None and opened:
        out.update(metrics.results(opened, "holdout"))
    return out


def _through_origin(ctx: JobContext) -> bool:
    return not ctx.settings(LogisticParameters).fit_intercept
