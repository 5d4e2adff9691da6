"""model.logistic_regression against scikit-learn's LogisticRegression (same L2
penalty, C = 1 / alpha) trained on the same rows: accuracy and AUC on the same
held-out rows within 0.01, horizontal and vertical, 2 and 3 parties; labels must
be binary; keep_shared reveals metrics only. Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from statskit import Session, Task

from mpc.programs.models.holdout import entity_draws

pytestmark = pytest.mark.multiprocess


def credit(rng: np.random.Generator, rows: int, d: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    true = rng.normal(size=d)
    x = rng.normal(size=(rows, d)) * rng.uniform(0.3, 4, d) + offset
    logits = ((x - offset) / x.std(axis=0)) @ true + 0.4
    return x, (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)


def holdout(seed: int, salt: int, rows: int, fraction: float = 0.2) -> np.ndarray:
    """The rows a horizontal party holds out (the program's rule, repeated here;
    vertical jobs hold out entities: holdout.entity_draws)."""
    return np.random.default_rng([seed, salt]).random(rows) < fraction


def assert_close_to_scikit_learn(result: dict, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                                 y_test: np.ndarray, alpha: float, intercept: bool = True) -> None:
    # the same optimum as on the raw features (the intercept is not penalized, so a
    # shift of the features changes only it), but lbfgs converges on centered ones
    center = x_train.mean(axis=0) if intercept else np.zeros(x_train.shape[1])
    reference = LogisticRegression(C=1 / alpha, max_iter=5000, tol=1e-8, fit_intercept=intercept).fit(
        x_train - center, y_train)
    accuracy = reference.score(x_test - center, y_test)
    auc = roc_auc_score(y_test, reference.decision_function(x_test - center))
    assert abs(result["accuracy"][0][0] - accuracy) <= 0.01, (result["accuracy"][0], accuracy)
    assert abs(result["auc"][0][0] - auc) <= 0.01, (result["auc"][0], auc)
    if "coefficients" in result:  # the revealed model itself predicts as well
        scores = x_test @ result["coefficients"][0] + result["intercept"][0][0]
        assert abs(roc_auc_score(y_test, scores) - auc) <= 0.01
        losses = result["loss"][0]
        assert np.all(np.diff(losses) <= 1e-3), losses  # monotone (up to fixed point)


@pytest.mark.parametrize("d, alpha, offset", [(3, 1.0, 0.0), (8, 0.1, 1e3)])
def test_horizontal_matches_scikit_learn(session: Session, d: int, alpha: float, offset: float) -> None:
    if session.world_size == 3:
        pytest.skip("three parties pool their rows as two do: three banks' horizontal rows train in "
                    "test_models_bundled (breast_cancer)")
    rng = np.random.default_rng(d)
    parts = [credit(rng, 700 + 100 * r, d, offset) for r in range(session.world_size)]
    names = [f"x{j}" for j in range(d)] + ["y"]
    tables = [np.column_stack(p) for p in parts]
    status, result = session.run(Task("model.logistic_regression", "horizontal", tables, [names] * session.world_size,
                                      {"label": "y", "alpha": alpha, "seed": 3}), timeout=600)
    assert status == "ok", result
    masks = [holdout(3, r, len(p[1])) for r, p in enumerate(parts)]
    x_train = np.vstack([p[0][~m] for p, m in zip(parts, masks)])
    y_train = np.concatenate([p[1][~m] for p, m in zip(parts, masks)])
    x_test = np.vstack([p[0][m] for p, m in zip(parts, masks)])
    y_test = np.concatenate([p[1][m] for p, m in zip(parts, masks)])
    assert_close_to_scikit_learn(result, x_train, y_train, x_test, y_test, alpha)


def test_vertical_matches_scikit_learn_with_labels_at_one_party(session: Session) -> None:
    rng = np.random.default_rng(11)
    rows, d = 2000, 2 * session.world_size
    x, y = credit(rng, rows, d)
    split = np.array_split(np.arange(d), session.world_size)
    tables = [x[:, c] for c in split]
    tables[0] = np.column_stack([tables[0], y])  # the label at the first party
    names = [[f"x{j}" for j in c] for c in split]
    names[0].append("y")
    keys = [np.array([f"k{i}" for i in range(rows)])] * session.world_size
    status, result = session.run(Task("model.logistic_regression", "vertical", tables, names,
                                      {"label": "y", "seed": 5}, {}, keys), timeout=600)
    assert status == "ok", result
    mask = entity_draws(keys[0], 5, "mpcgate") < 0.2
    assert_close_to_scikit_learn(result, x[~mask], y[~mask], x[mask], y[mask], 1.0)


def test_the_label_holder_may_hold_the_label_alone(session: Session) -> None:
    """A bank with the outcome and nothing else, the features at its partners: the
    cross-party products skip the party with no columns (it was refused)."""
    rng = np.random.default_rng(17)
    rows, d = 1500, 3
    x, y = credit(rng, rows, d)
    split = np.array_split(np.arange(d), session.world_size - 1)
    tables, names = [y.reshape(-1, 1), *(x[:, c] for c in split)], [["y"], *([f"x{j}" for j in c] for c in split)]
    keys = [np.array([f"k{i}" for i in range(rows)])] * session.world_size
    status, result = session.run(Task("model.logistic_regression", "vertical", tables, names, {"label": "y", "seed": 5},
                                      {}, keys), timeout=600)
    assert status == "ok", result
    assert result["coefficients"][1] == [f"x{j}" for j in range(d)]
    mask = entity_draws(keys[0], 5, "mpcgate") < 0.2
    assert_close_to_scikit_learn(result, x[~mask], y[~mask], x[mask], y[mask], 1.0)


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_without_an_intercept_matches_scikit_learn(session: Session, partitioning: str) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough: each party mirrors its own rows, at any count")
    rng = np.random.default_rng(12)
    rows, d = 1500, session.world_size
    x, y = credit(rng, rows, d, offset=0.5)
    keys = None
    if partitioning == "horizontal":
        parts = np.array_split(np.arange(rows), session.world_size)
        tables, names = [np.column_stack([x, y])[p] for p in parts], [[f"x{j}" for j in range(d)] + ["y"]] * len(parts)
        masks = [holdout(7, r, len(p)) for r, p in enumerate(parts)]
        mask = np.concatenate(masks)
    else:
        tables, names = [x[:, [j]] for j in range(d)], [[f"x{j}"] for j in range(d)]
        tables[0], names[0] = np.column_stack([tables[0], y]), ["x0", "y"]
        keys = [np.array([f"k{i}" for i in range(rows)])] * d
        mask = entity_draws(keys[0], 7, "mpcgate") < 0.2
    status, result = session.run(Task("model.logistic_regression", partitioning, tables, names,
                                      {"label": "y", "seed": 7, "alpha": 0.5, "fit_intercept": False}, {}, keys),
                                 timeout=600)
    assert status == "ok", result
    assert result["intercept"][0][0] == 0.0
    assert_close_to_scikit_learn(result, x[~mask], y[~mask], x[mask], y[mask], 0.5, intercept=False)


def test_own_coefficients_gives_each_party_only_its_part(session: Session) -> None:
    rng = np.random.default_rng(13)
    rows, d = 1500, 2 * session.world_size
    x, y = credit(rng, rows, d, offset=2.0)
    split = np.array_split(np.arange(d), session.world_size)
    tables, names = [x[:, c] for c in split], [[f"x{j}" for j in c] for c in split]
    tables[-1], names[-1] = np.column_stack([tables[-1], y]), [*names[-1], "y"]
    keys = [np.array([f"k{i}" for i in range(rows)])] * session.world_size
    # one epoch: both runs take the same step (later lengths and stops hang on fixed-point noise, and models
    # within 4e-4 of the optimal loss still differ by ~2% in their coefficients)
    status, full = session.run(Task("model.logistic_regression", "vertical", tables, names,
                                    {"label": "y", "seed": 9, "epochs": 1}, {}, keys), timeout=600)
    assert status == "ok", full
    status, _ = session.run(Task("model.logistic_regression", "vertical", tables, names,
                                 {"label": "y", "seed": 9, "epochs": 1, "own_coefficients": True}, {}, keys,
                                 list(range(session.world_size))), timeout=600)
    assert status == "ok"
    mask = entity_draws(keys[0], 9, "mpcgate") < 0.2
    scores = np.full(rows, 0.0)
    for rank, part in session.results.items():
        assert part["coefficients"][1] == [f"x{j}" for j in split[rank]], "its own features' coefficients only"
        columns = [int(c[1:]) for c in part["coefficients"][1]]
        scores += x[:, columns] @ part["coefficients"][0] + part["intercept"][0][0]  # the parts add up
        assert abs(part["auc"][0][0] - full["auc"][0][0]) <= 0.01
    reference = x @ full["coefficients"][0] + full["intercept"][0][0]
    assert abs(roc_auc_score(y[mask], scores[mask]) - roc_auc_score(y[mask], reference[mask])) <= 0.01
    assert np.abs(scores - reference).max() <= 0.05 * np.abs(reference).max()


def test_non_binary_labels_are_refused(session: Session) -> None:
    rng = np.random.default_rng(2)
    x, y = credit(rng, 200, 2)
    y[17] = 2.0
    tables = [np.column_stack([x, y])] * session.world_size
    status, answer = session.run(Task("model.logistic_regression", "horizontal", tables, [["a", "b", "y"]] * session.world_size,
                                      {"label": "y"}))
    assert status == "refused" and "only 0 and 1" in answer


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_a_label_of_one_class_is_refused_not_fitted(session: Session, partitioning: str) -> None:
    """All labels 0 at every bank (the models issue's trial released AUC 0.80 for it):
    every party learns that one bit and nothing is released, as scikit-learn refuses."""
    rng = np.random.default_rng(3)
    x, _ = credit(rng, 200, 2)
    y = np.zeros(len(x))
    if partitioning == "horizontal":
        tables, names, keys = [np.column_stack([x, y])] * session.world_size, [["a", "b", "y"]] * session.world_size, None
    else:
        tables = [np.column_stack([x[:, :1], y]), *([x[:, 1:]] * (session.world_size - 1))]
        names = [["a", "y"], *([["b"]] * (session.world_size - 1))]
        keys = [np.array([f"k{i}" for i in range(len(x))])] * session.world_size
    status, answer = session.run(Task("model.logistic_regression", partitioning, tables, names, {"label": "y"}, {}, keys))
    assert status == "refused" and "holds one class only" in answer


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_a_penalty_that_swamps_the_data_gives_the_small_model(session: Session, partitioning: str) -> None:
    """A large alpha is a valid request (the trial's 1e9 was refused as "too large",
    1e300 too): the features' coefficients go to zero and the intercept to the base
    rate's log-odds, as scikit-learn's do, whatever a feature's scale (one here on
    a 1e-2 scale: its penalty per standardized unit is ~1e4 times the other's).
    breast_cancer at the default alpha: test_models_bundled.py."""
    if session.world_size != 2:
        pytest.skip("one party count is enough: the penalty is public and applied alike")
    rng = np.random.default_rng(5)
    x, y = credit(rng, 400, 2)
    x[:, 0] *= 1e-2
    if partitioning == "horizontal":
        tables, names, keys = [np.column_stack([x, y])] * session.world_size, [["a", "b", "y"]] * session.world_size, None
    else:
        ids = np.array([f"k{i}" for i in range(len(y))])
        tables, names = [x[:, :1], np.column_stack([x[:, 1:], y])], [["a"], ["b", "y"]]
        tables += [rng.normal(size=(len(y), 1)) for _ in range(session.world_size - 2)]
        names += [[f"c{r}"] for r in range(2, session.world_size)]
        keys = [ids] * session.world_size
    for alpha in (1e4, 1e300):
        status, answer = session.run(Task("model.logistic_regression", partitioning, tables, names,
                                          {"label": "y", "alpha": alpha, "holdout": 0}, {}, keys))
        assert status == "ok", (alpha, answer)
        train = np.vstack(tables)[:, :-1] if partitioning == "horizontal" else np.column_stack([t[:, :1] for t in tables])
        labels = np.concatenate([t[:, -1] for t in tables]) if partitioning == "horizontal" else y
        center = train.mean(axis=0)
        reference = LogisticRegression(C=1 / alpha, max_iter=5000, tol=1e-10).fit(train - center, labels)
        spread = train.std(axis=0)
        assert np.all(np.abs(answer["coefficients"][0] - reference.coef_[0]) * spread <= 2e-2), \
            (alpha, answer["coefficients"][0] * spread, reference.coef_[0] * spread)
        intercept = reference.intercept_[0] - reference.coef_[0] @ center
        if alpha > 1e100:  # lbfgs stops at once where C = 1e-300: the limit is the base rate's log-odds
            intercept = np.log(labels.mean() / (1 - labels.mean()))
        assert abs(answer["intercept"][0][0] - intercept) <= 2e-2, (alpha, answer["intercept"][0][0], intercept)


def penalized_loss(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """scikit-learn's objective over the rows: mean log-loss + alpha |w|^2 / 2n."""
    z = x @ w + b
    return float(np.mean(np.logaddexp(0, z) - y * z) + alpha / (2 * len(x)) * w @ w)


@pytest.mark.parametrize("seed", [0, 4])
def test_a_rare_class_reaches_the_penalized_optimum(session: Session, seed: int) -> None:
    """98% of the rows in one class: the Hessian bound is ~15x loose there, and 20
    unit steps stayed 4-8% above scikit-learn's penalized loss. With step lengths
    from the curvature, and early stopping relative to the loss, the fit ends
    within 1.5% (measured over 24 runs: 3e-4 to 6e-3; with stopping at 1e-4
    absolute, up to 1.5e-2). The reported log-losses rise by at most ~3e-4 where
    the penalty falls more (the penalized objective never rises)."""
    if session.world_size != 2:
        pytest.skip("one party count is enough: the steps are the same at any count")
    rng = np.random.default_rng(seed)
    rows, d = 2000, 4
    x = rng.normal(size=(rows, d)) * rng.uniform(0.3, 4, d) + rng.uniform(-10, 10, d)
    logits = ((x - x.mean(0)) / x.std(0)) @ rng.normal(size=d) * 0.8 + 4.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(float)
    cuts = np.array_split(np.arange(rows), session.world_size)
    names = [f"x{j}" for j in range(d)] + ["y"]
    status, result = session.run(Task("model.logistic_regression", "horizontal", [np.column_stack([x, y])[c] for c in cuts],
                                      [names] * session.world_size, {"label": "y", "seed": 3}), timeout=600)
    assert status == "ok", result
    mask = np.concatenate([holdout(3, r, len(c)) for r, c in enumerate(cuts)])
    x_train, y_train = x[~mask], y[~mask]
    center = x_train.mean(axis=0)
    reference = LogisticRegression(max_iter=20000, tol=1e-12).fit(x_train - center, y_train)
    best = penalized_loss(reference.coef_[0], reference.intercept_[0] - reference.coef_[0] @ center, x_train, y_train, 1.0)
    fitted = penalized_loss(result["coefficients"][0], result["intercept"][0][0], x_train, y_train, 1.0)
    assert y.mean() > 0.97 and best <= fitted < 1.015 * best, (fitted, best)
    assert np.all(np.diff(result["loss"][0]) <= 1e-3)


HELD_OUT = {"accuracy", "auc", "gini", "ks", "brier", "lift"}


def test_keep_shared_reveals_metrics_only(session: Session) -> None:
    if session.world_size == 3:
        pytest.skip("one party count is enough: what is released does not depend on it")
    rng = np.random.default_rng(4)
    tables = [np.column_stack(credit(rng, 600, 3)) for _ in range(session.world_size)]
    status, result = session.run(Task("model.logistic_regression", "horizontal", tables, [["a", "b", "c", "y"]] * session.world_size,
                                      {"label": "y", "keep_shared": True, "epochs": 4}), timeout=600)
    assert status == "ok" and set(result) == {"loss", *HELD_OUT}, result
    assert all(set(session.shares[r]) == {"weights_std", "intercept_std"} for r in range(session.world_size))
