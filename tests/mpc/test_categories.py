"""Categorical columns (mpc/programs/categories.py) and stats.crosstab through real
CrypTen, one process per party: contingency tables and the chi-square test
against numpy and scipy, horizontally and across owners; small cells withheld
and the cell that would betray them through the public row count; categories
agreed by listing or by each party's large ones; one-hot models against
scikit-learn's OneHotEncoder pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from statskit import Session, Task

from mpc.catalogue.context import Vocabulary

pytestmark = pytest.mark.multiprocess
REGIONS = ("east", "north", "south", "west")
PRODUCTS = ("card", "loan", "mortgage")


def coded(values: np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    """Labels as the registry stores them: codes into the owner's sorted vocabulary."""
    return np.array([levels.index(v) for v in values], dtype=np.float64)


def draw(rng: np.random.Generator, rows: int, skew: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    region = rng.choice(REGIONS, rows, p=[0.1, 0.3, 0.3, 0.3])
    product = np.where(rng.random(rows) < 0.5 * skew, "card", rng.choice(PRODUCTS, rows))
    return region, product


def horizontal(parts: list[tuple[np.ndarray, np.ndarray]]) -> Task:
    tables = [np.column_stack([coded(r, REGIONS), coded(p, PRODUCTS)]) for r, p in parts]
    vocabulary = {"region": Vocabulary(REGIONS), "product": Vocabulary(PRODUCTS)}
    return Task("stats.crosstab", "horizontal", tables, [["region", "product"]] * 3, categories=[vocabulary] * 3)


def counted(region: np.ndarray, product: np.ndarray) -> np.ndarray:
    return np.array([[np.sum((region == r) & (product == p)) for p in PRODUCTS] for r in REGIONS], dtype=float)


def test_a_pooled_crosstab_and_its_chi_square_match_scipy(three: Session) -> None:
    rng = np.random.default_rng(1)
    parts = [draw(rng, rows, skew) for rows, skew in ((300, 1.0), (200, 0.4), (250, 0.0))]
    status, result = three.run(horizontal(parts))
    assert status == "ok", result
    expected = counted(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    np.testing.assert_array_equal(result["crosstab"][0], expected)
    assert result["crosstab"][1] == list(REGIONS) and result["crosstab"][2] == list(PRODUCTS)
    chi2, p, dof, _ = chi2_contingency(expected, correction=False)
    assert abs(result["chi2"][0][0] - chi2) <= 1e-9 * chi2 and result["dof"][0][0] == dof
    assert abs(result["p_value"][0][0] - p) <= 1e-9
    assert result["count"][0][0] == 750


def rows_of(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A party's rows holding exactly `counts` (regions x products), shuffled."""
    cells = [(r, p) for i, r in enumerate(REGIONS) for j, p in enumerate(PRODUCTS) for _ in range(int(counts[i, j]))]
    region, product = map(np.array, zip(*[cells[i] for i in rng.permutation(len(cells))]))
    return region, product


def test_a_small_cell_is_withheld_and_so_is_the_cell_that_would_betray_it(three: Session) -> None:
    """Party 1 holds 2 east mortgages: that cell is withheld. The job's row count
    (and each party's) is public, so that cell alone would be the count minus the
    released cells: party 1 withholds its own smallest cell of at least k rows
    too, and no test is released."""
    rng = np.random.default_rng(2)
    base = np.array([[20, 12, 0], [30, 25, 15], [40, 8, 11], [22, 30, 9]])
    counts = [base, base + np.array([[0, 0, 2], [0] * 3, [0] * 3, [0] * 3]), base * 2]
    parts = [rows_of(c, rng) for c in counts]
    task = horizontal(parts)
    task.rules = {"min_group_size": 5}
    status, result = three.run(task)
    assert status == "ok", result
    values, suppressed = result["crosstab"][0], result["crosstab"][3]
    smallest_of_party_1 = int(np.argmin(np.where(counts[1] >= 5, counts[1], 10**9)))  # its 8 south loans
    assert sorted(suppressed) == sorted([2, smallest_of_party_1]), suppressed
    assert all(c.reshape(-1)[suppressed].sum() == 0 or c.reshape(-1)[suppressed].sum() >= 5 for c in counts)
    assert np.isnan(values.reshape(-1)[suppressed]).all() and "chi2" not in result
    released = np.delete(np.arange(12), suppressed)
    np.testing.assert_array_equal(values.reshape(-1)[released], sum(counts).reshape(-1)[released])


def test_a_vertical_crosstab_across_owners(three: Session) -> None:
    """Region at bank 0, product at bank 1 (shuffled keys): the table is a product of
    one-hot columns under MPC; a small cell and its complement withheld."""
    rng = np.random.default_rng(3)
    region, product = rows_of(np.array([[20, 3, 0], [30, 25, 15], [40, 8, 11], [22, 30, 9]]), rng)
    n = len(region)
    keys = np.array([f"c{i}" for i in range(n)], dtype=object)
    orders = [rng.permutation(n) for _ in range(3)]
    tables = [coded(region[orders[0]], REGIONS)[:, None], coded(product[orders[1]], PRODUCTS)[:, None],
              np.zeros((n, 0))]
    task = Task("stats.crosstab", "vertical", tables, [["region"], ["product"], []],
                keys=[keys[o] for o in orders], rules={"min_group_size": 5},
                categories=[{"region": Vocabulary(REGIONS)}, {"product": Vocabulary(PRODUCTS)}, {}])
    status, result = three.run(task)
    assert status == "ok", result
    expected = counted(region, product).reshape(-1)
    suppressed = result["crosstab"][3]
    assert REGIONS.index("east") * 3 + PRODUCTS.index("loan") in suppressed and len(suppressed) == 2
    assert expected[suppressed].sum() >= 5
    released = np.delete(np.arange(12), suppressed)
    np.testing.assert_array_equal(result["crosstab"][0].reshape(-1)[released], expected[released])
    task.rules = {"min_group_size": 1}
    status, result = three.run(task)
    assert status == "ok", result
    np.testing.assert_array_equal(result["crosstab"][0].reshape(-1), expected)


def test_categories_are_agreed_and_unlisted_ones_refused_or_counted_as_other(three: Session) -> None:
    rng = np.random.default_rng(4)
    parts = [draw(rng, 200) for _ in range(3)]
    task = horizontal(parts)
    task.parameters = {"categories": {"region": ["north", "south"]}}
    status, message = three.run(task)
    assert status == "refused" and "holds categories of column 'region' that the job does not list" in message
    task.categories = [{"region": Vocabulary(REGIONS, other=True), "product": Vocabulary(PRODUCTS)}] * 3
    status, result = three.run(task)
    assert status == "ok", result
    assert result["crosstab"][1] == ["north", "south", "other"]
    region = np.concatenate([p[0] for p in parts])
    assert result["crosstab"][0][2].sum() == np.isin(region, ["east", "west"]).sum()
    # without a list: each party's categories with at least min_group_size of its rows
    task = horizontal(parts)
    task.rules = {"min_group_size": 200}  # no category holds 200 rows at a party: nothing to agree on
    task.categories = [{"region": Vocabulary(REGIONS, other=True), "product": Vocabulary(PRODUCTS, other=True)}] * 3
    status, result = three.run(task)
    assert status == "ok", result
    assert result["crosstab"][1] == ["other"] and result["crosstab"][2] == ["other"]


def test_statistics_refuse_categorical_columns(three: Session) -> None:
    rng = np.random.default_rng(5)
    task = horizontal([draw(rng, 50) for _ in range(3)])
    task.kind = "stats.describe"
    status, message = three.run(task)
    assert status == "refused" and "only models and stats.crosstab read categorical columns" in message


def test_a_logistic_regression_one_hot_encodes_as_scikit_learn(three: Session) -> None:
    """A numeric feature and a categorical one split by rows; vertically, the
    region at bank 1 encoded with its own categories."""
    rng = np.random.default_rng(6)
    n = 600
    region = rng.choice(REGIONS, n)
    income = rng.normal(50, 15, n)
    effect = {"east": -1.0, "north": 0.0, "south": 0.8, "west": 1.5}
    y = ((income - 50) / 15 + np.vectorize(effect.get)(region) + rng.logistic(0, 1, n) > 0.5).astype(float)
    design = np.column_stack([income, OneHotEncoder().fit_transform(region[:, None]).toarray()])  # (sorted: REGIONS)
    reference = LogisticRegression(max_iter=5000).fit(design, y)
    table = np.column_stack([income, coded(region, REGIONS), y])
    tables = list(np.array_split(table, 3))
    names = ["income", "region", "y"]
    status, result = three.run(Task("model.logistic_regression", "horizontal", tables, [names] * 3,
                                   {"label": "y", "holdout": 0},
                                   categories=[{"region": Vocabulary(REGIONS)}] * 3), timeout=900)
    assert status == "ok", result
    assert result["coefficients"][1] == ["income", *(f"region={r}" for r in REGIONS)]
    mine = design @ result["coefficients"][0] + result["intercept"][0] > 0
    truth = reference.predict(design).astype(bool)
    assert (mine == truth).mean() >= 0.97
    keys = np.array([f"c{i}" for i in range(n)], dtype=object)
    orders = [rng.permutation(n) for _ in range(3)]
    status, result = three.run(Task(
        "model.logistic_regression", "vertical",
        [income[orders[0]][:, None], coded(region, REGIONS)[orders[1]][:, None], y[orders[2]][:, None]],
        [["income"], ["region"], ["y"]], {"label": "y", "holdout": 0}, keys=[keys[o] for o in orders],
        categories=[{}, {"region": Vocabulary(REGIONS)}, {}]), timeout=900)
    assert status == "ok", result
    assert result["coefficients"][1] == ["income", *(f"region={r}" for r in REGIONS)]
    mine = design @ result["coefficients"][0] + result["intercept"][0] > 0
    assert (mine == truth).mean() >= 0.97
