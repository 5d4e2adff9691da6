"""Columnar ingest: a dataset's file is parsed once, at registration, by pyarrow's
vectorised readers, validated (every numeric cell a finite number or missing, errors
naming the file, the column and the row; missing cells stored as nulls), and written as an Arrow IPC file keyed by the
file's SHA-256. A job reads only its columns from that cache, memory-mapped, in
its worker process: no parsing per job, nothing on the gateway's event loop, and
no table through the worker's pipe.

A CSV's header is read by Python's csv module (a UTF-8 byte-order mark is not
part of a name); blank lines are skipped; a row is numbered as a person counts
lines (the header is row 1); cells are trimmed of surrounding whitespace before
they are read as numbers.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc.catalogue.context import Vocabulary
from mpc.errors import FailedPrecondition, InvalidArgument

SUFFIX = ".arrow"
MISSING = ("", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null", "None", "#N/A", "?", ".")
"""Cells read as missing (after trimming): pandas' and R's markers, UCI's "?" and SAS's "."."""
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$"
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Parsed:
    """A file's columns by name (pyarrow arrays), before validation."""

    path: Path
    header: list[str]
    table: Any  # pyarrow.Table
    first_row: int  # the row number of the first data row (CSV: 2, Parquet: 1)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def numeric(self, name: str) -> np.ndarray:
        """The column as float64, NaN where a cell is missing (MISSING, a Parquet
        null or NaN); any other cell that is not a finite number is refused."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.table.column(name).combine_chunks()
        try:
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                trimmed = pc.utf8_trim_whitespace(column)
                blank = pc.is_in(trimmed, value_set=pa.array(MISSING))
                values = pc.cast(pc.if_else(blank, pa.scalar(None, trimmed.type), trimmed), pa.float64())
            else:
                values = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise self._not_a_number(name, column) from None
        array = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # nulls: NaN
        bad = np.flatnonzero(np.isinf(array))
        if len(bad):
            cell = column[int(bad[0])].as_py()
            raise InvalidArgument(f"{self.path.name}: column {name!r}, row {int(bad[0]) + self.first_row}: "
                                  f"{str(cell).strip()} is not a finite number")
        return array

    def textual(self, name: str) -> bool:
        """Whether no present cell of the column reads as a number (a categorical
        column, unless declared otherwise)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.table.column(name).combine_chunks()
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return False
        trimmed = pc.utf8_trim_whitespace(column)
        present = pc.invert(pc.is_in(trimmed, value_set=pa.array(MISSING)))
        numbers = pc.and_(present, pc.match_substring_regex(trimmed, NUMBER))
        return not pc.any(numbers).as_py() and bool(pc.any(present).as_py())

    def categorical(self, name: str) -> tuple[np.ndarray, list[str]]:
        """The column as codes into its vocabulary (its distinct trimmed values,
        sorted), float64, NaN where a cell is missing."""
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pc.utf8_trim_whitespace(pc.cast(self.table.column(name).combine_chunks(), pa.string()))
        text = pc.if_else(pc.is_in(text, value_set=pa.array(MISSING)), pa.scalar(None, pa.string()), text)
        vocabulary = sorted(v for v in pc.unique(text).to_pylist() if v is not None)
        if len(vocabulary) > MAX_CATEGORIES:
            raise InvalidArgument(f"{self.path.name}: column {name!r} has {len(vocabulary)} distinct values; a "
                                  f"categorical column has at most {MAX_CATEGORIES} (is it a key, or free text?)")
        codes = pc.index_in(text, value_set=pa.array(vocabulary, type=pa.string()))
        return codes.to_numpy(zero_copy_only=False).astype(np.float64), vocabulary

    def missing_row(self, name: str, values: np.ndarray) -> str:
        """Where the column's first missing cell is, as a person counts rows."""
        return f"{self.path.name}: column {name!r}, row {int(np.flatnonzero(np.isnan(values))[0]) + self.first_row}"

    def _not_a_number(self, name: str, column: Any) -> InvalidArgument:
        """(Only on the error path: find the first cell that is not a number.)"""
        for r, cell in enumerate(column.to_pylist()):
            if cell is None or str(cell).strip() in MISSING:
                continue
            try:
                float(str(cell).strip())
            except ValueError:
                return InvalidArgument(f"{self.path.name}: column {name!r}, row {r + self.first_row}: not a number "
                                       "(nor a missing cell: empty, NA, NaN, null, ...)")
        return InvalidArgument(f"{self.path.name}: column {name!r}: not a number")

    def keys(self, name: str) -> list[str]:
        return [str(k) if k is not None else "" for k in self.table.column(name).to_pylist()]


def parse(path: Path, parquet: bool) -> Parsed:
    parsed = _parquet(path) if parquet else _csv(path)
    if not parsed.header:
        raise InvalidArgument(f"{path.name}: the file is empty")
    seen: set[str] = set()
    for name in parsed.header:
        if not name.strip():
            raise InvalidArgument(f"{path.name}: a column has an empty name")
        if name in seen:
            raise InvalidArgument(f"{path.name}: column {name!r} appears more than once in the header")
        seen.add(name)
    if parsed.rows == 0:
        raise InvalidArgument(f"{path.name}: the table has no rows")
    return parsed


def _csv(path: Path) -> Parsed:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(io.StringIO(f.readline())), [])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InvalidArgument(f"{path.name}: cannot read as CSV: {err}") from None
    if not header:
        return Parsed(path, [], pa.table({}), 2)
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pcsv.read_csv(
            path, read_options=pcsv.ReadOptions(skip_rows=1, column_names=header, use_threads=True),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (OSError, pa.ArrowException) as err:
        raise InvalidArgument(f"{path.name}: cannot read as CSV: {err}") from None
    if invalid:
        raise _ragged(path, len(header))
    return Parsed(path, header, table, 2)


def _ragged(path: Path, width: int) -> InvalidArgument:
    """(Only on the error path: pyarrow's parallel reader does not number rows.)"""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = (row for row in csv.reader(f) if row)
        next(rows, None)
        for number, row in enumerate(rows, start=2):
            if len(row) != width:
                return InvalidArgument(f"{path.name}: row {number} has {len(row)} fields, the header {width}")
    return InvalidArgument(f"{path.name}: a row's fields do not match the header's {width}")


def _parquet(path: Path) -> Parsed:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InvalidArgument(f"{path.name}: cannot read as Parquet: {err}") from None
    return Parsed(path, list(table.column_names), table, 1)


@dataclass(frozen=True)
class Profile:
    """What registration records of each column: its missing cells, and a
    categorical column's vocabulary."""

    missing: dict[str, int]
    categories: dict[str, list[str]]


def write_cache(cache: Path, parsed: Parsed, numeric: list[str], key_column: str,
                complete: frozenset[str] = frozenset(), categorical: frozenset[str] = frozenset()) -> Profile:
    """The validated columns (float64, nulls where missing; a categorical column
    as codes into its vocabulary) and the key column (text) as an Arrow IPC file,
    written atomically; each column's profile. A column declared `complete` may
    have no missing cell."""
    import pyarrow as pa

    values, categories = {}, {}
    for name in numeric:
        if name in categorical:
            values[name], categories[name] = parsed.categorical(name)
        else:
            values[name] = parsed.numeric(name)
    missing = {name: int(np.isnan(v).sum()) for name, v in values.items()}
    for name in numeric:
        if name in complete and missing[name]:
            raise InvalidArgument(f"{parsed.missing_row(name, values[name])}: a cell is missing, and the column is "
                                  "declared complete")
    columns = {name: pa.array(v, type=pa.float64(), from_pandas=True) for name, v in values.items()}
    if key_column:
        columns[key_column] = pa.array(parsed.keys(key_column), type=pa.string())
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.partial")
    table = pa.table(columns)
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(partial, cache)
    return Profile(missing, categories)


@dataclass(frozen=True)
class Source:
    """Where a job's input is: the cache file, its columns, its key column (vertical)."""

    cache: str
    columns: list[str]
    key_column: str | None
    rows: int
    categories: dict[str, Vocabulary] = field(default_factory=dict)  # the categorical columns'

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(float64 rows x columns, NaN where a cell is missing; keys or None),
        memory-mapped from the cache."""
        import pyarrow as pa

        try:
            with pa.memory_map(self.cache) as source:
                table = pa.ipc.open_file(source).read_all()
                if table.num_rows != self.rows:
                    raise FailedPrecondition(f"the dataset's columnar cache has {table.num_rows} rows, not {self.rows}")
                values = np.empty((self.rows, len(self.columns)), dtype=np.float64)
                for j, name in enumerate(self.columns):
                    values[:, j] = table.column(name).to_numpy()  # nulls: NaN
                keys = np.array(table.column(self.key_column).to_pylist(), dtype=object) if self.key_column else None
        except (OSError, pa.ArrowException) as err:
            raise FailedPrecondition(f"cannot read the dataset's columnar cache: {err}") from None
        return values, keys
