"""A job's result as the SDK returns it (`Result`, also `gateway.client.sdk.Result`), as
one table, and that table as a file (CSV, Parquet, JSON).

A result is named values, each a scalar, a vector labelled by its rows (a
statistic per column, a coefficient per feature) or a matrix (a correlation, a
histogram per column). The combined table has one row per vector, per matrix row
and per scalar, named in its first column `statistic` ("mean", "correlation
[income]"); the other columns are the labels the values carry, in order of first
appearance ("income", "age", or a histogram's bins), and a scalar's is `value`.
For a statistics job that is the table `mpcgate demo` shows: statistics down,
the data's columns across. A withheld value (too few rows behind it) is null.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mpc.errors import FailedPrecondition, InvalidArgument

FORMATS = (".csv", ".parquet", ".json")


@dataclass(frozen=True)
class Result:
    """A job's revealed statistics: name -> array, with the labels of its rows and
    (where they differ, e.g. histogram bins) of its columns. Entries withheld
    because too few rows were behind them are NaN and listed in `suppressed`."""

    job_id: str
    values: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    provider: str
    column_labels: dict[str, list[str]] = field(default_factory=dict)
    suppressed: dict[str, list[int]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def table(self) -> Any:
        """The whole result as one pyarrow Table (see above): statistics down,
        the labels they carry (the data's columns) across; withheld values null."""
        return combined(self.values, self.labels, self.column_labels)

    def to_pandas(self) -> Any:
        """`table()` as a pandas DataFrame indexed by statistic (needs pandas)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise FailedPrecondition("Result.to_pandas needs pandas (pip install pandas); table() gives pyarrow") from None
        return self.table().to_pandas().set_index("statistic")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Vectors as {label: value}; matrices as {row label: {column label: value}}."""
        out: dict[str, dict[str, Any]] = {}
        for name, array in self.values.items():
            labels = self.labels.get(name) or [str(i) for i in range(array.shape[0] if array.ndim else 1)]
            if array.ndim == 2 and array.shape[0] == len(labels):
                _, columns = axes(array, labels, self.column_labels.get(name) or [])
                out[name] = {r: dict(zip(columns, map(float, row))) for r, row in zip(labels, array)}
            else:
                out[name] = dict(zip(labels, map(float, np.atleast_1d(array))))
        return out


def combined(values: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[str]],
             column_labels: Mapping[str, Sequence[str]]) -> pa.Table:
    """The result's values as one table (see the module's docstring)."""
    rows: list[tuple[str, dict[str, float]]] = []
    for name, array in values.items():
        own = list(labels.get(name) or [])
        array = np.asarray(array, dtype=np.float64)
        if array.ndim == 0 or array.size == 1 and not own:
            rows.append((name, {"value": float(array.reshape(-1)[0])}))
        elif array.ndim == 1:
            rows.append((name, dict(zip(own or [str(i) for i in range(array.size)], map(float, array)))))
        else:
            down, across = axes(array, own, column_labels.get(name) or [])
            rows += [(f"{name} [{r}]", dict(zip(across, map(float, row)))) for r, row in zip(down, array)]
    columns: dict[str, None] = {}
    for _, cells in rows:
        columns.update(dict.fromkeys(cells))
    data: dict[str, list[Any]] = {"statistic": [name for name, _ in rows]}
    for column in columns:
        data[column] = [_cell(cells.get(column)) for _, cells in rows]
    return pa.table({k: pa.array(v, type=pa.string() if k == "statistic" else pa.float64()) for k, v in data.items()})


def axes(matrix: np.ndarray, labels: Sequence[str], column_labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """A matrix value's row and column labels: its own where they fit (a square
    matrix, such as a correlation, takes its row labels across too), else positions."""
    rows, columns = matrix.shape
    down = [str(r) for r in labels] if len(labels) == rows else [str(i) for i in range(rows)]
    across = column_labels or (labels if len(labels) == columns else [str(j) for j in range(columns)])
    return down, [str(c) for c in across]


def _cell(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def write(table: pa.Table, path: Path) -> Path:
    """Writes `table` as the file's suffix says; the file appears whole or not at all."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidArgument(f"cannot write {path.name}: the file must end in {', '.join(FORMATS)}")
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, scratch)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, scratch)
        else:
            Path(scratch).write_text(json.dumps(table.to_pylist(), indent=2, allow_nan=False) + "\n")
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return path


def number(value: float, full: bool = False) -> str:
    """A value for people: thousands separators and 6 significant digits, or with
    `full` every digit a float64 holds (its shortest exact form)."""
    if math.isnan(value):
        return "suppressed"
    if full:
        text = repr(float(value))
        if "e" in text or "inf" in text:
            return text
        whole, dot, rest = text.lstrip("-").partition(".")
        return f"{'-' if text.startswith('-') else ''}{int(whole):,}{dot}{rest}"
    if value != 0 and not 1e-4 <= abs(value) < 1e15:
        return f"{value:.6g}"
    if abs(value) < 1:
        return f"{value:.6g}"
    text = f"{value:,.{max(0, 6 - len(str(int(abs(value)))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
