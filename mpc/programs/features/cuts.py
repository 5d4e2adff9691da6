"""Where a feature column's rows fall among its bins: the cut points (given
splits, or equal-frequency points of a party's own values, printed exactly), the
bins' labels, and each row's bin, for the rows a job binned and for new rows (a
scorecard's held-out rows)."""

from __future__ import annotations

import numpy as np

DIGITS = 10
"""Significant digits of computed cut points (and of every bin label)."""


def decimal(found: np.ndarray) -> list[float]:
    """Computed cut points rounded to DIGITS significant digits, distinct: what the
    bin labels print is then exactly where the rows were cut."""
    return sorted({float(f"{c:.{DIGITS}g}") for c in found})


def points(values: np.ndarray, splits: tuple[float, ...] | None, bins: int,
           reference: np.ndarray | None = None) -> np.ndarray:
    """The cut points: `splits`, else the distinct quantiles of the `reference`
    rows' values (all rows' where None) that leave none of their bins empty."""
    if splits is not None:
        return np.asarray(splits, dtype=np.float64)
    base = values if reference is None or not reference.any() else values[reference]
    if not len(base):
        return np.zeros(0)
    found = np.array(decimal(np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1])))
    return found[found > base.min()]


def labels(cut: np.ndarray) -> list[str]:
    """The bins' labels: (-inf, c1), [c1, c2), ..., [cm, inf)."""
    ends = ["-inf", *(f"{c:.{DIGITS}g}" for c in cut), "inf"]  # (computed cuts: exactly these, `decimal`)
    return [f"{'(' if b == 0 else '['}{ends[b]}, {ends[b + 1]})" for b in range(len(cut) + 1)]


def located(cut: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's bin."""
    return np.searchsorted(cut, values, side="right")


def category_bins(table: np.ndarray, columns: list[str], name: str, levels: list[str]) -> np.ndarray:
    """Each row's category (its bin) from the one-hot columns `name=level`."""
    return np.argmax(table[:, [columns.index(f"{name}={level}") for level in levels]], axis=1)
