"""features.binning and the merging constraints (min_share, monotone, max_bins)
against the same rules in numpy, applied in the program's order after the k-row
merges: vertical with the binning kind's defaults (20 bins to at most 10, each 5%
of the rows, a monotone event rate) and horizontal features.woe_iv with the
constraints set. Real CrypTen, one process per party."""

from __future__ import annotations

import numpy as np
import pytest
from statskit import Session, Task
from test_features_woe import credit

from mpc.programs.groups import merged as join  # (a run of violators pools into one: the lift table's merge)

pytestmark = pytest.mark.multiprocess


def paired(partition: list[list[int]], flags: np.ndarray) -> list[list[int]]:
    """Each flagged group with its next (which joins nothing else in the pass)."""
    out: list[list[int]] = []
    g = 0
    while g < len(partition):
        if flags[g] and g + 1 < len(partition):
            out, g = out + [partition[g] + partition[g + 1]], g + 2
        elif flags[g] and out:
            out, g = out[:-1] + [out[-1] + partition[g]], g + 1
        else:
            out, g = out + [partition[g]], g + 1
    return out


def binned(x: np.ndarray, y: np.ndarray, cuts: np.ndarray, k: int, share: float, monotone: bool,
           max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and events per final group: k-row merges, then the constraints."""
    fine = np.searchsorted(cuts, x, side="right")
    rows0 = np.bincount(fine, minlength=len(cuts) + 1).astype(np.int64)
    events0 = np.bincount(fine, weights=y, minlength=len(cuts) + 1).astype(np.int64)
    partition = [[b] for b in range(len(rows0))]

    def counts() -> tuple[np.ndarray, np.ndarray]:
        return np.array([rows0[g].sum() for g in partition]), np.array([events0[g].sum() for g in partition])

    def repeat(flagged, merge=join) -> None:  # type: ignore[no-untyped-def]
        nonlocal partition
        while len(partition) > 1:
            flags = flagged(*counts())
            if not flags.any():
                return
            partition = merge(partition, flags)

    repeat(lambda r, e: (e < k) | (r - e < k), paired)
    repeat(lambda r, e: r < share * len(x), paired)
    if monotone and len(partition) > 1:
        r, e = counts()
        rising = e[-1] * r[0] > e[0] * r[-1]
        repeat(lambda r, e: np.append(np.where(rising, e[:-1] * r[1:] > e[1:] * r[:-1],
                                               e[1:] * r[:-1] > e[:-1] * r[1:]), False))
    while max_bins and len(partition) > max_bins:
        r, _ = counts()
        flags = np.zeros(len(partition), dtype=bool)
        flags[int(np.argmin(r[:-1] + r[1:]))] = True
        partition = join(partition, flags)
    return counts()


def test_vertical_binning_with_a_risk_team_s_defaults(two: Session) -> None:
    """Income (default rate falling with it) and age at bank 0, the label at bank 1:
    each column's table is the numpy rules' on bank 0's 20 equal-frequency bins."""
    rng = np.random.default_rng(21)
    x, y = credit(rng, 5000)
    keys = np.array([f"k{i}" for i in range(len(y))])
    order = rng.permutation(len(y))
    status, result = two.run(Task("features.binning", "vertical", [x[:, :2], y[order, None]], [["income", "age"],
                                  ["bad"]], {"label": "bad"}, {"min_group_size": 5}, [keys, keys[order]]), timeout=600)
    assert status == "ok", result
    for j, name in enumerate(["income", "age"]):
        cuts = np.unique(np.quantile(x[:, j], np.linspace(0, 1, 21)[1:-1]))
        rows, events = binned(x[:, j], y, cuts, 5, 0.05, True, 10)
        table, labels, _, _ = result[f"woe.{name}"]
        np.testing.assert_array_equal(table[:, 1], rows, err_msg=name)
        np.testing.assert_array_equal(table[:, 2], events, err_msg=name)
        rates = events / rows
        assert len(rows) <= 10 and rows.min() >= 0.05 * len(y)
        assert np.all(np.diff(rates) <= 0) or np.all(np.diff(rates) >= 0), (name, rates)
    assert len(result["woe.income"][1]) > 2  # (a column the rules leave more than two bins)


def test_horizontal_constraints_at_each_bank(two: Session) -> None:
    """features.woe_iv with the constraints set, two banks at public splits: the
    pooled tables are the numpy rules' on the pooled rows."""
    rng = np.random.default_rng(22)
    parts = [credit(rng, 2500), credit(rng, 2000)]
    cuts = np.quantile(np.concatenate([p[0][:, 0] for p in parts]), np.linspace(0, 1, 16)[1:-1]).round(-2)
    tables = [np.column_stack([x[:, :1], y]) for x, y in parts]
    status, result = two.run(Task("features.woe_iv", "horizontal", tables, [["income", "bad"]] * 2,
                                  {"label": "bad", "splits": {"income": cuts.tolist()}, "min_share": 0.08,
                                   "monotone": True, "max_bins": 5}, {"min_group_size": 3}), timeout=600)
    assert status == "ok", result
    x, y = np.concatenate([p[0][:, 0] for p in parts]), np.concatenate([p[1] for p in parts])
    rows, events = binned(x, y, np.unique(cuts), 3, 0.08, True, 5)  # (the per-bank k rule merges nothing here)
    table, _, _, _ = result["woe.income"]
    np.testing.assert_array_equal(table[:, 1], rows)
    np.testing.assert_array_equal(table[:, 2], events)
    assert len(rows) == 5 and np.all(np.diff(events / rows) <= 0)
