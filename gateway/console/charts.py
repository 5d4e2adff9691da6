"""A job's result for a page: every value as a table, and pictures where a value
has a shape people read better drawn: training loss by epoch (a line), a
histogram per column (bars), a correlation or cross-tabulation (a heat map) and
a model's cumulative gains, KS and ROC curves at its lift table's deciles. Charts are data
here; the page draws lines and bars with the vendored Chart.js and heat maps as
coloured tables (no inline styles: the console's CSP forbids them)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.client.results import Result, axes, number

HEAT_STEPS = 10
"""Colour classes of a heat map cell (heat-0 .. heat-10, from -1 to 1)."""


def tables(result: Result) -> list[dict[str, Any]]:
    """Each value as {name, columns, rows}: rows of [label, cells...]; a withheld
    cell reads "withheld"."""
    out = []
    for name, array in result.values.items():
        array = np.asarray(array, dtype=np.float64)
        labels = result.labels.get(name) or []
        if array.ndim == 2:
            down, columns = axes(array, labels, result.column_labels.get(name) or [])
            rows = [[r, *(_cell(v) for v in row)] for r, row in zip(down, array)]
        else:
            flat = array.reshape(-1)
            columns = labels if len(labels) == flat.size else [str(i) for i in range(flat.size)]
            rows = [[name, *(_cell(v) for v in flat)]]
        out.append({"name": name, "columns": [str(c) for c in columns], "rows": rows})
    return out


def of(result: Result) -> list[dict[str, Any]]:
    """The result's pictures (see the module's docstring), in the result's order."""
    charts: list[dict[str, Any]] = []
    for name, array in result.values.items():
        array = np.asarray(array, dtype=np.float64)
        labels = result.labels.get(name) or []
        if name == "loss" and array.size > 1:
            series = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array[None, :]
            charts.append(_line(name, "training loss by epoch", [str(i + 1) for i in range(series.shape[1])],
                                [(labels[i] if len(labels) == len(series) else f"class {i}", s)
                                 for i, s in enumerate(series)]))
        elif name == "histogram" and array.ndim == 2:
            bins = [str(b) for b in result.column_labels.get(name) or range(array.shape[1])]
            for column, counts in zip(labels or [str(i) for i in range(len(array))], array):
                charts.append({"type": "bar", "title": f"histogram of {column}", "labels": bins,
                               "series": [{"name": "rows", "values": _finite(counts)}]})
        elif name in ("correlation", "crosstab", "frequencies") and array.ndim == 2 and array.size > 1:
            charts.append(_heat(name, *axes(array, labels, result.column_labels.get(name) or []), array))
        elif name == "lift" and array.ndim == 2 and len(array) > 1 and not np.isnan(array[:, :2]).any():
            charts += _ranking(array)
    return charts


def _ranking(lift: np.ndarray) -> list[dict[str, Any]]:
    """Cumulative gains, the KS curves and the ROC curve at the lift table's
    resolution (its decile groups, best scores first): drawn from the released
    table alone, so they show nothing the table does not."""
    rows, events = lift[:, 0], lift[:, 1]  # LIFT_COLUMNS: rows, events, event rate, mean score, ...
    share = np.concatenate([[0.0], np.cumsum(rows) / rows.sum()])  # from the origin: no row chosen yet
    found = np.concatenate([[0.0], np.cumsum(events) / max(events.sum(), 1.0)])
    others = np.concatenate([[0.0], np.cumsum(rows - events) / max((rows - events).sum(), 1.0)])
    labels = [f"{100 * s:.0f}%" for s in share]
    gap = int(np.argmax(found - others))
    return [
        _line("gains", "cumulative gains (share of events found, by share of rows)", labels,
              [("model", found), ("chance", share)]),
        _line("ks", f"KS: cumulative events and non-events by share of rows (largest gap {found[gap] - others[gap]:.3f} "
              f"at {labels[gap]})", labels, [("events", found), ("non-events", others)]),
        {"type": "xy", "title": "ROC (true positive rate against false positive rate, at the deciles' cut-offs)",
         "series": [{"name": "model", "points": [[float(o), float(f)] for o, f in zip(others, found)]},
                    {"name": "chance", "points": [[0.0, 0.0], [1.0, 1.0]]}]},
    ]


def _line(name: str, title: str, x: list[str], series: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    return {"type": "line", "title": title, "name": name, "labels": x,
            "series": [{"name": label, "values": _finite(values)} for label, values in series]}


def _heat(name: str, rows: list[str], columns: list[str], array: np.ndarray) -> dict[str, Any]:
    """A heat map: correlations on [-1, 1]; counts scaled to their largest."""
    scale = 1.0 if name == "correlation" else float(np.nanmax(np.abs(array))) or 1.0
    cells = [[{"text": _cell(v), "heat": "heat-none" if math.isnan(v)
               else f"heat-{round((np.clip(v / scale, -1, 1) + 1) / 2 * HEAT_STEPS)}"} for v in row] for row in array]
    return {"type": "heatmap", "title": name, "rows": rows, "columns": columns, "cells": cells}


def _finite(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _cell(value: float) -> str:
    return "withheld" if math.isnan(value) else number(float(value))
