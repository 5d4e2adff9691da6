"""Models with default parameters on scikit-learn's bundled datasets, split across
three parties horizontally and vertically, against scikit-learn on the same rows
(issue: models on the data banks really have). The trial found breast_cancer
refused at the default alpha ("alpha is too large for these rows") and diabetes
refused as ill-conditioned. Real CrypTen, one process per party."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from statskit import Session, Task
from test_models_linear import assert_matches
from test_models_logistic import holdout

from mpc.programs.models.holdout import entity_draws

pytestmark = pytest.mark.multiprocess

PARTIES = 3


@pytest.fixture(scope="module")
def three() -> Iterator[Session]:
    session = Session(PARTIES)
    yield session
    session.close()


def _split(kind: str, partitioning: str, x: np.ndarray, y: np.ndarray, parameters: dict) -> Task:
    """Horizontal: consecutive row blocks; vertical: column blocks, the label at the
    last party, keys in a different order at every party."""
    names = [f"x{j}" for j in range(x.shape[1])] + ["y"]
    if partitioning == "horizontal":
        tables = np.array_split(np.column_stack([x, y]), PARTIES)
        return Task(kind, "horizontal", tables, [names] * PARTIES, parameters)
    columns = np.array_split(np.arange(x.shape[1]), PARTIES)
    ids = np.array([f"k{i}" for i in range(len(y))])
    orders = [np.random.default_rng(r).permutation(len(y)) for r in range(PARTIES)]
    tables = [x[order][:, c] for order, c in zip(orders, columns)]
    tables[-1] = np.column_stack([tables[-1], y[orders[-1]]])
    names_by = [[names[j] for j in c] for c in columns]
    names_by[-1].append("y")
    return Task(kind, "vertical", tables, names_by, parameters, {}, [ids[order] for order in orders])


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_breast_cancer_logistic_regression_with_defaults(three: Session, partitioning: str) -> None:
    """All 30 features, alpha 1 (scikit-learn's C = 1), within 0.01 AUC of
    scikit-learn on the same held-out rows (accuracy: below)."""
    x, y = datasets.load_breast_cancer(return_X_y=True)
    status, result = three.run(_split("model.logistic_regression", partitioning, x, y, {"label": "y", "seed": 2}),
                               timeout=600)
    assert status == "ok", result
    if partitioning == "horizontal":
        blocks = np.array_split(np.arange(len(y)), PARTIES)
        mask = np.concatenate([holdout(2, r, len(b)) for r, b in enumerate(blocks)])
    else:
        mask = entity_draws(np.array([f"k{i}" for i in range(len(y))]), 2, "mpcgate") < 0.2
    center = x[~mask].mean(axis=0)
    reference = LogisticRegression(max_iter=10_000, tol=1e-10).fit(x[~mask] - center, y[~mask])
    auc = roc_auc_score(y[mask], reference.decision_function(x[mask] - center))
    assert abs(result["auc"][0][0] - auc) <= 0.01, (result["auc"][0], auc)
    assert abs(roc_auc_score(y[mask], x[mask] @ result["coefficients"][0] + result["intercept"][0][0]) - auc) <= 0.01
    # ~114 held-out rows: one row is 0.009 of accuracy. The Böhning steps stop 3-10% above scikit-learn's penalized
    # objective here (measured), which moves one or two of them: the 0.01 needs a faster optimizer
    assert abs(result["accuracy"][0][0] - reference.score(x[mask] - center, y[mask])) <= 0.02


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
@pytest.mark.parametrize("alpha", [1.0, 1e300])
def test_diabetes_ridge(three: Session, partitioning: str, alpha: float) -> None:
    """scikit-learn's Ridge(alpha) on the same rows, within the README's bounds; a
    penalty of 1e300 is the small model it asks for (it failed as ill-conditioned)."""
    x, y = datasets.load_diabetes(return_X_y=True)
    status, result = three.run(_split("model.linear_regression", partitioning, x, y, {"label": "y", "alpha": alpha}))
    assert status == "ok", result
    assert_matches(result, Ridge(alpha=alpha).fit(x, y), x, y)
