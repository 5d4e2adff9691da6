"""A released scorecard (model.scorecard's `points.<column>` tables) as a card a
risk team files and applies: one row per (column, bin) with its points, exported
as CSV or JSON, and applied to new rows where the card is whole (a horizontal
job's receiver holds every column's table; a vertical job gives each bank the
tables of its own columns, and its `score` then sums only its own part).

A row's score is the sum over the card's columns of its bin's points (the
intercept and the score's offset are spread over the columns' points, as
model.scorecard releases them). A numeric bin is the label the job printed,
"(-inf, c1)", "[c1, c2)", ..., "[cm, inf)": exactly where the rows were cut; a
categorical bin lists its categories ("retail|sme"). Client side: imports no
server code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gateway.client.results import Result, write
from mpc.errors import FailedPrecondition, InvalidArgument

PREFIX = "points."
FIELDS = ("points", "woe", "rows", "events")


@dataclass(frozen=True)
class Bins:
    """One column's bins: numeric (`cuts`: the m cut points of m + 1 bins) or
    categorical (`categories`: each bin's categories)."""

    name: str
    labels: list[str]
    table: np.ndarray  # bins x FIELDS
    cuts: np.ndarray | None
    categories: list[list[str]] | None

    def located(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin; a missing value or an unknown category is refused by name."""
        if self.cuts is not None:
            numbers = np.asarray(values, dtype=np.float64)
            if not np.all(np.isfinite(numbers)):
                raise InvalidArgument(f"column {self.name!r}: a missing or infinite value has no bin on this card")
            return np.searchsorted(self.cuts, numbers, side="right")
        assert self.categories is not None
        where = {category: b for b, members in enumerate(self.categories) for category in members}
        unknown = sorted({str(v) for v in values} - where.keys())
        if unknown:
            raise InvalidArgument(f"column {self.name!r}: categories {unknown[:5]} are not on this card")
        return np.array([where[str(v)] for v in values], dtype=np.int64)


@dataclass(frozen=True)
class Scorecard:
    """The columns' bins and points a scorecard job released to this receiver."""

    job_id: str
    columns: list[Bins]

    @classmethod
    def from_result(cls, result: Result) -> Scorecard:
        columns = [_bins(name.removeprefix(PREFIX), result.labels[name], result.values[name])
                   for name in result.values if name.startswith(PREFIX)]
        if not columns:
            raise FailedPrecondition(f"job {result.job_id}'s result holds no scorecard tables (points.<column>): "
                                     "a model.scorecard job releases them to its receivers")
        return cls(result.job_id, columns)

    def score(self, rows: Mapping[str, Any]) -> np.ndarray:
        """Each row's points: `rows` maps every card column to its values (a dict
        of arrays, a pyarrow Table or a pandas DataFrame)."""
        missing = [c.name for c in self.columns if c.name not in _names(rows)]
        if missing:
            raise InvalidArgument(f"the rows lack the card's columns {missing}")
        parts = [c.table[c.located(_values(rows, c.name)), 0] for c in self.columns]
        return np.asarray(np.sum(parts, axis=0), dtype=np.float64)

    def scored(self, rows: pa.Table) -> pa.Table:
        """`rows` with their `score` appended."""
        return rows.append_column("score", pa.array(self.score(rows), type=pa.float64()))

    def table(self) -> pa.Table:
        """One row per (column, bin): its label, numeric ends or categories, points,
        WOE, rows and events."""
        records = []
        for c in self.columns:
            for b, label in enumerate(c.labels):
                lower, upper = _ends(c, b)
                records.append({"column": c.name, "bin": label, "lower": lower, "upper": upper,
                                "categories": "|".join(c.categories[b]) if c.categories else None,
                                **{f: float(c.table[b, i]) for i, f in enumerate(FIELDS)}})
        return pa.Table.from_pylist(records)

    def write(self, path: Path) -> Path:
        """CSV (the table), or JSON (the card by column, infinite ends as null)."""
        if path.suffix.lower() != ".json":
            return write(self.table(), path)
        rows = self.table().to_pylist()
        for row in rows:
            row.update({k: None for k in ("lower", "upper") if row[k] is not None and math.isinf(row[k])})
        columns = [{"name": c.name, "type": "numeric" if c.cuts is not None else "categorical",
                    "bins": [{k: v for k, v in row.items() if k != "column"} for row in rows if row["column"] == c.name]}
                   for c in self.columns]
        card = {"job_id": self.job_id, "kind": "model.scorecard", "score": "sum over columns of the row's bin's points",
                "columns": columns}
        scratch = path.with_name(f".{path.name}.tmp")
        scratch.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
        scratch.replace(path)
        return path


def read_rows(path: Path) -> pa.Table:
    """Rows to score from a local CSV or Parquet file (categorical cells as text)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix != ".csv":
        raise InvalidArgument(f"cannot read {path.name}: rows to score must be a .csv or .parquet file")
    import pyarrow.csv as pcsv

    return pcsv.read_csv(path)


def _bins(name: str, labels: list[str], table: np.ndarray) -> Bins:
    """A column's bins from the labels the job printed: numeric where they run from
    "(-inf, c1)" through "[cm, inf)", else categories joined by '|'."""
    if labels[0].startswith("(-inf, ") and labels[-1].endswith(", inf)") and all(
            label[:1] in "([" and label.endswith(")") and ", " in label for label in labels):
        cuts = np.array([float(label[1:-1].split(", ")[0]) for label in labels[1:]])
        if np.any(np.diff(cuts) <= 0):
            raise FailedPrecondition(f"column {name!r}: the card's bins {labels} are not in order")
        return Bins(name, labels, table, cuts, None)
    return Bins(name, labels, table, None, [label.split("|") for label in labels])


def _ends(column: Bins, b: int) -> tuple[float | None, float | None]:
    if column.cuts is None:
        return None, None
    ends = [-math.inf, *column.cuts.tolist(), math.inf]
    return ends[b], ends[b + 1]


def _names(rows: Any) -> list[str]:
    return list(rows.column_names) if isinstance(rows, pa.Table) else list(rows.keys())


def _values(rows: Any, name: str) -> np.ndarray:
    column = rows[name]
    if isinstance(column, pa.ChunkedArray):
        return np.asarray(column.to_pylist(), dtype=object if pa.types.is_string(column.type) else np.float64)
    return np.asarray(column)
