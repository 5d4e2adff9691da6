"""Logistic regression with more than two classes (one-vs-rest,
mpc/programs/models/multiclass.py) against scikit-learn's
OneVsRestClassifier(LogisticRegression()) on the same rows: iris split by rows,
wine split by columns with shuffled, partly overlapping keys; held-out accuracy
and confusion; a declared class without rows refused; what only the binary
program offers refused at submit. Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from statskit import Session, Task

from mpc.catalogue.kinds import parse, validate_inputs
from mpc.errors import InvalidArgument

pytestmark = pytest.mark.multiprocess


def reference(x: np.ndarray, y: np.ndarray) -> OneVsRestClassifier:
    return OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=5000)).fit(x, y)


def predicted(result: dict, x: np.ndarray) -> np.ndarray:
    return (x @ result["coefficients"][0].T + result["intercept"][0]).argmax(1)


def test_wine_split_by_columns_with_held_out_rows(session: Session) -> None:
    """Each party holds some of the 13 columns of partly the same customers (the
    label at the last); the intersection aligns them."""
    if session.world_size != 2:
        pytest.skip("one party count is enough: one-vs-rest runs the binary program, tested at both")
    x, y = load_wine(return_X_y=True)
    d = session.world_size
    cuts = np.array_split(np.arange(13), d)
    rng = np.random.default_rng(2)
    keys, tables, columns = [], [], []
    for r, cut in enumerate(cuts):
        rows = np.sort(rng.permutation(178)[:170]) if r == 0 else np.arange(178)  # party 0 lacks 8 customers
        order = rng.permutation(rows)
        part = x[np.ix_(order, cut)]
        names = [f"f{j}" for j in cut]
        if r == d - 1:
            part, names = np.column_stack([part, y[order]]), [*names, "y"]
        keys.append(np.array([f"c{i}" for i in order]))
        tables.append(part)
        columns.append(names)
    status, result = session.run(Task("model.logistic_regression", "vertical", tables, columns,
                                      {"label": "y", "classes": 3}, {"min_group_size": 1}, keys), timeout=900)
    assert status == "ok", result
    common = np.array(sorted(int(k[1:]) for k in keys[0]))
    sk = reference(x[common], y[common])
    assert abs((predicted(result, x[common]) == y[common]).mean() - sk.score(x[common], y[common])) <= 0.02
    confusion = result["confusion"][0]
    assert confusion.shape == (3, 3) and 20 <= confusion.sum() <= 50  # the held-out fifth of 170 rows
    assert result["accuracy"][0][0] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-3)
    assert result["accuracy"][0][0] >= 0.9


def test_a_declared_class_without_rows_is_refused(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties")
    x, y = load_iris(return_X_y=True)
    tables = list(np.array_split(np.column_stack([x, y]), 2))
    status, answer = session.run(Task("model.logistic_regression", "horizontal", tables, [["a", "b", "c", "d", "y"]] * 2,
                                      {"label": "y", "classes": 4}), timeout=600)
    assert status == "refused" and "no training rows of class 3" in answer
    status, answer = session.run(Task("model.logistic_regression", "horizontal", tables, [["a", "b", "c", "d", "y"]] * 2,
                                      {"label": "y"}), timeout=600)
    assert status == "refused" and "must hold only 0 and 1" in answer


def test_what_only_the_binary_program_offers_is_refused_at_submit() -> None:
    inputs = [("bank-a", ["x", "y"]), ("bank-b", ["z"])]
    for extra, name in (({"own_coefficients": True}, "own_coefficients"), ({"fit_intercept": False}, "fit_intercept"),
                        ({"dp": {"epsilon": 1.0}}, "dp")):
        parameters = parse("model.logistic_regression", {"label": "y", "classes": 3, **extra})
        with pytest.raises(InvalidArgument, match=f"{name}.* binary labels only"):
            validate_inputs("model.logistic_regression", parameters, True, inputs, ["bank-a", "bank-b"])


def test_an_indicator_of_one_customer_cannot_read_its_class(session: Session) -> None:
    """The attack: a partner adds a column that is 1 on one customer and 0 on the
    rest, whose coefficient in each class's model would show that customer's class.
    The leverage rule (every class's model, influence.py) refuses the release."""
    if session.world_size != 2:
        pytest.skip("two parties")
    x, y = load_iris(return_X_y=True)
    spy = np.zeros(150)
    spy[7] = 1.0
    tables = list(np.array_split(np.column_stack([x, spy, y]), 2))
    status, answer = session.run(Task("model.logistic_regression", "horizontal", tables, [["a", "b", "c", "d", "spy", "y"]] * 2,
                                      {"label": "y", "classes": 3, "holdout": 0}, {"max_leverage": 0.9}), timeout=600)
    assert status == "refused" and "leverage exceeds 0.9" in answer
