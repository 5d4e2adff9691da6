"""Missing cells (mpc/programs/missing.py) through real CrypTen, one process per
party: statistics on columns filled with the pooled mean or median, on complete
rows, and with missing indicators, against numpy on the pooled rows at awkward
offsets and scales; vertical owners filling their own columns; a logistic
regression against scikit-learn's SimpleImputer pipeline; and the attack a
curious partner would try on the pooled fill value."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from statskit import Session, Task

pytestmark = pytest.mark.multiprocess
COLUMNS = ["x", "y", "z"]


def holey(rng: np.random.Generator, rows: int, offset: float, scale: float, share: float = 0.2) -> np.ndarray:
    table = offset + scale * rng.standard_t(3, (rows, len(COLUMNS)))  # heavy tails: outliers
    table[rng.random(table.shape) < share] = np.nan
    return table


def filled(pooled: np.ndarray, choice: str) -> np.ndarray:
    """numpy's answer: the pooled table as the job's choice leaves it."""
    if choice == "drop":
        return pooled[~np.isnan(pooled).any(axis=1)]
    out = pooled.copy()
    for j in range(out.shape[1]):
        seen = out[~np.isnan(out[:, j]), j]
        value = np.quantile(seen, 0.5, method="lower") if choice == "median" else seen.mean()
        out[np.isnan(out[:, j]), j] = value
    if choice == "indicator":
        out = np.column_stack([out, np.isnan(pooled).astype(float)])
    return out


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (1e6, 1.0), (-3.0, 1e-3), (2e4, 5e3)])
def test_statistics_on_filled_columns_match_numpy(three: Session, offset: float, scale: float) -> None:
    rng = np.random.default_rng(int(offset + scale * 7) % 1000)
    tables = [holey(rng, rows, offset, scale) for rows in (40, 25, 60)]
    pooled = np.vstack(tables)
    for choice in ("mean", "median", "drop", "indicator"):
        status, result = three.run(Task("stats.describe", "horizontal", tables, [COLUMNS] * 3, {"missing": choice}))
        assert status == "ok", (choice, result)
        expected = filled(pooled, choice)
        width = expected.shape[1]
        np.testing.assert_array_equal(result["count"][0], [len(expected)] * width)
        np.testing.assert_array_equal(result["missing"][0][:3], np.isnan(pooled).sum(axis=0))
        spread = expected.std(axis=0, ddof=1)
        mean = result["mean"][0]
        assert np.all(np.abs(mean - expected.mean(axis=0)) <= 1e-3 * spread + 1e-9), (choice, mean, expected.mean(0))
        np.testing.assert_allclose(result["std"][0], spread, rtol=2e-3, err_msg=choice)
        if choice == "indicator":
            assert result["mean"][1] == [*COLUMNS, "x_missing", "y_missing", "z_missing"]


def test_a_column_with_missing_cells_and_no_choice_is_refused(three: Session) -> None:
    rng = np.random.default_rng(3)
    tables = [holey(rng, 20, 0.0, 1.0, share=0.3) for _ in range(3)]
    status, message = three.run(Task("stats.describe", "horizontal", tables, [COLUMNS] * 3, {}))
    assert status == "refused" and "missing cells" in message and "parameter missing" in message
    status, message = three.run(Task("stats.describe", "horizontal", tables, [COLUMNS] * 3,
                                    {"missing": {"x": "mean", "y": "mean"}}))
    assert status == "refused" and "'z'" in message and "no choice" in message


def test_the_pooled_fill_does_not_reveal_a_partner_s_single_cell(three: Session) -> None:
    """Party 0 knows its own cells; bank 1 has one observed income, bank 2 none.
    The pooled mean (told to every party) minus party 0's own cells is bank 1's
    one value: the attack works at min_group_size 1 and is refused at 5."""
    rng = np.random.default_rng(4)
    mine = rng.normal(100, 10, (30, 1))
    secret = 123.456
    theirs = np.full((12, 1), np.nan)
    theirs[5, 0] = secret
    nobody = np.full((8, 1), np.nan)
    tables = [mine, theirs, nobody]
    for rules, works in (({"min_group_size": 1}, True), ({"min_group_size": 5}, False)):
        status, result = three.run(Task("stats.describe", "horizontal", tables, [["income"]] * 3,
                                       {"missing": "mean"}, rules=rules))
        if works:
            assert status == "ok", result
            observed = result["count"][0][0] - result["missing"][0][0]
            recovered = result["mean"][0][0] * observed - mine.sum()  # (a mean fill keeps the mean)
            assert abs(recovered - secret) < 1e-3
        else:
            assert status == "refused" and "min_group_size" in result, result


def test_vertical_owners_fill_their_own_columns(three: Session) -> None:
    rng = np.random.default_rng(5)
    n = 60
    keys = np.array([f"k{i}" for i in range(n)], dtype=object)
    data = rng.normal(5, 2, (n, 3))
    data[rng.random(data.shape) < 0.25] = np.nan
    orders = [rng.permutation(n) for _ in range(3)]
    tables = [data[order][:, [r]] for r, order in enumerate(orders)]
    status, result = three.run(Task("stats.describe", "vertical", tables, [["a"], ["b"], ["c"]],
                                   {"missing": {"a": "median", "b": "indicator", "c": "mean"}},
                                   keys=[keys[order] for order in orders]))
    assert status == "ok", result
    expected = np.column_stack([filled(data[:, [0]], "median"), filled(data[:, [1]], "indicator"),
                                filled(data[:, [2]], "mean")])
    assert result["mean"][1] == ["a", "b", "b_missing", "c"]
    np.testing.assert_allclose(result["mean"][0], expected[:, [0, 1, 2, 3]].mean(axis=0), atol=1e-4)
    np.testing.assert_array_equal(result["missing"][0], [*np.isnan(data[:, :2]).sum(axis=0), 0,
                                                         np.isnan(data[:, 2]).sum()])


def test_logistic_regression_with_missing_features_and_labels(three: Session) -> None:
    """Features 20% missing, some labels missing: rows without a label dropped,
    features filled with the pooled mean plus indicators, as scikit-learn's
    SimpleImputer(add_indicator=True) with LogisticRegression() on the same rows."""
    rng = np.random.default_rng(6)
    n = 600
    x = rng.normal(0, 1, (n, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -2.0]
    y = (x @ [1.0, -0.4, 2.0] + 3.6 + rng.logistic(0, 1, n) > 0).astype(float)
    x[rng.random(x.shape) < 0.2] = np.nan
    y[rng.random(n) < 0.05] = np.nan
    table = np.column_stack([x, y])
    names = [*COLUMNS, "label"]
    tables = list(np.array_split(table, 3))
    status, result = three.run(Task("model.logistic_regression", "horizontal", tables, [names] * 3,
                                   {"label": "label", "missing": "indicator", "holdout": 0}), timeout=900)
    assert status == "ok", result
    labelled = ~np.isnan(y)
    reference = make_pipeline(SimpleImputer(add_indicator=True), LogisticRegression(max_iter=5000))
    reference.fit(x[labelled], y[labelled])
    design = filled(x[labelled], "indicator")
    mine = (design @ result["coefficients"][0] + result["intercept"][0] > 0).astype(float)
    assert result["coefficients"][1] == [*COLUMNS, "x_missing", "y_missing", "z_missing"]
    assert abs((mine == y[labelled]).mean() - reference.score(x[labelled], y[labelled])) <= 0.02
    assert (mine == reference.predict(x[labelled])).mean() >= 0.97
