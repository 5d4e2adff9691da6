"""What each differentially private job releases, and the noise each release gets:
one source for the programs, which sample the noise, and for the gateway's
privacy budgets, which charge it (gateway.budgets).

A job's epsilon is split evenly over its noisy releases (basic composition): a
release whose value one row can move by at most s noise steps gets discrete
Laplace noise of scale t = s * releases / epsilon (mpc.programs.privacy). The
releases of a job over d columns, each value clipped into [-1, 1] of its column's
bounds and held as the integer Z = STEP z:
- stats.describe: per column the sum of Z (s = 2 STEP) and the sum of Z^2
  (s = STEP^2): 2d releases;
- stats.covariance, stats.correlation, stats.summary and model.linear_regression:
  those, and per pair of columns the sum of Z_i Z_j (s = 2 STEP^2): d + d (d + 1) / 2;
- model.logistic_regression: the moments above of its d - 1 features, then per
  epoch the gradient's d - 1 coordinates, sums over the rows of Z_j times the
  residual (in [-1, 1], held at 16 fractional bits: s = 2 STEP 2^16), and the
  intercept's (s = 2^17);
- stats.histogram: per column the vector of counts per bin (one row moves one
  count from a bin to another: L1 sensitivity 2), whole-count noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpc.programs import privacy

STEP = 1 << privacy.GRID_BITS
RESIDUAL_BITS = 16
DP_EPOCHS = 10
"""Logistic regression's epochs under dp (each one's gradient is a release): fixed,
since stopping on the loss would make the number of releases data-dependent."""


@dataclass(frozen=True)
class Part:
    """`count` releases of one kind, each moved by at most `sensitivity` noise
    steps by one row, each with noise of scale `scale` (steps)."""

    name: str
    count: int
    sensitivity: int
    scale: float


def plan(kind: str, parameters: dict[str, Any], columns: list[str]) -> dict[str, Part]:
    """The job's releases, by part, with the noise each gets."""
    epsilon = float(parameters["dp"]["epsilon"])
    raw = _parts(kind, parameters, len(columns))
    total = sum(count for _, count, _ in raw)
    return {name: Part(name, count, sensitivity, sensitivity * total / epsilon) for name, count, sensitivity in raw}


def epochs(parameters: dict[str, Any]) -> int:
    return int(parameters.get("epochs", DP_EPOCHS))


def _parts(kind: str, parameters: dict[str, Any], d: int) -> list[tuple[str, int, int]]:
    if kind == "stats.histogram":
        return [("bins", d, 2)]
    if kind == "stats.describe":
        return [("sums", d, 2 * STEP), ("squares", d, STEP**2)]
    features = d - 1 if kind == "model.logistic_regression" else d
    moments = [("sums", features, 2 * STEP), ("squares", features, STEP**2),
               ("cross", features * (features - 1) // 2, 2 * STEP**2)]
    if kind != "model.logistic_regression":
        return moments
    e = epochs(parameters)
    return [*moments, ("gradient", e * features, 2 * STEP << RESIDUAL_BITS), ("intercept", e, 2 << RESIDUAL_BITS)]


def releases(kind: str, parameters: dict[str, Any], columns: list[str], mine: list[str]) -> list[tuple[float, int, int]]:
    """The releases of a dp job over `columns` that one dataset's rows can move
    (`mine`: its columns among them; all of them for horizontal data), as the
    privacy accountant's events: (noise parameter 1 / t, sensitivity in steps, how
    many). A model's gradient depends on every column of a row."""
    own = set(mine)
    features = [c for c in columns if not (kind == "model.logistic_regression" and c == parameters.get("label"))]
    k, d = sum(c in own for c in features), len(features)
    touched = {"bins": k, "sums": k, "squares": k, "cross": d * (d - 1) // 2 - (d - k) * (d - k - 1) // 2}
    return [(1 / part.scale, part.sensitivity, touched.get(name, part.count))
            for name, part in plan(kind, parameters, columns).items() if touched.get(name, part.count)]


def supported(kind: str) -> bool:
    return kind in ("stats.histogram", "stats.describe", "stats.covariance", "stats.correlation", "stats.summary",
                    "model.linear_regression", "model.logistic_regression")
