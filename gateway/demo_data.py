"""Synthetic data for `mpcgate demo` and the end-to-end tests: three institutions'
loan books with the same columns (horizontal) and a reference answer computed by
numpy on the pooled rows, which the secure result must match."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLUMNS = ["income", "debt", "age", "credit_score"]
INSTITUTIONS = ["bank-a", "bank-b", "bank-c"]


def loans(institution: str, rows: int = 2000) -> np.ndarray:
    """A bank's rows; each bank's customers differ a little (so pooling matters)."""
    rng = np.random.default_rng(INSTITUTIONS.index(institution) + 7)
    shift = INSTITUTIONS.index(institution) if institution in INSTITUTIONS else 0
    income = rng.lognormal(mean=10.8 + 0.1 * shift, sigma=0.4, size=rows)
    debt = income * rng.uniform(0.05, 0.6, size=rows) + rng.normal(0, 2000, size=rows)
    age = np.clip(rng.normal(42 + 2 * shift, 11, size=rows), 18, 90).round()
    score = np.clip(850 - debt / income * 400 + rng.normal(0, 40, size=rows), 300, 850).round()
    return np.column_stack([income.round(2), debt.round(2), age, score])


def write_csv(path: Path, table: np.ndarray, columns: list[str] = COLUMNS, key: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow((["customer_id"] if key is not None else []) + columns)
        for i, row in enumerate(table):
            writer.writerow(([key[i]] if key is not None else []) + [f"{v:.6f}" for v in row])
    return path


def summary(pooled: np.ndarray) -> dict[str, np.ndarray]:
    """numpy float64's answer on the pooled rows (sample statistics, ddof=1)."""
    x = pooled.astype(np.float64)
    return {
        "count": np.full(x.shape[1], float(x.shape[0])),
        "sum": x.sum(axis=0),
        "mean": x.mean(axis=0),
        "variance": x.var(axis=0, ddof=1),
        "std": x.std(axis=0, ddof=1),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "covariance": np.cov(x, rowvar=False, ddof=1),
        "correlation": np.corrcoef(x, rowvar=False),
    }


def max_relative_error(secure: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Largest error over every statistic: relative, or absolute near zero, where a
    covariance entry's natural scale is sigma_i * sigma_j."""
    worst = 0.0
    for name, want in reference.items():
        if name not in secure:
            continue
        got = np.asarray(secure[name], dtype=np.float64)
        scale = np.maximum(np.abs(want), 1.0)
        if name == "covariance":
            sigma = np.sqrt(np.diag(want))
            scale = np.maximum(scale, np.outer(sigma, sigma))
        worst = max(worst, float((np.abs(got - want) / scale).max()))
    return worst


def main(argv: list[str]) -> None:
    """`python -m gateway.demo_data BANK PATH [ROWS]`: writes BANK's synthetic loan book."""
    rows = int(argv[2]) if len(argv) > 2 else 500
    write_csv(Path(argv[1]), loans(argv[0], rows))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
