"""A released model must not be a row lookup (models/influence.py): the indicator-
column attack a curious partner bank tried on linear, logistic and MLP models,
vertical and horizontal, with and without own_coefficients and ridge, is refused
at max_leverage < 1; honest data (scikit-learn's bundled wine) still trains; the leverage bound is the one numpy computes. Real CrypTen, one
process per party."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine
from statskit import Session, Task

pytestmark = pytest.mark.multiprocess

RULES = {"max_leverage": 0.9}
INDICATORS = 6


def leverage(columns: np.ndarray) -> np.ndarray:
    """Each row's leverage in the design [1, columns] (float64 reference)."""
    x = np.column_stack([np.ones(len(columns)), columns])
    return np.einsum("ij,jk,ik->i", x, np.linalg.pinv(x.T @ x), x)


def attack_tables(rng: np.random.Generator, rows: int, world: int, kind: str) -> tuple[list, list, np.ndarray]:
    """Vertical: the attacker (rank 0) holds one indicator column per targeted
    customer; the victim (the last rank) holds the label (and a feature)."""
    indicators = np.zeros((rows, INDICATORS))
    indicators[np.arange(INDICATORS), np.arange(INDICATORS)] = 1.0
    feature = rng.normal(size=rows)
    label = (rng.random(rows) < 0.5).astype(float) if kind != "model.linear_regression" else rng.normal(50, 10, rows)
    tables = [indicators] + [rng.normal(size=(rows, 1)) for _ in range(world - 2)] + [np.column_stack([feature, label])]
    names = [[f"i{j}" for j in range(INDICATORS)]] + [[f"m{r}"] for r in range(1, world - 1)] + [["f", "y"]]
    return tables, names, label


@pytest.mark.parametrize("kind, parameters", [
    ("model.linear_regression", {}),
    ("model.linear_regression", {"alpha": 5.0, "own_coefficients": True}),
    ("model.linear_regression", {"fit_intercept": False}),  # a fit through the origin mirrors the rows
    ("model.logistic_regression", {"holdout": 0.0}),
    ("model.logistic_regression", {"holdout": 0.0, "fit_intercept": False}),
    ("model.logistic_regression", {"holdout": 0.0, "own_coefficients": True, "alpha": 0.01}),
    ("model.mlp", {"holdout": 0.0, "hidden": [4], "epochs": 1}),
])
def test_indicator_columns_cannot_read_another_banks_labels(session: Session, kind: str, parameters: dict) -> None:
    if session.world_size == 3 and kind == "model.linear_regression" and parameters:
        pytest.skip("the linear variants bound leverage as the plain fit does: the plain fit at three parties")
    rng = np.random.default_rng(7)
    rows = 120
    tables, names, label = attack_tables(rng, rows, session.world_size, kind)
    keys = [np.array([f"c{i}" for i in range(rows)])] * session.world_size
    task = Task(kind, "vertical", tables, names, {"label": "y", **parameters}, {}, keys,
                receivers=list(range(session.world_size)))
    if kind == "model.linear_regression" and not parameters:  # without the bound, the attack works
        status, result = session.run(task)
        assert status == "ok", result
        read = result["coefficients"][0][:INDICATORS] + result["intercept"][0][0]
        assert np.abs(read - label[:INDICATORS]).max() < 2.0  # every targeted label read off, to a fifth of its sd
    status, result = session.run(Task(kind, "vertical", tables, names, {"label": "y", **parameters}, RULES, keys,
                                      receivers=list(range(session.world_size))))
    assert status == "refused" and "POLICY_REFUSED" in result and "leverage" in result, result
    assert all(isinstance(r, str) for r in session.results.values())  # no party released anything


def _last_loss(phases: list[str]) -> float:
    """The last training loss a party's progress showed ("epoch k/E loss X")."""
    return [float(phase.split(" loss ")[1].split()[0]) for phase in phases if " loss " in phase][-1]


@pytest.mark.parametrize("kind, parameters", [
    ("model.logistic_regression", {"holdout": 0.0, "keep_shared": True, "alpha": 0.01}),
    ("model.logistic_regression", {"holdout": 0.0, "classes": 3}),
    ("model.mlp", {"holdout": 0.0, "hidden": [4], "epochs": 2, "keep_shared": True}),
])
def test_training_losses_do_not_read_another_banks_labels(session: Session, kind: str, parameters: dict) -> None:
    """Attack 2: every party sees the loss each epoch (and, at two steps, whether
    the Hessian was invertible), kept shared or not. The attacker runs the job
    with a noise column, then with an indicator of one customer and a small
    penalty: the last loss falls by about that customer's loss over n, large
    exactly where the label is the rare class (scikit-learn's fits, C = 100: n x
    the drop 0.85 and 1.46 against 0.01 and -0.02). It read the targeted labels. Now every party bounds the rows'
    leverage before training: refused, and no party's progress shows a loss."""
    rng = np.random.default_rng(5)
    rows = 120
    label = (rng.random(rows) < 0.8).astype(float)  # row 0: the rare class; row 2: the common one
    if parameters.get("classes"):
        label = label + (np.arange(rows) % 5 == 4)  # a third class, away from the targeted rows
    middle = [rng.normal(size=(rows, 1)) for _ in range(session.world_size - 2)]
    victim = np.column_stack([rng.normal(size=rows), label])
    names = [["a"]] + [[f"m{r}"] for r in range(1, session.world_size - 1)] + [["f", "y"]]
    keys = [np.array([f"c{i}" for i in range(rows)])] * session.world_size

    def job(column: np.ndarray, rules: dict) -> Task:
        return Task(kind, "vertical", [column[:, None], *middle, victim], names, {"label": "y", **parameters}, rules,
                    keys, receivers=[session.world_size - 1])

    def indicator(row: int) -> np.ndarray:
        return (np.arange(rows) == row).astype(float)

    if kind == "model.logistic_regression" and session.world_size == 2 and not parameters.get("classes"):
        status, _ = session.run(job(rng.normal(size=rows), {}))  # without the bound, the attack works
        assert status == "ok"
        noise = _last_loss(session.phases[0])
        for target in (0, 2):
            status, _ = session.run(job(indicator(target), {}))
            assert status == "ok"
            drop = rows * (noise - _last_loss(session.phases[0]))
            assert (drop > 0.4) == (label[target] == 0), (target, drop)
    status, result = session.run(job(indicator(0), RULES))
    assert status == "refused" and "leverage" in result, result
    assert not any(" loss " in phase for phases in session.phases.values() for phase in phases), session.phases


@pytest.mark.parametrize("kind, parameters", [
    ("model.linear_regression", {}),
    ("model.linear_regression", {"alpha": 10.0}),
    ("model.logistic_regression", {"holdout": 0.0}),
    ("model.mlp", {"holdout": 0.0, "hidden": [4], "epochs": 1}),
])
def test_an_indicator_among_horizontal_rows_is_refused(session: Session, kind: str, parameters: dict) -> None:
    """A party whose rows carry a column that singles out one of them: the model
    would show that row's label to every receiver."""
    if session.world_size == 3 and parameters.get("alpha"):
        pytest.skip("a penalty changes no leverage bound's rows: the penalized fit at two parties")
    rng = np.random.default_rng(3)
    tables = []
    for r in range(session.world_size):
        x = rng.normal(size=(40, 2))
        marker = np.zeros((40, 1))
        if r == 0:
            marker[5] = 1.0  # a column that singles out one row of the pooled data
        label = x @ [1.0, 2.0] + rng.normal(size=40)
        tables.append(np.column_stack([x, marker, label if kind == "model.linear_regression" else label > 0]))
    names = [["a", "b", "m", "y"]] * session.world_size
    if session.world_size == 2:  # (one party count shows it; the refusal below runs at both)
        status, result = session.run(Task(kind, "horizontal", tables, names, {"label": "y", **parameters}))
        assert status == "ok", result  # without the bound it is released
    status, result = session.run(Task(kind, "horizontal", tables, names, {"label": "y", **parameters}, RULES))
    assert status == "refused" and "leverage" in result, result


def test_a_crafted_label_cannot_read_a_partners_feature(session: Session) -> None:
    """The label holder sets its label to 1 on one customer: linear coefficients
    would show that customer's features (the label column's own leverage)."""
    rng = np.random.default_rng(4)
    rows = 150
    features = [rng.normal(size=(rows, 2)) for _ in range(session.world_size - 1)]
    crafted = np.zeros((rows, 1))
    crafted[9] = 1.0
    tables = [*features, crafted]
    names = [[f"x{r}a", f"x{r}b"] for r in range(session.world_size - 1)] + [["y"]]
    keys = [np.array([f"c{i}" for i in range(rows)])] * session.world_size
    status, result = session.run(Task("model.linear_regression", "vertical", tables, names, {"label": "y"}, RULES, keys))
    assert status == "refused" and "leverage" in result, result
    for intercept in (True, False):  # mirror images (through the origin) do not fill the class
        status, result = session.run(Task("model.logistic_regression", "vertical", tables, names,
                                          {"label": "y", "holdout": 0.0, "fit_intercept": intercept}, RULES, keys))
        assert status == "refused" and "class" in result, (intercept, result)


@pytest.mark.parametrize("bound", [0.5, 0.8])
def test_the_bound_is_numpys_leverage(session: Session, bound: float) -> None:
    """Rows with leverage a little above and below the bound (one outlying row
    moved along a feature): refused exactly when numpy's maximum exceeds it."""
    if session.world_size == 3 and bound != 0.8:
        pytest.skip("one party count is enough for the second bound: the leverage is pooled alike")
    rng = np.random.default_rng(11)
    rows = 90
    x = rng.normal(size=(rows, 3))
    y = x @ [1.0, -1.0, 0.5] + rng.normal(size=rows)
    for target in (bound - 0.04, bound + 0.04):
        moved = x.copy()
        lo, hi = 0.0, 200.0  # push row 0 out until its leverage in [x, y] reaches the target
        for _ in range(60):
            moved[0, 0] = (lo + hi) / 2
            h = leverage(np.column_stack([moved, y]))[0]
            lo, hi = (moved[0, 0], hi) if h < target else (lo, moved[0, 0])
        assert leverage(np.column_stack([moved, y])).max() == pytest.approx(target, abs=1e-3)
        parts = np.array_split(np.column_stack([moved, y]), session.world_size)
        status, result = session.run(Task("model.linear_regression", "horizontal", parts, [["a", "b", "c", "y"]] *
                                          session.world_size, {"label": "y"}, {"max_leverage": bound}))
        assert status == ("ok" if target < bound else "refused"), (target, result)


def test_honest_bundled_data_is_still_released(session: Session) -> None:
    """wine (178 rows, 13 features; numpy's largest leverage 0.39): logistic
    (class 0 against the rest) and linear models are released under the default
    bound, horizontally and vertically."""
    if session.world_size != 2:
        pytest.skip("one party count is enough: the attacks above run at both")
    wine = load_wine()
    x, y = wine.data, (wine.target == 0).astype(float)
    table = np.column_stack([x, y])
    names = [f"f{j}" for j in range(x.shape[1])] + ["y"]
    parts = np.array_split(table, session.world_size)
    status, result = session.run(Task("model.logistic_regression", "horizontal", parts, [names] * session.world_size,
                                      {"label": "y", "seed": 1}, RULES))
    assert status == "ok" and result["auc"][0][0] > 0.95, result
    columns = np.array_split(np.arange(table.shape[1]), session.world_size)
    keys = [np.array([f"w{i}" for i in range(len(table))])] * session.world_size
    status, result = session.run(Task("model.linear_regression", "vertical", [table[:, c] for c in columns],
                                      [[names[j] for j in c] for c in columns], {"label": "f0"}, RULES, keys))
    assert status == "ok" and result["r2"][0][0] > 0.5, result


@pytest.mark.parametrize("kind, parameters", [("model.linear_regression", {}),
                                              ("model.logistic_regression", {"holdout": 0.0}),
                                              ("model.mlp", {"holdout": 0.0, "hidden": [4], "epochs": 1})])
def test_twin_columns_that_differ_in_one_customer_cannot_read_its_label(two: Session, kind: str,
                                                                         parameters: dict) -> None:
    """The differencing attack: the attacker registers a column twice, the copy with
    one customer's value moved by one deviation. The twins' difference is that
    customer's indicator (leverage 1: a linear model's two coefficients change sign
    with its label), but its variance, 1 / n, is below the MPC bound's ridge; in
    the attacker's own columns, computed exactly at its party
    (mpc.programs.leverage), the customer's leverage is 1: refused, naming it."""
    rng = np.random.default_rng(3)
    rows = 500
    income = rng.normal(0, 1, rows)
    label = rng.normal(50, 10, rows) if kind == "model.linear_regression" else (rng.random(rows) < 0.5) * 1.0
    twin = income.copy()
    twin[7] += 1.0
    assert leverage(np.column_stack([income, twin]))[7] > 0.999
    keys = [np.array([f"k{i}" for i in range(rows)])] * 2
    status, result = two.run(Task(kind, "vertical", [np.column_stack([income, twin]), label[:, None]],
                                  [["income", "twin"], ["y"]], {"label": "y", **parameters}, RULES, keys), timeout=300)
    assert status == "refused" and "single out a row" in result and "party0" in result, result
