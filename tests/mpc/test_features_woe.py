"""features.woe_iv against optbinning's formulas (WoE = ln(p_nonevent / p_event),
IV = sum (p_nonevent - p_event) WoE, binning_statistics.py) in float64 on the same
bins: vertical (the label at another party) and horizontal, merging of short
bins, and a curious partner's one-row bin. Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from statskit import Session, Task

pytestmark = pytest.mark.multiprocess


def reference(x: np.ndarray, y: np.ndarray, cuts: np.ndarray, k: int) -> tuple[np.ndarray, float, np.ndarray,
                                                                                np.ndarray]:
    """WoE per bin, IV, rows and events per bin, as optbinning computes them, after
    pairing each bin of fewer than k events or non-events with the next (the last
    with the one before; a bin paired in a pass joins nothing else in it) until
    none is left."""
    bins = np.searchsorted(cuts, x, side="right")
    rows = np.bincount(bins, minlength=len(cuts) + 1)
    events = np.bincount(bins, weights=y, minlength=len(cuts) + 1)
    while len(rows) > 1:
        small = (events < k) | (rows - events < k)
        if not small.any():
            break
        groups: list[list[int]] = []
        g = 0
        while g < len(rows):
            if small[g] and g + 1 < len(rows):
                groups.append([g, g + 1])
                g += 2
                continue
            if small[g] and groups:
                groups[-1].append(g)
            else:
                groups.append([g])
            g += 1
        rows, events = np.array([rows[g].sum() for g in groups]), np.array([events[g].sum() for g in groups])
    p_event, p_non = events / y.sum(), (rows - events) / (len(y) - y.sum())
    woe = np.log(p_non / p_event)
    return woe, float(((p_non - p_event) * woe).sum()), rows, events


def credit(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Three features (lognormal income, a weak one, a noise one), a 10% default rate."""
    x = np.column_stack([rng.lognormal(10, 0.6, rows), rng.normal(40, 12, rows), rng.normal(0, 1, rows)])
    logit = -2.6 - 1.2 * (np.log(x[:, 0]) - 10) / 0.6 + 0.3 * (x[:, 1] - 40) / 12
    return x, (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)


def test_vertical_woe_and_iv_match_optbinning_s_formulas(two: Session) -> None:
    rng = np.random.default_rng(1)
    x, y = credit(rng, 3000)
    names = ["income", "age", "noise"]
    keys = [np.array([f"k{i}" for i in range(len(y))])] * 2
    status, result = two.run(Task("features.woe_iv", "vertical", [x, y[:, None]], [names, ["defaulted"]],
                                  {"label": "defaulted", "bins": 8}, {"min_group_size": 5}, keys), timeout=600)
    assert status == "ok", result
    assert result["count"][0][0] == len(y)
    for j, name in enumerate(names):
        cuts = np.unique(np.quantile(x[:, j], np.linspace(0, 1, 9)[1:-1]))
        woe, iv, rows, events = reference(x[:, j], y, cuts, 5)
        table, labels, columns, _ = result[f"woe.{name}"]
        assert columns == ["woe", "rows", "events"] and len(labels) == len(woe)
        np.testing.assert_array_equal(table[:, 1], rows)
        np.testing.assert_array_equal(table[:, 2], events)
        np.testing.assert_allclose(table[:, 0], woe, atol=1e-4)
        assert abs(result["iv"][0][j] - iv) <= 1e-4 * len(woe), (name, result["iv"][0][j], iv)
    assert result["iv"][0][0] > 0.3 > result["iv"][0][2]  # income predicts, noise does not


def test_three_banks_a_categorical_column_and_tables_only_for_their_owners(three: Session) -> None:
    """Income at bank 0 (the receiver), region (categorical) at bank 1, the label
    at bank 2, keys shuffled: bank 0 gets every IV and its own column's table, not
    bank 1's (its bins are bank 1's own)."""
    from mpc.catalogue.context import Vocabulary

    rng = np.random.default_rng(2)
    x, y = credit(rng, 2400)
    regions = ("east", "north", "south", "west")
    region = rng.choice(4, len(y), p=[0.1, 0.3, 0.3, 0.3])
    y = np.where(region == 3, rng.random(len(y)) < 0.25, y.astype(bool)).astype(np.float64)  # the west defaults more
    keys = np.array([f"c{i}" for i in range(len(y))], dtype=object)
    orders = [rng.permutation(len(y)) for _ in range(3)]
    tables = [x[orders[0], :1], region[orders[1], None].astype(np.float64), y[orders[2], None]]
    status, result = three.run(Task("features.woe_iv", "vertical", tables, [["income"], ["region"], ["bad"]],
                                    {"label": "bad", "bins": 5}, {"min_group_size": 10}, [keys[o] for o in orders],
                                    categories=[{}, {"region": Vocabulary(regions)}, {}]), timeout=600)
    assert status == "ok", result
    assert "woe.income" in result and "woe.region" not in result
    cuts = np.unique(np.quantile(x[:, 0], np.linspace(0, 1, 6)[1:-1]))
    woe, iv, _, _ = reference(x[:, 0], y, cuts, 10)
    np.testing.assert_allclose(result["woe.income"][0][:, 0], woe, atol=1e-4)
    assert result["iv"][1] == ["income", "region"]
    assert abs(result["iv"][0][0] - iv) <= 1e-4 * len(woe)
    _, iv, _, _ = reference(region.astype(np.float64), y, np.array([1.0, 2.0, 3.0]), 10)
    assert abs(result["iv"][0][1] - iv) <= 1e-3


def test_horizontal_bins_pool_every_bank_s_rows_and_follow_each_bank_s_rule(two: Session) -> None:
    """Two banks cut at the same splits; a bin holding 1 to k-1 events of one bank
    (though more pooled) is merged: the other bank would read them off the pooled
    count."""
    rng = np.random.default_rng(3)
    parts = [credit(rng, 1500), credit(rng, 1200)]
    cuts = [9000.0, 15000.0, 22000.0, 30000.0, 45000.0]
    tables = [np.column_stack([x[:, :2], y]) for x, y in parts]
    status, result = two.run(Task("features.woe_iv", "horizontal", tables, [["income", "age", "bad"]] * 2,
                                  {"label": "bad", "splits": {"income": cuts, "age": [30.0, 40.0, 50.0]}},
                                  {"min_group_size": 8}), timeout=600)
    assert status == "ok", result
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    assert result["iv"][1] == ["income", "age"]  # (once each, though every bank holds them)
    for j, name in enumerate(["income", "age"]):
        table, labels, _, _ = result[f"woe.{name}"]
        assert table[:, 1].sum() == len(y) and table[:, 2].sum() == y.sum()
        # each released group holds, at every bank, no events or at least 8, and no non-events or at least 8
        edges = np.array([float(label.split(",")[0].strip("([")) for label in labels[1:]])
        for bank_x, bank_y in parts:
            group = np.searchsorted(edges, bank_x[:, j], side="right")
            events = np.bincount(group, weights=bank_y, minlength=len(labels))
            non_events = np.bincount(group, weights=1 - bank_y, minlength=len(labels))
            assert all(((v == 0) | (v >= 8)).all() for v in (events, non_events)), (name, events, non_events)
        woe, iv, _, _ = reference(x[:, j], y, edges, 1)
        np.testing.assert_allclose(table[:, 0], woe, atol=1e-4)
        assert abs(result["iv"][0][j] - iv) <= 1e-4 * len(woe)


def test_a_partner_s_one_row_bin_is_merged_not_read(two: Session) -> None:
    """The attack: the feature's owner cuts its column around one customer's value,
    so that customer's bin holds that row alone, and would read the label off its
    WOE (or its event count). The bin is merged with its neighbour: no released
    group holds fewer than k events or non-events."""
    rng = np.random.default_rng(4)
    x, y = credit(rng, 2000)
    target = float(np.sort(x[:, 0])[1000])
    cuts = [target - 1e-6, target + 1e-6]  # a bin of one row, between two large ones
    keys = [np.array([f"k{i}" for i in range(len(y))])] * 2
    status, result = two.run(Task("features.woe_iv", "vertical", [x[:, :1], y[:, None]], [["income"], ["bad"]],
                                  {"label": "bad", "splits": {"income": cuts}}, {"min_group_size": 10}, keys),
                             timeout=600)
    assert status == "ok", result
    table, labels, _, _ = result["woe.income"]
    assert len(labels) == 2  # three bins, the one-row bin merged into the next
    events, non_events = table[:, 2], table[:, 1] - table[:, 2]
    assert (events >= 10).all() and (non_events >= 10).all()


def test_horizontal_bins_without_splits_are_the_pooled_quantiles(three: Session) -> None:
    """No splits: each numeric column is cut at the pooled rows' equal-frequency
    points, found under MPC on the frame's grid (cells of 2^-15, refined): every bin
    holds a fifth of the rows to within the rows of one grid cell, and the WOE
    and IV are optbinning's at those cuts, an outlier notwithstanding."""
    rng = np.random.default_rng(14)
    parts = [credit(rng, rows) for rows in (2000, 1500, 1000)]
    parts[1][0][0, 0] = 1e9  # an outlier: the frame spans 2^30, the bulk below 2^18 (the cuts are refined in it)
    tables = [np.column_stack([x[:, :2], y]) for x, y in parts]
    status, result = three.run(Task("features.woe_iv", "horizontal", tables, [["income", "age", "bad"]] * 3,
                                    {"label": "bad", "bins": 5}, {"min_group_size": 1}), timeout=600)
    assert status == "ok", result  # (k = 1: no bin merged, so every cut shows)
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    for j, name in enumerate(["income", "age"]):
        table, labels, _, _ = result[f"woe.{name}"]
        edges = np.array([float(label.split(",")[0].strip("([")) for label in labels[1:]])
        assert len(edges) == 4, labels
        cell = 4.5 * (x[:, j].max() - x[:, j].min()) / 2**15  # (the frame spans 2 to 4 times the range, x 1.125)
        for k, edge in enumerate(edges, start=1):
            assert (x[:, j] < edge).sum() >= k * len(y) / 5 > (x[:, j] < edge - cell).sum(), (name, k, edge)
        woe, iv, rows, _ = reference(x[:, j], y, edges, 1)
        np.testing.assert_array_equal(table[:, 1], rows)
        assert np.all(np.abs(rows - len(y) / 5) <= 0.01 * len(y)), (name, rows)
        np.testing.assert_allclose(table[:, 0], woe, atol=1e-4)
        assert abs(result["iv"][0][j] - iv) <= 1e-4 * len(woe)
