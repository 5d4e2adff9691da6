"""features.select against the screen in numpy: down the columns by information
value (optbinning's formulas on the same bins), keep a column whose IV is at
least iv_min and whose |Pearson correlation| with every numeric column kept
before it is at most max_correlation. Vertical (the label and a correlated
feature at another bank, a categorical column, keys shuffled) and horizontal.
Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from statskit import Session, Task
from test_features_woe import reference

pytestmark = pytest.mark.multiprocess


def screen(x: np.ndarray, y: np.ndarray, cuts: list[np.ndarray], numeric: list[bool], iv_min: float,
           max_correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """numpy's selection (1 kept) and the IVs; asserts the data leaves no decision
    within the fixed point's reach of a threshold or a tie."""
    iv = np.array([reference(x[:, j], y, cuts[j], 1)[1] for j in range(x.shape[1])])
    r = np.corrcoef(x, rowvar=False)
    order = sorted(range(len(iv)), key=lambda j: (-iv[j], j))
    kept: list[int] = []
    for j in order:
        assert abs(iv[j] - iv_min) > 5e-3, (j, iv[j])
        if iv[j] < iv_min:
            continue
        if numeric[j]:
            assert all(abs(abs(r[i, j]) - max_correlation) > 0.02 for i in kept if numeric[i]), (j, r[j])
        if numeric[j] and any(abs(r[i, j]) > max_correlation for i in kept if numeric[i]):
            continue
        kept.append(j)
    assert all(abs(iv[i] - iv[j]) > 5e-3 for i in range(len(iv)) for j in range(i))  # no near-ties
    chosen = np.zeros(len(iv))
    chosen[kept] = 1
    return chosen, iv


def borrowers(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """income (strong), salary (income's twin: r ~0.95, a little weaker), debt
    (r ~0.8 with income), age (weak but useful), noise (useless)."""
    income = rng.normal(0, 1, rows)
    salary = income + rng.normal(0, 0.33, rows)
    debt = income * 0.8 + rng.normal(0, 0.6, rows)
    age = rng.normal(0, 1, rows)
    noise = rng.normal(0, 1, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(-1.5 + 1.2 * income + 0.35 * age)))).astype(np.float64)
    return np.column_stack([income, salary, debt, age, noise]), y


def test_vertical_screen_matches_numpy(two: Session) -> None:
    """income, salary, noise and region (categorical) at bank 0; debt, age and the
    label at bank 1: the cross-bank correlation (income-debt) drops debt."""
    from mpc.catalogue.context import Vocabulary

    rng = np.random.default_rng(12)
    x, y = borrowers(rng, 4000)
    region = rng.choice(3, len(y), p=[0.2, 0.4, 0.4])
    y = np.where(region == 0, rng.random(len(y)) < 0.5, y.astype(bool)).astype(np.float64)
    keys = np.array([f"c{i}" for i in range(len(y))], dtype=object)
    order = rng.permutation(len(y))
    bank0 = np.column_stack([x[:, [0, 1, 4]], region])
    bank1 = np.column_stack([x[order][:, [2, 3]], y[order]])
    status, result = two.run(Task("features.select", "vertical", [bank0, bank1],
                                  [["income", "salary", "noise", "region"], ["debt", "age", "bad"]],
                                  {"label": "bad", "bins": 8}, {"min_group_size": 10}, [keys, keys[order]],
                                  categories=[{"region": Vocabulary(("a", "b", "c"))}, {}]), timeout=600)
    assert status == "ok", result
    columns = np.column_stack([x[:, [0, 1, 4]], region, x[:, [2, 3]]])
    cuts = [np.unique(np.quantile(columns[:, j], np.linspace(0, 1, 9)[1:-1])) for j in range(6)]
    cuts[3] = np.array([1.0, 2.0])  # (a bin per category)
    expected, iv = screen(columns, y, cuts, [True, True, True, False, True, True], 0.02, 0.7)
    values, names, _, _ = result["selected"]
    assert names == ["income", "salary", "noise", "region", "debt", "age"]
    np.testing.assert_array_equal(values, expected)
    assert values.tolist() == [1, 0, 0, 1, 0, 1], iv  # (the screen this data was built for)
    assert set(result) == {"selected"}  # nothing else: no IV, no correlation


def test_horizontal_screen_is_greedy(three: Session) -> None:
    """Three banks cut at the same splits. mix = (income + age) / sqrt 2 correlates
    0.71 with both, which do not correlate: at max_correlation 0.6, income (the
    strongest) drops mix, and age stays, since the only column that blocked it
    was dropped (a one-shot pairwise rule would drop age too)."""
    rng = np.random.default_rng(13)
    parts = []
    for rows in (1600, 1200, 900):
        x, y = borrowers(rng, rows)
        x[:, 1] = (x[:, 0] + x[:, 3]) / np.sqrt(2) + rng.normal(0, 0.05, rows)  # (salary's place)
        parts.append((x, y))
    names = ["income", "mix", "debt", "age", "noise"]
    splits = {name: [-1.0, -0.5, 0.0, 0.5, 1.0] for name in names}
    tables = [np.column_stack([x, y]) for x, y in parts]
    status, result = three.run(Task("features.select", "horizontal", tables, [[*names, "bad"]] * 3,
                                    {"label": "bad", "splits": splits, "iv_min": 0.03, "max_correlation": 0.6},
                                    {"min_group_size": 5}), timeout=600)
    assert status == "ok", result
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    expected, iv = screen(x, y, [np.array(splits[n]) for n in names], [True] * 5, 0.03, 0.6)
    values, labels, _, _ = result["selected"]
    assert labels == names
    np.testing.assert_array_equal(values, expected)
    assert values.tolist() == [1, 0, 0, 1, 0], iv


def inflation_screen(x: np.ndarray, chosen: np.ndarray, limit: float) -> np.ndarray:
    """toad's drop_vif in numpy on the chosen columns: while the largest VIF is above
    `limit`, drop that column; asserts no decision within 2% of the limit or a tie."""
    kept = [int(j) for j in np.flatnonzero(chosen)]
    while len(kept) > 1:
        vif = np.diag(np.linalg.inv(np.corrcoef(x[:, kept], rowvar=False)))
        top = np.sort(vif)[::-1]
        assert abs(top[0] - limit) > 0.02 * limit, vif
        if top[0] <= limit:
            break
        assert top[0] - top[1] > 0.01 * top[0], vif
        kept.pop(int(np.argmax(vif)))
    out = np.zeros_like(chosen)
    out[kept] = 1
    return out


def test_variance_inflation_drops_what_no_pair_shows(two: Session) -> None:
    """total = (income + debt + age) / sqrt 3 plus a little noise correlates ~0.57
    with each (below max_correlation 0.7: the pairwise screen keeps all four), but
    is nearly their sum: its VIF is ~12. At max_vif 5 it is dropped, as toad's
    drop_vif drops it; vertically, the label and debt at bank 1. Made their exact
    sum (a singular correlation matrix), one of the four is dropped at max_vif 10."""
    rng = np.random.default_rng(14)
    rows = 4000
    income, debt, age, noise = rng.normal(size=(4, rows))
    total = (income + debt + age) / np.sqrt(3) + rng.normal(0, 0.3, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(-1 + income + 0.8 * debt + 0.6 * age)))).astype(np.float64)
    x = np.column_stack([income, age, total, debt, noise])
    keys = np.array([f"c{i}" for i in range(rows)], dtype=object)
    order = rng.permutation(rows)
    tables = [x[:, :3], np.column_stack([x[order][:, 3:], y[order]])]
    names = [["income", "age", "total"], ["debt", "noise", "bad"]]
    status, result = two.run(Task("features.select", "vertical", tables, names,
                                  {"label": "bad", "bins": 8, "max_vif": 5}, {"min_group_size": 10},
                                  [keys, keys[order]]), timeout=600)
    assert status == "ok", result
    cuts = [np.unique(np.quantile(x[:, j], np.linspace(0, 1, 9)[1:-1])) for j in range(5)]
    pairwise, _ = screen(x, y, cuts, [True] * 5, 0.02, 0.7)
    expected = inflation_screen(x, pairwise, 5.0)
    assert pairwise.tolist() == [1, 1, 1, 1, 0] and expected.tolist() == [1, 1, 0, 1, 0]  # (what the data was built for)
    values, labels, _, _ = result["selected"]
    assert labels == ["income", "age", "total", "debt", "noise"]
    np.testing.assert_array_equal(values, expected)
    # an exact sum of three columns (numpy cannot invert it): one of the four goes, and the three left are independent
    x[:, 2] = income + debt + age
    tables = [x[:, :3], np.column_stack([x[order][:, 3:], y[order]])]
    status, result = two.run(Task("features.select", "vertical", tables, names,
                                  {"label": "bad", "bins": 8, "max_vif": 10}, {"min_group_size": 10},
                                  [keys, keys[order]]), timeout=600)
    assert status == "ok", result
    values = result["selected"][0]
    assert values[4] == 0 and values[:4].sum() == 3, values
    assert np.diag(np.linalg.inv(np.corrcoef(x[:, values > 0], rowvar=False))).max() < 10
