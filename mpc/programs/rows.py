"""Sums of products over the rows, taken a chunk of rows at a time: a chunk's
products bound the encodings before anything is truncated, and the dealer's
triples stay a chunk's size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHUNK_ROWS = 4096


def row_sum(left: Any, right: Any, product: Callable[[Any, Any], Any] | None = None) -> Any:
    """left^T right over the rows (shared, rows first in both), each chunk's
    `product(left_chunk^T, right_chunk)` (default: CrypTen's matmul) added up."""
    total = None
    for start in range(0, int(left.size(0)), CHUNK_ROWS):
        a, b = left[start : start + CHUNK_ROWS].t(), right[start : start + CHUNK_ROWS]
        part = a.matmul(b) if product is None else product(a, b)
        total = part if total is None else total + part
    assert total is not None, "no rows"
    return total
