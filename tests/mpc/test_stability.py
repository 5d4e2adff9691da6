"""stats.stability (the population stability index) against numpy's PSI on the
same bins, PSI = sum (a - e) ln(a / e) over the recent (a) and baseline (e) shares:
vertical with the period at another party or at the column's owner (baseline
deciles), horizontal at public splits, and a curious receiver's one-row bin.
Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from statskit import Session, Task
from test_features_woe import reference

pytestmark = pytest.mark.multiprocess


def population(rng: np.random.Generator, rows: int, shift: float) -> np.ndarray:
    """income (lognormal, its median moved by `shift` in the recent rows), age
    (unchanged), period (the second half recent)."""
    period = (np.arange(rows) >= rows // 2).astype(np.float64)
    income = rng.lognormal(10 + shift * period, 0.6, rows) / 1000
    return np.column_stack([income, rng.normal(40, 12, rows), period])


def psi(x: np.ndarray, period: np.ndarray, cuts: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
    """numpy's PSI after the same merging, and each merged bin's baseline and recent rows."""
    _, index, rows, recent = reference(x, period, cuts, k)  # IV against the period: its events are the recent rows
    a, e = recent / recent.sum(), (rows - recent) / (rows - recent).sum()
    assert abs(index - float(((a - e) * np.log(a / e)).sum())) < 1e-12
    return index, rows - recent, recent


def test_vertical_cuts_at_the_baseline_s_deciles_where_the_owner_holds_the_period(two: Session) -> None:
    """Income and the period at party 0 (the receiver: baseline deciles, its own
    table), age at party 1 (deciles of all its rows, keys shuffled: no table for
    the receiver)."""
    rng = np.random.default_rng(5)
    table = population(rng, 4000, shift=0.3)
    keys = np.array([f"k{i}" for i in range(len(table))])
    order = rng.permutation(len(table))
    status, result = two.run(Task("stats.stability", "vertical", [table[:, [0, 2]], table[order][:, [1]]],
                                  [["income", "period"], ["age"]], {"period": "period"}, {"min_group_size": 5},
                                  [keys, keys[order]]), timeout=600)
    assert status == "ok", result
    baseline = table[:, 2] == 0
    income_cuts = np.unique(np.quantile(table[baseline, 0], np.linspace(0, 1, 11)[1:-1]))
    age_cuts = np.unique(np.quantile(table[:, 1], np.linspace(0, 1, 11)[1:-1]))
    expected, base, recent = psi(table[:, 0], table[:, 2], income_cuts, 5)
    bins, labels, headers, _ = result["bins.income"]
    assert headers == ["baseline", "recent"] and len(labels) == len(base) == 10
    np.testing.assert_array_equal(bins[:, 0], base)
    np.testing.assert_array_equal(bins[:, 1], recent)
    np.testing.assert_array_equal(bins[:, 0], np.full(10, 200.0))  # the baseline's deciles: 200 rows each
    index = result["stability"][0]
    assert result["stability"][1] == ["income", "age"] and "bins.age" not in result
    assert abs(index[0] - expected) <= 1e-4 * len(base), (index[0], expected)
    age_expected, *_ = psi(table[:, 1], table[:, 2], age_cuts, 5)
    assert abs(index[1] - age_expected) <= 1e-3
    assert index[0] > 0.25 > 0.02 > index[1]  # the income moved, the age did not


def test_horizontal_banks_at_public_splits(three: Session) -> None:
    """Three banks' rows pooled, a categorical-free table cut at the job's splits:
    every index and table as numpy's on the pooled rows."""
    rng = np.random.default_rng(6)
    tables = [population(rng, rows, shift=0.15) for rows in (1500, 1000, 700)]
    splits = {"income": [12.0, 18.0, 22.0, 30.0, 45.0], "age": [25.0, 35.0, 45.0, 55.0]}
    status, result = three.run(Task("stats.stability", "horizontal", tables, [["income", "age", "period"]] * 3,
                                    {"period": "period", "splits": splits}, {"min_group_size": 3}), timeout=600)
    assert status == "ok", result
    pooled = np.vstack(tables)
    for j, name in enumerate(["income", "age"]):
        expected, base, recent = psi(pooled[:, j], pooled[:, 2], np.array(splits[name]), 3)
        bins, *_ = result[f"bins.{name}"]
        np.testing.assert_array_equal(bins[:, 0], base)
        np.testing.assert_array_equal(bins[:, 1], recent)
        assert abs(result["stability"][0][j] - expected) <= 1e-4 * len(base), (name, result["stability"][0][j])
    assert result["count"][0][0] == len(pooled) and result["stability"][1] == ["income", "age"]


def test_a_bin_around_one_recent_row_is_merged(two: Session) -> None:
    """A curious receiver sets splits around one row's income (the largest recent
    one) to learn whether that customer is recent: the one-row bin is merged into
    its neighbour, so no released count isolates it."""
    rng = np.random.default_rng(7)
    table = population(rng, 600, shift=0.0)
    target = table[table[:, 2] == 1, 0].max()
    below = np.sort(table[:, 0])[-2]
    cuts = [20.0, float((below + target) / 2)]
    status, result = two.run(Task("stats.stability", "horizontal", [table[:300], table[300:]],
                                  [["income", "age", "period"]] * 2,
                                  {"period": "period", "splits": {"income": cuts, "age": [40.0]}},
                                  {"min_group_size": 5}), timeout=600)
    assert status == "ok", result
    bins, labels, _, _ = result["bins.income"]
    assert len(labels) == 2 and bins.min() >= 5, (labels, bins)  # the top bin (one row) went into the one below
    assert labels[-1].endswith("inf)")


def test_horizontal_cuts_at_the_pooled_baseline_s_deciles(two: Session) -> None:
    """No splits: income is cut at the deciles of both banks' baseline rows (found
    under MPC on the frame's grid), so each bin holds a tenth of the baseline rows
    to within a grid cell's rows."""
    rng = np.random.default_rng(8)
    tables = [population(rng, rows, shift=0.2) for rows in (3000, 2000)]
    status, result = two.run(Task("stats.stability", "horizontal", tables, [["income", "age", "period"]] * 2,
                                  {"period": "period"}, {"min_group_size": 1}), timeout=600)
    assert status == "ok", result
    pooled = np.vstack(tables)
    bins, labels, _, _ = result["bins.income"]
    edges = np.array([float(label.split(",")[0].strip("([")) for label in labels[1:]])
    expected, base, recent = psi(pooled[:, 0], pooled[:, 2], edges, 1)
    np.testing.assert_array_equal(bins, np.column_stack([base, recent]))
    assert len(edges) == 9 and np.all(np.abs(base - base.sum() / 10) <= 0.01 * base.sum()), base
    assert abs(result["stability"][0][0] - expected) <= 1e-4 * len(base)


@pytest.mark.parametrize("kind, parameters, vertical, inputs, message", [
    ("stats.stability", {"period": "p", "splits": {"p": [0.5]}}, False, [("a", ["x", "p"])], "not a feature"),
    ("stats.stability", {"period": "p"}, True, [("a", ["x", "p"]), ("b", ["y", "p"])], "exactly one party"),
    ("stats.stability", {"period": "p"}, False, [("a", ["x", "p"]), ("b", ["x"])], "every party"),
    ("stats.stability", {"period": "p"}, False, [("a", ["p"])], "besides the period"),
    ("features.select", {"label": "y", "max_correlation": 1.0}, False, [("a", ["x", "y"])], "max_correlation"),
    ("features.select", {"label": "y", "iv_min": -1}, False, [("a", ["x", "y"])], "iv_min"),
    ("features.binning", {"label": "y", "min_share": 0.7}, False, [("a", ["x", "y"])], "min_share"),
    ("features.binning", {"label": "y", "max_bins": 101}, False, [("a", ["x", "y"])], "max_bins"),
    ("features.woe_iv", {"label": "y", "monotone": "yes"}, False, [("a", ["x", "y"])], "monotone"),
])
def test_bad_requests_are_refused_at_submit(kind: str, parameters: dict, vertical: bool,
                                            inputs: list[tuple[str, list[str]]], message: str) -> None:
    """INVALID_ARGUMENT, naming the problem, before anything runs."""
    from mpc.catalogue.kinds import parse, validate_inputs
    from mpc.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=message):
        validate_inputs(kind, parse(kind, parameters), vertical, inputs, ["a"])


def test_a_period_other_than_0_or_1_is_refused_naming_it(two: Session) -> None:
    table = population(np.random.default_rng(9), 200, shift=0.0)
    table[5, 2] = 2.0
    status, answer = two.run(Task("stats.stability", "horizontal", [table[:100], table[100:]],
                                  [["income", "age", "period"]] * 2, {"period": "period"}))
    assert status == "refused" and "the period column 'period' must hold only 0 (baseline) and 1 (recent)" in answer
