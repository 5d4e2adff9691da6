"""A job's result for a page: every value as a table, and pictures where a value
has a shape people read better drawn: training loss by epoch (a line), a
histogram per column (bars), a correlation or cross-tabulation (a heat map) and
a model's cumulative gains by decile (a line against chance). Charts are data
here; the page draws lines and bars with the vendored Chart.js and heat maps as
coloured tables (no inline styles: the console's CSP forbids them)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.client.results import Result, number

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
            columns = result.column_labels.get(name) or (
                labels if array.shape[1] == len(labels) else [str(j) for j in range(array.shape[1])])
            down = labels if len(labels) == array.shape[0] else [str(i) for i in range(array.shape[0])]
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
            charts.append(_heat(name, labels, result.column_labels.get(name) or labels, array))
        elif name == "lift" and array.ndim == 2 and len(array) > 0:
            gain = array[:, 5]  # LIFT_COLUMNS: rows, events, event rate, mean score, cumulative events, gain, ...
            share = np.cumsum(array[:, 0]) / array[:, 0].sum()
            charts.append(_line(name, "cumulative gains (share of events found, by share of rows)",
                                [f"{100 * s:.0f}%" for s in share], [("model", gain), ("chance", share)]))
    return charts


def _line(name: str, title: str, x: list[str], series: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    return {"type": "line", "title": title, "name": name, "labels": x,
            "series": [{"name": label, "values": _finite(values)} for label, values in series]}


def _heat(name: str, rows: list[str], columns: list[str], array: np.ndarray) -> dict[str, Any]:
    """A heat map: correlations on [-1, 1]; counts scaled to their largest."""
    scale = 1.0 if name == "correlation" else float(np.nanmax(np.abs(array))) or 1.0
    cells = [[{"text": _cell(v), "heat": "heat-none" if math.isnan(v)
               else f"heat-{round((np.clip(v / scale, -1, 1) + 1) / 2 * HEAT_STEPS)}"} for v in row] for row in array]
    return {"type": "heatmap", "title": name, "rows": [str(r) for r in rows] or [str(i) for i in range(len(array))],
            "columns": [str(c) for c in columns] or [str(j) for j in range(array.shape[1])], "cells": cells}


def _finite(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _cell(value: float) -> str:
    return "withheld" if math.isnan(value) else number(float(value))
