"""model.evaluate's risk metrics (mpc/programs/models/evaluation.py) against a
numpy reference on the same rows: AUC and Brier as scikit-learn computes them,
KS over every threshold, the lift table by decile of rank. Scores shaped as
credit scores (a 3% base rate), tied scores, logits beyond the ranking grid; a
decile of one event merged, never released; one class: AUC and KS undefined.
Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, roc_auc_score
from statskit import Session, Task
from test_models_inference import asset

pytestmark = pytest.mark.multiprocess


def linear_asset(weights: np.ndarray, bias: float) -> dict:
    net = torch.nn.Sequential(torch.nn.Linear(len(weights), 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(weights[None, :]))
        net[0].bias.fill_(bias)
    return asset(net, [len(weights)], "sigmoid")


def evaluate(session: Session, x: np.ndarray, y: np.ndarray, model: dict, floor: int = 1) -> dict:
    """Two parties: rank 0 holds the rows and receives, rank 1 the model. Three:
    ranks 0 and 1 split the columns (rank 1 holds the label), rank 2 the model."""
    d = x.shape[1]
    names = [f"f{j}" for j in range(d)]
    if session.world_size == 2:
        task = Task("model.evaluate", "horizontal", [np.column_stack([x, y]), np.zeros((0, 0))],
                    [[*names, "y"], []], models=[None, model])
    else:
        keys = [np.array([f"k{i}" for i in range(len(y))])] * 2 + [None]
        half = d // 2
        task = Task("model.evaluate", "vertical", [x[:, :half], np.column_stack([x[:, half:], y]), np.zeros((0, 0))],
                    [names[:half], [*names[half:], "y"], []], keys=keys, models=[None, None, model])
    task.parameters, task.rules = {"label": "y"}, {"min_group_size": floor}
    status, metrics = session.run(task, timeout=600)
    assert status == "ok", metrics
    return metrics


def exact_ks(y: np.ndarray, score: np.ndarray) -> float:
    """max |TPR - FPR| over every threshold (tied scores cut together)."""
    order = np.argsort(-score, kind="stable")
    ys, ss = y[order], score[order]
    gap = np.cumsum(ys) / ys.sum() - np.cumsum(1 - ys) / (1 - ys).sum()
    return float(np.abs(gap[np.r_[ss[1:] != ss[:-1], True]]).max())


def decile_table(y: np.ndarray, logit: np.ndarray) -> np.ndarray:
    """rows, events, mean probability per decile of rank (highest first); tied
    scores at an edge go to the higher decile."""
    n = len(y)
    ranked = np.sort(logit)[::-1]
    edges = [ranked[-(-j * n // 10) - 1] for j in range(1, 10)]
    decile = np.array([next((j for j, edge in enumerate(edges) if v >= edge), 9) for v in logit])
    p = 1 / (1 + np.exp(-logit))
    return np.array([[np.sum(decile == j), y[decile == j].sum(), p[decile == j].mean() if np.any(decile == j) else np.nan]
                     for j in range(10)])


def check_against_numpy(metrics: dict, y: np.ndarray, logit: np.ndarray, tolerance: float) -> None:
    p = 1 / (1 + np.exp(-logit))
    assert metrics["auc"][0][0] == pytest.approx(roc_auc_score(y, logit), abs=tolerance)
    assert metrics["gini"][0][0] == pytest.approx(2 * metrics["auc"][0][0] - 1, abs=1e-9)
    assert metrics["ks"][0][0] == pytest.approx(exact_ks(y, logit), abs=tolerance)
    assert metrics["brier"][0][0] == pytest.approx(brier_score_loss(y, p), abs=1e-3)
    table, names, columns = metrics["lift"][0], metrics["lift"][1], metrics["lift"][2]
    assert names == [f"decile {j}" for j in range(1, 11)]
    reference = decile_table(y, logit)
    rows, events = table[:, columns.index("rows")], table[:, columns.index("events")]
    assert np.abs(rows - reference[:, 0]).max() <= 4 and rows.sum() == len(y)  # scores within 2^-10 of the edges
    assert np.abs(events - reference[:, 1]).max() <= 4 and events.sum() == y.sum()
    assert np.nanmax(np.abs(table[:, columns.index("mean score")] - reference[:, 2])) < 5e-3
    lift = (reference[:, 1] / reference[:, 0]) / y.mean()
    assert np.abs(table[:, columns.index("lift")] - lift).max() < 0.05 * lift.max()
    assert table[-1, columns.index("gain")] == pytest.approx(1.0)


def test_credit_shaped_scores_match_numpy(session: Session) -> None:
    """2000 customers, a 3% default rate: AUC and KS within 0.005 of the exact values."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 4))
    w = np.array([0.9, -0.6, 0.4, 0.2])
    logit = x @ w - 4.0
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(float)
    metrics = evaluate(session, x, y, linear_asset(w, -4.0))
    check_against_numpy(metrics, y, logit, 0.005)
    assert metrics["confusion"][0].sum() == 2000


def test_tied_scores_and_logits_beyond_the_grid(session: Session) -> None:
    """A model of one binary feature gives two scores (every decile edge a tie);
    a steep one sends logits past +-128, where the ranking grid ends."""
    if session.world_size != 2:
        pytest.skip("two parties: the ranking does not depend on the layout")
    rng = np.random.default_rng(12)
    flag = (rng.random(400) < 0.3).astype(float)
    y = (rng.random(400) < np.where(flag == 1, 0.6, 0.1)).astype(float)
    x = np.column_stack([flag, np.zeros(400)])
    metrics = evaluate(session, x, y, linear_asset(np.array([2.0, 0.0]), -1.0))
    assert metrics["auc"][0][0] == pytest.approx(roc_auc_score(y, flag), abs=2e-3)  # ties count half: exact
    assert metrics["ks"][0][0] == pytest.approx(exact_ks(y, flag), abs=2e-3)
    table, columns = metrics["lift"][0], metrics["lift"][2]
    assert sorted(set(table[:, columns.index("rows")])) == sorted({0.0, flag.sum(), 400 - flag.sum()})
    steep = rng.normal(size=(300, 1)) * 2
    y = (steep[:, 0] + rng.normal(size=300) > 0).astype(float)
    metrics = evaluate(session, steep, y, linear_asset(np.array([30.0]), 0.0))
    assert metrics["auc"][0][0] == pytest.approx(roc_auc_score(y, steep[:, 0]), abs=0.01)
    assert metrics["ks"][0][0] == pytest.approx(exact_ks(y, steep[:, 0]), abs=0.02)


def test_a_decile_with_one_event_is_merged_not_released(session: Session) -> None:
    """The attack: a model that ranks a few customers on top, so that the top
    decile's event count (0 or 1) would tell whether the one customer the
    attacker singled out defaulted. With min_group_size 5 every released group
    holds 0 or at least 5 events and 0 or at least 5 non-events."""
    if session.world_size != 2:
        pytest.skip("two parties")
    rng = np.random.default_rng(13)
    x = rng.normal(size=(100, 1))
    x[0, 0] = 6.0  # the singled-out customer: the top decile with nine others
    y = np.zeros(100)
    y[0] = 1.0
    y[np.argsort(x[:, 0])[:20]] = 1.0  # the low scores default (a poor model), the target too
    model = linear_asset(np.array([1.0]), 0.0)
    unprotected = evaluate(session, x, y, model, floor=1)["lift"]
    assert unprotected[0][0, 1] == 1  # without the rule: one event in the top decile, the target's
    table, names, columns = evaluate(session, x, y, model, floor=5)["lift"][:3]
    events = table[:, columns.index("events")]
    non_events = table[:, columns.index("rows")] - events
    assert all(e == 0 or e >= 5 for e in events) and all(e == 0 or e >= 5 for e in non_events)
    assert names[0] != "decile 1" and events.sum() == 21


def test_one_class_leaves_auc_and_ks_undefined(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties")
    x = np.random.default_rng(14).normal(size=(50, 1))
    metrics = evaluate(session, x, np.zeros(50), linear_asset(np.array([1.0]), 0.0))
    assert np.isnan(metrics["auc"][0][0]) and np.isnan(metrics["ks"][0][0]) and np.isnan(metrics["gini"][0][0])
    assert metrics["brier"][0][0] == pytest.approx(np.mean(1 / (1 + np.exp(-x[:, 0])) ** 2), abs=1e-3)
    assert metrics["lift"][0][:, 1].sum() == 0

