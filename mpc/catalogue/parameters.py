"""The checks of job parameter values, and what each parameter means, in words
(`mpcgate kinds`). Plain Python: the control plane validates without torch."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mpc.errors import InvalidArgument


@dataclass(frozen=True)
class Limits:
    """Per-gateway bounds on a job's size (config: max_columns, max_bins)."""

    max_columns: int = 200
    max_bins: int = 1000


UNLIMITED = Limits(max_columns=2**31, max_bins=2**31)
"""For reading a spec already checked against this gateway's limits (the scheduler
checks them at submit and review)."""

Check = Callable[[str, Any, Limits], None]
"""check(name, value, limits): raises InvalidArgument naming the parameter."""


@dataclass(frozen=True)
class Param:
    check: Check
    required: bool = False


def boolean(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"parameter {name} must be true or false")


def string(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise InvalidArgument(f"parameter {name} must be a string of 1 to 256 characters")


def bin_edges(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InvalidArgument(f"parameter {name} must be a list of numbers")
    if len(value) < 2 or not all(math.isfinite(v) for v in value) or any(b <= a for a, b in zip(value, value[1:])):
        raise InvalidArgument(f"parameter {name} must be at least two finite, strictly increasing numbers")
    if len(value) - 1 > limits.max_bins:
        raise InvalidArgument(f"parameter {name} asks for {len(value) - 1} bins; this gateway allows at most {limits.max_bins}")


def splits(name: str, value: Any, limits: Limits) -> None:
    """{column: [cut points]}: per column, strictly increasing finite numbers."""
    if not isinstance(value, dict) or not all(isinstance(c, str) for c in value):
        raise InvalidArgument(f"parameter {name} must map column names to lists of cut points")
    for column, cuts in value.items():
        numbers = isinstance(cuts, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cuts)
        if not numbers or not cuts or not all(math.isfinite(v) for v in cuts) or \
                any(b <= a for a, b in zip(cuts, cuts[1:])):
            raise InvalidArgument(f"parameter {name}: column {column!r} needs one or more finite, strictly increasing "
                                  "cut points")
        if len(cuts) + 1 > limits.max_bins:
            raise InvalidArgument(f"parameter {name}: column {column!r} asks for {len(cuts) + 1} bins; this gateway "
                                  f"allows at most {limits.max_bins}")


def non_negative(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"parameter {name} must be a finite number >= 0")


def count(low: int, high: int) -> Callable[[str, Any, Limits], None]:
    def check(name: str, value: Any, limits: Limits) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
            raise InvalidArgument(f"parameter {name} must be a whole number from {low} to {high}")
    return check


def between(low: float, high: float) -> Callable[[str, Any, Limits], None]:
    def check(name: str, value: Any, limits: Limits) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidArgument(f"parameter {name} must be a number from {low:g} to {high:g}")
    return check


def fraction(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.5:
        raise InvalidArgument(f"parameter {name} must be a number from 0 to 0.5")


def hidden(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v == int(v) and 1 <= v <= 1024 for v in value):
        raise InvalidArgument(f"parameter {name} must list 1 to 4 hidden layer widths, each a whole number from 1 to 1024")


def one_of(*choices: str) -> Callable[[str, Any, Limits], None]:
    def check(name: str, value: Any, limits: Limits) -> None:
        if value not in choices:
            raise InvalidArgument(f"parameter {name} must be one of {', '.join(choices)}")
    return check


def positive(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgument(f"parameter {name} must be a finite number above 0")


def finite(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"parameter {name} must be a finite number")


def probability(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise InvalidArgument(f"parameter {name} must be a number above 0 and below 1")


def rate(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
        raise InvalidArgument(f"parameter {name} must be a number above 0 and at most 10")


def missing(name: str, value: Any, limits: Limits) -> None:
    """The job parameter `missing`: "drop" | "mean" | "median" | "indicator", or an
    object naming a choice per column ("*": every column it does not name)."""
    from mpc.catalogue.schemas import MISSING_CHOICES

    choices = ", ".join(MISSING_CHOICES)
    if isinstance(value, str):
        if value not in MISSING_CHOICES:
            raise InvalidArgument(f"parameter {name} must be one of {choices}, or an object of them by column")
        return
    if not isinstance(value, dict) or not value or len(value) > limits.max_columns + 1:
        raise InvalidArgument(f"parameter {name} must be one of {choices}, or a non-empty object of them by column")
    for column, choice in value.items():
        if choice not in MISSING_CHOICES:
            raise InvalidArgument(f"parameter {name}.{column} must be one of {choices}")


def vocabularies(name: str, value: Any, limits: Limits) -> None:
    """The job parameter `categories`: {column: [category, ..]}, each list 1 to
    1000 distinct non-empty strings."""
    if not isinstance(value, dict) or not value or len(value) > limits.max_columns:
        raise InvalidArgument(f"parameter {name} must be a non-empty object: column -> list of its categories")
    for column, levels in value.items():
        if (not isinstance(levels, list) or not 1 <= len(levels) <= 1000 or len(set(map(str, levels))) != len(levels)
                or not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) for v in levels)):
            raise InvalidArgument(f"parameter {name}.{column} must list 1 to 1000 distinct categories (strings)")


MECHANISMS = ("laplace", "gaussian")


def dp(name: str, value: Any, limits: Limits) -> None:
    """The job parameter `dp`: {"epsilon": 2^-10 to 10, "mechanism": "laplace"} or
    {"epsilon": ..., "delta": 1e-12 to 1e-3, "mechanism": "gaussian"}."""
    if not isinstance(value, dict) or set(value) - {"epsilon", "delta", "mechanism"}:
        raise InvalidArgument(f"parameter {name} must be an object with epsilon and, optionally, delta and mechanism")
    epsilon = value.get("epsilon")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 2.0**-10 <= epsilon <= 10:
        raise InvalidArgument(f"parameter {name}.epsilon must be a number from 2^-10 to 10")
    mechanism = value.get("mechanism", "laplace")
    if mechanism not in MECHANISMS:
        raise InvalidArgument(f"parameter {name}.mechanism must be one of {', '.join(MECHANISMS)}")
    delta = value.get("delta")
    if mechanism == "laplace" and delta is not None:
        raise InvalidArgument(f"parameter {name}.delta applies to the gaussian mechanism (laplace is pure epsilon)")
    if mechanism == "gaussian" and (isinstance(delta, bool) or not isinstance(delta, (int, float))
                                    or not 1e-12 <= delta <= 1e-3):
        raise InvalidArgument(f"parameter {name}.delta must be a number from 1e-12 to 1e-3 for the gaussian mechanism")


DESCRIPTIONS = {
    "extremes": "true|false: also min and max (exact single values: every data owner's policy must allow extremes)",
    "dp": '{"epsilon": 2^-10..10, "mechanism": "laplace"} or {"epsilon": .., "delta": 1e-12..1e-3, '
          '"mechanism": "gaussian"}: differentially private release, charged to each dataset\'s budget',
    "key_salt": "text: vertical jobs: mixed into the key hashes (any value every party's job carries alike)",
    "bin_edges": "[e0, e1, ..]: at least two finite, strictly increasing numbers (bins [e_i, e_i+1))",
    "label": "column name: the label (its owner's column; 0/1 for a classifier)",
    "alpha": "number >= 0: ridge penalty (linear regression: default 0; logistic: default 1, as scikit-learn's C = 1)",
    "fit_intercept": "true|false: fit an intercept (default true)",
    "holdout": "0..0.5: share of rows held out for the released metrics",
    "seed": "0..2^31-1: the holdout's split",
    "keep_shared": "true|false: keep the weights secret-shared (use them with model.predict)",
    "own_coefficients": "true|false: vertical: each party receives only its own features' coefficients",
    "epochs": "1..200: most passes over the data (logistic: Newton steps, default 20)",
    "tolerance": "number >= 0: stop once two epochs in a row move the loss by less than this fraction of it, or once a "
                 "step fails to lower the objective even at 1/8 of its length (default 1e-4)",
    "threshold": "number in (0, 1): a binary model's decision threshold for accuracy and confusion (default 0.5)",
    "hidden": "[w1, ..]: 1 to 4 hidden layer widths, each 1..1024",
    "output": '"sigmoid" (binary) or "softmax" (with classes)',
    "classes": "number of classes (labels 0..classes-1): a softmax output's (2..1000); logistic regression's (2..100, "
               "one-vs-rest above 2)",
    "batch_size": "1..65536: rows per step",
    "learning_rate": "above 0 and at most 10",
    "reveal": '"probabilities" or "classes": what model.predict releases per row',
    "missing": '"drop", "mean", "median" or "indicator", or {"column": choice, "*": choice}: what the job does with '
               "missing cells (required where a column it reads has some; see the README's missing values)",
    "categories": '{"column": ["category", ..]}: the categories a categorical column is encoded with (horizontal: '
                  "every party alike; default: each party's categories holding at least its min_group_size rows)",
    "cardinality_only": "true|false: release the intersection's size only, not the common keys",
    "bins": "2..100: equal-frequency bins per numeric column without splits (default 10): vertical, cut by its owner; "
            "horizontal, at the pooled rows' quantiles found under MPC (stats.stability: the baseline rows')",
    "splits": '{"column": [c1, c2, ..]}: a numeric column\'s cut points (bins (-inf, c1), [c1, c2), .., [cm, inf)); '
              "other numeric columns get `bins` equal-frequency bins",
    "woe": "true|false: release the WOE tables (default true; false: the information values only)",
    "iv_min": "0..10: keep only columns whose information value is at least this (default 0.02)",
    "max_correlation": "number in (0, 1): drop a column whose |correlation| with a column of higher information value "
                       "already kept is above this (default 0.7)",
    "max_vif": "0..20: then, while the largest variance inflation factor of the kept numeric columns is above this, "
               "drop that column (toad's drop_vif; default 0: off)",
    "min_share": "0..0.5: merge a bin holding fewer than this share of the rows into its neighbour (default 0; "
                 "features.binning: 0.05)",
    "monotone": "true|false: merge adjacent bins until the event rate runs one way (default false; features.binning: "
                "true)",
    "max_bins": "0..100: merge the adjacent bins with the fewest rows until a column has at most this many (0: no "
                "limit, the default; features.binning: 10)",
    "pdo": "number > 0: model.scorecard: the points that double the odds of a good (default 20)",
    "odds": "number > 0: model.scorecard: the odds of a good (non-event) to a bad at `score` points (default 50)",
    "score": "number: model.scorecard: the score at those odds (default 600)",
    "period": "column name: 0 on the baseline (development) rows, 1 on the recent rows",
    "table": "true|false: release each column's bins with their baseline and recent rows (default true; false: the "
             "stability indices only)",
}
