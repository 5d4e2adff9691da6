"""A job's parameters as one typed object per kind, parsed once where a party
first reads them (mpc.catalogue.kinds.parse) and passed on as such: to the
scheduler's checks, the registry's review and privacy charges, the worker and
the program. A field's default is what the program takes when the job leaves
the parameter out."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

KEY_SALT = "mpcgate"
"""Mixed into the key hashes of vertical jobs that name no key_salt."""


@dataclass(frozen=True)
class DP:
    """The `dp` parameter: epsilon-DP (laplace) or (epsilon, delta)-DP (gaussian)."""

    epsilon: float
    mechanism: str = "laplace"
    delta: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"epsilon": self.epsilon, "mechanism": self.mechanism}
        return out if self.delta is None else {**out, "delta": self.delta}


MISSING_CHOICES = ("drop", "mean", "median", "indicator")
"""What a job does with a column's missing cells (mpc.programs.missing)."""


@dataclass(frozen=True)
class Parameters:
    """What every kind takes: vertical jobs' key salt, and what to do with missing cells."""

    key_salt: str = KEY_SALT
    missing: tuple[tuple[str, str], ...] = ()  # (column or "*", choice), from "mean" or {"income": "median", "*": ..}
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (categorical column, its categories in order)


@dataclass(frozen=True)
class StatsParameters(Parameters):
    extremes: bool = False
    dp: DP | None = None


@dataclass(frozen=True)
class HistogramParameters(StatsParameters):
    bin_edges: tuple[float, ...] = ()


@dataclass(frozen=True)
class SupervisedParameters(Parameters):
    """Models trained on a label column, with rows held out for their metrics."""

    label: str = ""
    holdout: float | None = None  # None: the program's own share (mpc.programs.models.*.HOLDOUT)
    seed: int = 0
    keep_shared: bool = False


@dataclass(frozen=True)
class LinearParameters(SupervisedParameters):
    alpha: float = 0.0
    fit_intercept: bool = True
    own_coefficients: bool = False
    dp: DP | None = None


@dataclass(frozen=True)
class LogisticParameters(LinearParameters):
    alpha: float = 1.0  # scikit-learn's C = 1
    classes: int = 2  # above 2: one-vs-rest (mpc.programs.models.multiclass)
    epochs: int | None = None  # None: 20 Newton steps, or the fixed epochs of a dp fit (mpc.privacy.plan)
    tolerance: float = 1e-4


@dataclass(frozen=True)
class MlpParameters(SupervisedParameters):
    hidden: tuple[int, ...] = (32,)
    output: str = "sigmoid"
    classes: int | None = None  # a softmax output's classes (required there)
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.1


@dataclass(frozen=True)
class PredictParameters(Parameters):
    reveal: str = "probabilities"


@dataclass(frozen=True)
class EvaluateParameters(Parameters):
    label: str = ""
    threshold: float = 0.5  # a binary model's decision threshold (accuracy, confusion)


@dataclass(frozen=True)
class BinnedParameters(Parameters):
    """Kinds that bin every column: the bins (equal-frequency count, or cuts per column)."""

    bins: int = 10
    splits: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (column, its cut points), from {column: [cuts]}

    @property
    def tables(self) -> bool:
        """Whether the bin tables (each bin's counts) are released."""
        raise NotImplementedError

    @property
    def without_tables(self) -> str:
        """What the job releases without them, and how to ask for it."""
        raise NotImplementedError


@dataclass(frozen=True)
class LabelBinnedParameters(BinnedParameters):
    """Kinds that bin against a label: the label and the merging constraints
    (mpc.programs.features.merging), off by default."""

    label: str = ""
    min_share: float = 0.0  # a bin holds at least this share of the rows
    monotone: bool = False  # the event rate runs one way across the bins
    max_bins: int = 0  # at most this many bins per column (0: no limit)


@dataclass(frozen=True)
class WoeParameters(LabelBinnedParameters):
    """features.woe_iv: the label and the bins."""

    woe: bool = True  # release the WOE tables (False: the IVs only)

    @property
    def tables(self) -> bool:
        return self.woe

    @property
    def without_tables(self) -> str:
        return "the information values alone (woe: false)"


@dataclass(frozen=True)
class BinningParameters(WoeParameters):
    """features.binning: features.woe_iv with a risk team's binning by default: 20
    fine bins merged to at most 10, each of at least 5% of the rows, with a
    monotone event rate."""

    bins: int = 20
    min_share: float = 0.05
    monotone: bool = True
    max_bins: int = 10


@dataclass(frozen=True)
class SelectParameters(LabelBinnedParameters):
    """features.select: the label, the bins of the IVs, the thresholds."""

    iv_min: float = 0.02  # keep columns whose information value is at least this
    max_correlation: float = 0.7  # ... and whose |correlation| with every column kept before it is at most this
    max_vif: float = 0.0  # then drop the kept column of the largest variance inflation factor above this (0: off)

    @property
    def tables(self) -> bool:
        return False

    @property
    def without_tables(self) -> str:
        return "the selection alone"


@dataclass(frozen=True)
class ScorecardParameters(LogisticParameters, LabelBinnedParameters):
    """model.scorecard: features.binning's bins, logistic regression's penalty and
    steps on their weights of evidence, and the points scale (optbinning's
    pdo_odds: `score` points at odds of `odds` good to one bad, `pdo` more points
    doubling them)."""

    bins: int = 20
    min_share: float = 0.05
    monotone: bool = True
    max_bins: int = 10
    pdo: float = 20.0
    odds: float = 50.0
    score: float = 600.0

    @property
    def tables(self) -> bool:
        return True

    @property
    def without_tables(self) -> str:
        return "the information values alone (features.woe_iv with woe: false)"


@dataclass(frozen=True)
class StabilityParameters(BinnedParameters):
    """stats.stability: the period column (0 baseline, 1 recent) and the bins."""

    period: str = ""
    table: bool = True  # release each column's bin table (False: the indices only)

    @property
    def tables(self) -> bool:
        return self.table

    @property
    def without_tables(self) -> str:
        return "the stability indices alone (table: false)"


@dataclass(frozen=True)
class IntersectParameters(Parameters):
    cardinality_only: bool = False


def private(parameters: Parameters) -> DP | None:
    """The job's differential privacy, if it asks for it: the one place that asks
    "is this a dp job?"."""
    return parameters.dp if isinstance(parameters, (StatsParameters, LinearParameters)) else None


def missing_choice(parameters: Parameters, column: str) -> str | None:
    """The job's choice for `column`'s missing cells ("*" applies to the columns it
    does not name); None where it makes none."""
    chosen = dict(parameters.missing)
    return chosen.get(column, chosen.get("*"))


def with_indicators(parameters: Parameters, columns: list[str]) -> list[str]:
    """A party's columns as its job's program sees them: each column whose missing
    cells the job flags (`missing: indicator`; never the label) gains a 0/1 column
    "<column>_missing" after them (mpc.programs.missing)."""
    label = label_of(parameters)
    return [*columns, *(f"{c}_missing" for c in columns if c != label and missing_choice(parameters, c) == "indicator")]


def label_of(parameters: Parameters) -> str | None:
    """The job's label column, for kinds that name one (stats.stability: its period,
    which splits the rows as a 0/1 label does: never imputed, and its owner's
    label_release applies to the bin tables)."""
    if isinstance(parameters, StabilityParameters):
        return parameters.period
    labelled = (SupervisedParameters, EvaluateParameters, LabelBinnedParameters)
    return parameters.label if isinstance(parameters, labelled) else None


def build(schema: type[Parameters], raw: dict[str, Any]) -> Parameters:
    """The typed parameters of values already checked (mpc.catalogue.kinds.parse),
    each converted to its field's type (JSON carries every number as a float)."""
    types = typing.get_type_hints(schema)
    return schema(**{name: _typed(types[name], value) for name, value in raw.items()})


def _typed(kind: Any, value: Any) -> Any:
    if kind in (int, float, bool, str):
        return kind(value)
    if kind in (float | None, int | None):
        return None if value is None else typing.get_args(kind)[0](value)
    if kind == tuple[tuple[str, tuple[float, ...]], ...]:  # splits: {column: [cut, ..]}
        return tuple((str(c), tuple(float(v) for v in cuts)) for c, cuts in value.items())
    if kind == tuple[tuple[str, tuple[str, ...]], ...]:  # categories: {column: [category, ..]}
        return tuple((str(c), tuple(str(v) for v in levels)) for c, levels in value.items())
    if kind == tuple[tuple[str, str], ...]:  # missing: one choice for every column, or by column
        return (("*", value),) if isinstance(value, str) else tuple(sorted((str(c), str(v)) for c, v in value.items()))
    if kind == DP | None:
        return DP(float(value["epsilon"]), str(value.get("mechanism", "laplace")),
                  None if value.get("delta") is None else float(value["delta"]))
    element = typing.get_args(kind)[0]  # tuple[int, ...] or tuple[float, ...]
    return tuple(element(v) for v in value)
