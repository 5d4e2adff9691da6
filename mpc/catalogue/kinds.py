"""The catalogue of job kinds: for each, the program that computes it, what it
computes in words, its parameters (each checked by mpc.catalogue.parameters),
the checks of its inputs, and a runnable example. One table, read by the
gateway's submit and review (parse, validate_inputs), by
`mpcgate kinds`, and by the worker (mpc.programs.run, which imports the program
by name): the catalogue imports no torch, so the control plane never loads it.
What each kind reveals: mpc.catalogue.releases (and its program's docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mpc.catalogue.parameters import (
    UNLIMITED,
    Limits,
    Param,
    between,
    bin_edges,
    boolean,
    count,
    dp,
    finite,
    fraction,
    hidden,
    missing,
    non_negative,
    one_of,
    positive,
    probability,
    rate,
    splits,
    string,
    vocabularies,
)
from mpc.catalogue.schemas import (
    BinnedParameters,
    BinningParameters,
    EvaluateParameters,
    HistogramParameters,
    IntersectParameters,
    LinearParameters,
    LogisticParameters,
    MlpParameters,
    Parameters,
    PredictParameters,
    ScorecardParameters,
    SelectParameters,
    StabilityParameters,
    StatsParameters,
    WoeParameters,
    build,
    label_of,
)
from mpc.errors import InvalidArgument

Inputs = list[tuple[str, list[str]]]
"""[(party, columns)] of a job, in the spec's order."""
InputCheck = Callable[[Parameters, bool, Inputs, list[str]], None]
"""check(parameters, vertical?, inputs, receivers): raises InvalidArgument."""


def _private(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    if isinstance(parameters, StatsParameters) and parameters.dp is not None and parameters.extremes:
        raise InvalidArgument("extremes (one row's exact value) cannot be released with parameter dp")


def _labelled(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """Models: the label column at every party (horizontal) or at exactly one (vertical),
    and at least one feature besides it; own_coefficients only for vertical jobs
    whose every party receives (its own part), not with keep_shared."""
    label = label_of(parameters)
    holders = [party for party, columns in inputs if label in columns]
    if vertical and len(holders) != 1:
        raise InvalidArgument(f"the label column {label!r} must be an input of exactly one party "
                              f"(it is an input of {len(holders)}: {', '.join(holders) or 'none'})")
    if not vertical and len(holders) != len(inputs):
        missing = [party for party, columns in inputs if label not in columns]
        raise InvalidArgument(f"the label column {label!r} is missing from the inputs of {', '.join(missing)}")
    if not any(c != label for _, columns in inputs for c in columns):
        raise InvalidArgument("a model needs at least one feature column besides the label")
    if isinstance(parameters, LinearParameters) and parameters.own_coefficients:
        if not vertical:
            raise InvalidArgument("own_coefficients applies to vertical jobs (each party's own feature columns)")
        if parameters.keep_shared:
            raise InvalidArgument("own_coefficients reveals each party's coefficients to it; keep_shared reveals none: "
                                  "choose one")
        missing = sorted({party for party, _ in inputs} - set(receivers))
        if missing:
            raise InvalidArgument(f"with own_coefficients every party receives its own part: add {', '.join(missing)} "
                                  "to the result receivers")


def _private_model(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """Linear models: labelled; with dp, only what models/private.py can release."""
    _labelled(parameters, vertical, inputs, receivers)
    check_private_model(parameters)


def check_private_model(parameters: Parameters) -> None:
    """A linear model with dp releases its noisy statistics and the fit from them,
    nothing else (mpc.programs.models.private)."""
    if not isinstance(parameters, LinearParameters) or parameters.dp is None:
        return
    given = {"holdout": bool(parameters.holdout), "keep_shared": parameters.keep_shared,
             "own_coefficients": parameters.own_coefficients}
    unavailable = [name for name, asked in given.items() if asked]
    if unavailable:
        raise InvalidArgument(f"{unavailable[0]} is not available with parameter dp (it would release more than "
                              "the noisy statistics)")
    if isinstance(parameters, LogisticParameters) and not parameters.fit_intercept:
        raise InvalidArgument("fit_intercept false is not available for logistic regression with parameter dp")


def _logistic(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """Logistic regression: as the linear models; more than two classes without
    what only the binary program offers."""
    _private_model(parameters, vertical, inputs, receivers)
    assert isinstance(parameters, LogisticParameters)
    if parameters.classes > 2:
        offered = {"dp": parameters.dp is not None, "own_coefficients": parameters.own_coefficients,
                   "fit_intercept false": not parameters.fit_intercept}
        unavailable = [name for name, asked in offered.items() if asked]
        if unavailable:
            raise InvalidArgument(f"{unavailable[0]} is available for binary labels only (classes 2)")


def _network(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """model.mlp: labelled like the linear models; softmax names its classes."""
    _labelled(parameters, vertical, inputs, receivers)
    assert isinstance(parameters, MlpParameters)  # (the catalogue pairs the check with its schema)
    softmax = parameters.output == "softmax"
    if softmax and parameters.classes is None:
        raise InvalidArgument("a softmax output needs parameter 'classes' (the number of classes, labelled 0 to classes - 1)")
    if not softmax and parameters.classes not in (None, 2):
        raise InvalidArgument("a sigmoid output is binary: use output 'softmax' for more than two classes")


def _vertical_only(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    if not vertical:
        raise InvalidArgument("psi.intersect intersects key columns: submit it with partitioning VERTICAL")


def _crosstab(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    columns = list(dict.fromkeys(c for _, cs in inputs for c in cs))
    if not 1 <= len(columns) <= 2:
        raise InvalidArgument(f"stats.crosstab reads one or two categorical columns; the inputs list {len(columns)}")


def _woe(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """features.woe_iv: a label (at one party, vertical; at every party, horizontal)
    and a feature besides it; splits name columns the job reads."""
    _labelled(parameters, vertical, inputs, receivers)
    assert isinstance(parameters, WoeParameters)
    _splits(parameters, inputs, parameters.label)


def _select(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """features.select: as features.woe_iv's inputs."""
    _labelled(parameters, vertical, inputs, receivers)
    assert isinstance(parameters, SelectParameters)
    _splits(parameters, inputs, parameters.label)


def _scorecard(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """model.scorecard: as features.woe_iv's inputs."""
    _labelled(parameters, vertical, inputs, receivers)
    assert isinstance(parameters, ScorecardParameters)
    _splits(parameters, inputs, parameters.label)


def _stability(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    """stats.stability: the period column (at one party, vertical; at every party,
    horizontal) and a feature besides it; splits name columns the job reads."""
    assert isinstance(parameters, StabilityParameters)
    period = parameters.period
    holders = [party for party, columns in inputs if period in columns]
    if (vertical and len(holders) != 1) or (not vertical and len(holders) != len(inputs)):
        where = "exactly one party" if vertical else "every party"
        raise InvalidArgument(f"the period column {period!r} must be an input of {where} (it is an input of "
                              f"{len(holders)}: {', '.join(holders) or 'none'})")
    if not any(c != period for _, columns in inputs for c in columns):
        raise InvalidArgument("stats.stability needs at least one feature column besides the period")
    _splits(parameters, inputs, period)


def _splits(parameters: BinnedParameters, inputs: Inputs, split_by: str) -> None:
    """Every column `splits` names is a feature the job reads (not the column the
    rows are split by)."""
    read = {c for _, columns in inputs for c in columns}
    unread = [c for c, _ in parameters.splits if c not in read or c == split_by]
    if unread:
        raise InvalidArgument(f"parameter splits names column {unread[0]!r}, which is not a feature the job reads")


def _none(parameters: Parameters, vertical: bool, inputs: Inputs, receivers: list[str]) -> None:
    return None


@dataclass(frozen=True)
class JobKind:
    program: str  # "module:function" under mpc.programs, imported by the worker only
    summary: str
    example: str  # the `mpcgate jobs submit` arguments after --kind
    schema: type[Parameters]  # the typed parameters (mpc.catalogue.schemas)
    parameters: dict[str, Param] = field(default_factory=dict)
    inputs: InputCheck = _none
    """Checks the job's inputs (parameters, vertical?, [(party, columns)], receivers) at submit and review."""
    trains_model: bool = False  # its outcome is a model the parties store
    categorical: bool = False  # it reads categorical columns (mpc.programs.categories)
    uses_model: bool = False  # it runs a stored model (the model's holders take part)

    @property
    def required(self) -> list[str]:
        return [name for name, param in self.parameters.items() if param.required]



COMMON = {"key_salt": Param(string), "missing": Param(missing), "categories": Param(vocabularies)}  # kinds reading columns
_SEED = Param(count(0, 2**31 - 1))
BINNED = {"bins": Param(count(2, 100)), "splits": Param(splits)}  # kinds cutting columns into bins
MERGED = {"min_share": Param(between(0, 0.5)), "monotone": Param(boolean), "max_bins": Param(count(0, 100))}
WOE = {"label": Param(string, required=True), **BINNED, **MERGED, "woe": Param(boolean), **COMMON}  # woe_iv, binning
_TWO_BANKS = "--input bank-a:loans:income,debt --input bank-b:loans:income,debt --receiver bank-a"
KINDS: dict[str, JobKind] = {
    "stats.describe": JobKind(
        "mpc.programs.stats:describe", "count, sum, mean, variance and std per column", _TWO_BANKS,
        StatsParameters,
        {"extremes": Param(boolean), "dp": Param(dp), **COMMON}, _private),
    "stats.covariance": JobKind(
        "mpc.programs.stats:covariance", "count and the sample covariance matrix", _TWO_BANKS,
        StatsParameters,
        {"dp": Param(dp), **COMMON}),
    "stats.correlation": JobKind(
        "mpc.programs.stats:correlation", "count and the correlation matrix", _TWO_BANKS,
        StatsParameters,
        {"dp": Param(dp), **COMMON}),
    "stats.summary": JobKind(
        "mpc.programs.stats:summary", "describe's statistics, covariance and correlation", _TWO_BANKS,
        StatsParameters,
        {"extremes": Param(boolean), "dp": Param(dp), **COMMON}, _private),
    "stats.histogram": JobKind(
        "mpc.programs.stats:histogram", "count and the pooled rows per bin of each column (small bins withheld)",
        f"{_TWO_BANKS} --param bin_edges=[0,20000,50000,100000]",
        HistogramParameters,
        {"bin_edges": Param(bin_edges, required=True), "dp": Param(dp), **COMMON}),
    "model.linear_regression": JobKind(
        "mpc.programs.models:linear_regression", "ridge regression: coefficients, intercept, R^2",
        "--input bank-a:loans:income,age,debt --input bank-b:loans:income,age,debt "
        "--receiver bank-a --param label=debt --param alpha=1",
        LinearParameters,
        {"label": Param(string, required=True), "alpha": Param(non_negative), "fit_intercept": Param(boolean),
         "holdout": Param(fraction), "seed": _SEED, "keep_shared": Param(boolean),
         "own_coefficients": Param(boolean), "dp": Param(dp), **COMMON},
        _private_model, trains_model=True, categorical=True),
    "model.logistic_regression": JobKind(
        "mpc.programs.models:logistic_regression",
        "logistic regression (Newton steps): coefficients, intercept, AUC and accuracy",
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-b --param label=defaulted",
        LogisticParameters,
        {"label": Param(string, required=True), "alpha": Param(non_negative), "fit_intercept": Param(boolean),
         "epochs": Param(count(1, 200)), "tolerance": Param(non_negative), "holdout": Param(fraction),
         "seed": _SEED, "keep_shared": Param(boolean), "own_coefficients": Param(boolean), "dp": Param(dp),
         "classes": Param(count(2, 100)), **COMMON},
        _logistic, trains_model=True, categorical=True),
    "model.mlp": JobKind(
        "mpc.programs.models:mlp", "a small neural network (SGD): its weights and metrics",
        "--input bank-a:loans:income,age,defaulted --input bank-b:loans:income,age,defaulted "
        "--receiver bank-a --param label=defaulted --param hidden=[8]",
        MlpParameters,
        {"label": Param(string, required=True), "hidden": Param(hidden), "output": Param(one_of("sigmoid", "softmax")),
         "classes": Param(count(2, 1000)), "epochs": Param(count(1, 200)), "batch_size": Param(count(1, 65536)),
         "learning_rate": Param(rate), "holdout": Param(fraction), "seed": _SEED, "keep_shared": Param(boolean),
         **COMMON},
        _network, trains_model=True, categorical=True),
    "model.predict": JobKind(
        "mpc.programs.models:predict", "a stored model applied to the inputs' rows: a score per row for the receivers",
        "--model MODEL_ID@bank-a --input bank-b:loans:income,debt,age --receiver bank-b",
        PredictParameters,
        {"reveal": Param(one_of("probabilities", "classes")), **COMMON}, uses_model=True, categorical=True),
    "model.evaluate": JobKind(
        "mpc.programs.models:evaluate", "a stored model's metrics on the inputs' labelled rows",
        "--model MODEL_ID@bank-a --input bank-b:loans:income,debt,age,defaulted "
        "--receiver bank-b --param label=defaulted",
        EvaluateParameters,
        {"label": Param(string, required=True), "threshold": Param(probability), **COMMON}, uses_model=True,
        categorical=True),
    "stats.crosstab": JobKind(
        "mpc.programs.stats.crosstab:crosstab",
        "the contingency table of two categorical columns and a chi-square test (small cells withheld)",
        "--input bank-a:loans:region,product --input bank-b:loans:region,product --receiver bank-a",
        Parameters, dict(COMMON), _crosstab, categorical=True),
    "features.woe_iv": JobKind(
        "mpc.programs.features.woe:woe_iv",
        "each feature's bins, their weights of evidence and the feature's information value, against a 0/1 label",
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-a --param label=defaulted --param bins=10",
        WoeParameters,
        dict(WOE), _woe, categorical=True),
    "features.binning": JobKind(
        "mpc.programs.features.woe:woe_iv",
        "each feature's bins as a risk team sets them (20 fine bins merged to at most 10, each of at least 5% of the "
        "rows, the event rate monotone) with their weights of evidence and the feature's information value",
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-a --param label=defaulted --param max_bins=8",
        BinningParameters,
        dict(WOE), _woe, categorical=True),
    "features.select": JobKind(
        "mpc.programs.features.select:select",
        "the feature columns a scorecard keeps: information value at least iv_min, and no stronger column kept "
        "before it correlated beyond max_correlation (only the choice is released)",
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-a --param label=defaulted --param iv_min=0.02 --param max_correlation=0.7",
        SelectParameters,
        {"label": Param(string, required=True), **BINNED, **MERGED, "iv_min": Param(between(0, 10)),
         "max_correlation": Param(probability), "max_vif": Param(between(0, 20)), **COMMON},
        _select, categorical=True),
    "model.scorecard": JobKind(
        "mpc.programs.models.scorecard:scorecard",
        "a credit scorecard: each feature binned as features.binning bins it, a logistic regression on the bins' "
        "weights of evidence (kept shared), and points per bin on a pdo/odds/score scale; held-out KS, AUC and lift",
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-a --receiver bank-b --param label=defaulted --param pdo=20 --param odds=50 --param score=600",
        ScorecardParameters,
        {"label": Param(string, required=True), **BINNED, **MERGED, "alpha": Param(non_negative),
         "epochs": Param(count(1, 200)), "tolerance": Param(non_negative), "holdout": Param(fraction), "seed": _SEED,
         "pdo": Param(positive), "odds": Param(positive), "score": Param(finite), **COMMON},
        _scorecard, categorical=True),
    "stats.stability": JobKind(
        "mpc.programs.features.stability:stability",
        "each feature's population stability index between its baseline (period 0) and recent (period 1) rows",
        "--input bank-a:applications:income,age,period --input bank-b:applications:income,age,period "
        "--receiver bank-a --param period=period --param 'splits={\"income\": [20, 40, 60], \"age\": [30, 45, 60]}'",
        StabilityParameters,
        {"period": Param(string, required=True), **BINNED, "table": Param(boolean), **COMMON},
        _stability, categorical=True),
    "psi.intersect": JobKind(
        "mpc.programs.intersection.program:intersect",
        "the private set intersection of the datasets' key columns: its size and, unless "
        "cardinality_only, the common keys (an input names no columns: PARTY:DATASET:)",
        "--input bank-a:customers: --input bank-b:customers: --partitioning vertical "
        "--receiver bank-a --param cardinality_only=true",
        IntersectParameters,
        {"cardinality_only": Param(boolean), "key_salt": Param(string)}, _vertical_only),
}
TRAINING_KINDS = tuple(name for name, kind in KINDS.items() if kind.trains_model)
USING_KINDS = tuple(name for name, kind in KINDS.items() if kind.uses_model)


def validate_inputs(kind: str, parameters: Parameters, vertical: bool, inputs: Inputs,
                    receivers: list[str]) -> None:
    """INVALID_ARGUMENT if the job's inputs do not fit its kind."""
    KINDS[kind].inputs(parameters, vertical, inputs, receivers)  # the kind's own, more specific, first
    _missing_inputs(parameters, vertical, inputs)
    if not vertical and len(inputs) > 1:  # horizontal: every party's rows hold the same columns, in one order
        (first, columns), *others = inputs
        for party, theirs in others:
            if theirs != columns:
                how = "in another order" if sorted(theirs) == sorted(columns) else "other columns"
                raise InvalidArgument(f"a horizontal job reads the same columns at every party, in one order: "
                                      f"{first} lists {columns}, {party} {how} {theirs}")


def _missing_inputs(parameters: Parameters, vertical: bool, inputs: Inputs) -> None:
    """The `missing` parameter names columns the job reads; a vertical job drops no
    rows (every party would learn which common customers miss a value at another);
    a label is never imputed."""
    read = {c for _, columns in inputs for c in columns}
    unread = [c for c, _ in parameters.categories if c not in read]
    if unread:
        raise InvalidArgument(f"parameter categories names column {unread[0]!r}, which no input reads")
    for column, choice in parameters.missing:
        if column != "*" and column not in read:
            raise InvalidArgument(f"parameter missing names column {column!r}, which no input reads")
        if vertical and choice == "drop":
            raise InvalidArgument("a vertical job cannot drop rows with missing cells: every party would learn which "
                                  "common customers miss a value at another; choose mean, median or indicator")
        if column != "*" and column == label_of(parameters) and choice != "drop":
            raise InvalidArgument(f"the label {column!r} is never imputed: rows whose label is missing are dropped "
                                  "(missing: drop, horizontal jobs)")


def validate_parameters(kind: str, parameters: dict[str, Any], limits: Limits) -> None:
    """INVALID_ARGUMENT naming the first unknown, missing or malformed parameter."""
    if kind not in KINDS:
        raise InvalidArgument(f"unknown job kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    schema = KINDS[kind].parameters
    unknown = sorted(set(parameters) - set(schema))
    if unknown:
        raise InvalidArgument(f"{kind} has no parameter {unknown[0]!r} (parameters: {', '.join(sorted(schema)) or 'none'})")
    for name, param in schema.items():
        if name in parameters:
            param.check(name, parameters[name], limits)
        elif param.required:
            raise InvalidArgument(f"{kind} needs parameter {name!r}")


def parse(kind: str, raw: dict[str, Any], limits: Limits = UNLIMITED) -> Parameters:
    """The job's parameters checked against its kind's schema (INVALID_ARGUMENT
    naming the first unknown, missing or malformed one; within `limits`) and typed."""
    validate_parameters(kind, raw, limits)
    return build(KINDS[kind].schema, raw)
