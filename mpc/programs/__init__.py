"""Job programs: what a joint job computes, by kind, and the schema of its
parameters. The gateway validates a job's parameters against the schema at submit
(INVALID_ARGUMENT in milliseconds, not a worker crash); each program's docstring
says what every party learns. Each program takes a JobContext and returns the
revealed results on result receivers (None elsewhere)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import FailedPrecondition, InvalidArgument
from mpc.programs import intersection, models, privacy, stats
from mpc.programs.context import JobContext, Result

Program = Callable[[JobContext], "dict[str, Result] | None"]


@dataclass(frozen=True)
class Limits:
    """Per-gateway bounds on a job's size (config: max_columns, max_bins)."""

    max_columns: int = 200
    max_bins: int = 1000


def _bool(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"parameter {name} must be true or false")


def _string(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise InvalidArgument(f"parameter {name} must be a string of 1 to 256 characters")


def _bin_edges(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InvalidArgument(f"parameter {name} must be a list of numbers")
    if len(value) < 2 or not all(math.isfinite(v) for v in value) or any(b <= a for a, b in zip(value, value[1:])):
        raise InvalidArgument(f"parameter {name} must be at least two finite, strictly increasing numbers")
    if len(value) - 1 > limits.max_bins:
        raise InvalidArgument(f"parameter {name} asks for {len(value) - 1} bins; this gateway allows at most {limits.max_bins}")


def _non_negative(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"parameter {name} must be a finite number >= 0")


def _count(low: int, high: int) -> Callable[[str, Any, Limits], None]:
    def check(name: str, value: Any, limits: Limits) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
            raise InvalidArgument(f"parameter {name} must be a whole number from {low} to {high}")
    return check


def _fraction(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.5:
        raise InvalidArgument(f"parameter {name} must be a number from 0 to 0.5")


def _hidden(name: str, value: Any, limits: Limits) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v == int(v) and 1 <= v <= 1024 for v in value):
        raise InvalidArgument(f"parameter {name} must list 1 to 4 hidden layer widths, each a whole number from 1 to 1024")


def _one_of(*choices: str) -> Callable[[str, Any, Limits], None]:
    def check(name: str, value: Any, limits: Limits) -> None:
        if value not in choices:
            raise InvalidArgument(f"parameter {name} must be one of {', '.join(choices)}")
    return check


def _rate(name: str, value: Any, limits: Limits) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
        raise InvalidArgument(f"parameter {name} must be a number above 0 and at most 10")


def _dp(name: str, value: Any, limits: Limits) -> None:
    privacy.check_parameter(name, value)


def _private(parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
             receivers: list[str]) -> None:
    if "dp" in parameters and parameters.get("extremes"):
        raise InvalidArgument("extremes (one row's exact value) cannot be released with parameter dp")


@dataclass(frozen=True)
class Param:
    check: Callable[[str, Any, Limits], None]
    required: bool = False


def _labelled(parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
              receivers: list[str]) -> None:
    """Models: the label column at every party (horizontal) or at exactly one (vertical),
    and at least one feature besides it; own_coefficients only for vertical jobs
    whose every party receives (its own part), not with keep_shared."""
    label = parameters.get("label")
    holders = [party for party, columns in inputs if label in columns]
    if vertical and len(holders) != 1:
        raise InvalidArgument(f"the label column {label!r} must be an input of exactly one party "
                              f"(it is an input of {len(holders)}: {', '.join(holders) or 'none'})")
    if not vertical and len(holders) != len(inputs):
        missing = [party for party, columns in inputs if label not in columns]
        raise InvalidArgument(f"the label column {label!r} is missing from the inputs of {', '.join(missing)}")
    if not any(c != label for _, columns in inputs for c in columns):
        raise InvalidArgument("a model needs at least one feature column besides the label")
    if parameters.get("own_coefficients"):
        if not vertical:
            raise InvalidArgument("own_coefficients applies to vertical jobs (each party's own feature columns)")
        if parameters.get("keep_shared"):
            raise InvalidArgument("own_coefficients reveals each party's coefficients to it; keep_shared reveals none: "
                                  "choose one")
        missing = sorted({party for party, _ in inputs} - set(receivers))
        if missing:
            raise InvalidArgument(f"with own_coefficients every party receives its own part: add {', '.join(missing)} "
                                  "to the result receivers")


def _private_model(kind: str) -> Callable[[dict[str, Any], bool, list[tuple[str, list[str]]], list[str]], None]:
    """Linear models: labelled; with dp, only what models/private.py can release."""
    def check(parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
              receivers: list[str]) -> None:
        _labelled(parameters, vertical, inputs, receivers)
        if "dp" in parameters:
            models.private.check_parameters(kind, parameters)
    return check


def _network(parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
             receivers: list[str]) -> None:
    """model.mlp: labelled like the linear models; softmax names its classes."""
    _labelled(parameters, vertical, inputs, receivers)
    softmax = parameters.get("output", "sigmoid") == "softmax"
    if softmax and "classes" not in parameters:
        raise InvalidArgument("a softmax output needs parameter 'classes' (the number of classes, labelled 0 to classes - 1)")
    if not softmax and parameters.get("classes", 2) != 2:
        raise InvalidArgument("a sigmoid output is binary: use output 'softmax' for more than two classes")


def _vertical_only(parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
                   receivers: list[str]) -> None:
    if not vertical:
        raise InvalidArgument("psi.intersect intersects key columns: submit it with partitioning VERTICAL")


@dataclass(frozen=True)
class JobKind:
    program: Program
    parameters: dict[str, Param] = field(default_factory=dict)
    inputs: Callable[[dict[str, Any], bool, list[tuple[str, list[str]]], list[str]], None] = lambda p, v, i, r: None
    """Checks the job's inputs (parameters, vertical?, [(party, columns)], receivers) at submit."""


VERTICAL = {"key_salt": Param(_string)}
KINDS: dict[str, JobKind] = {
    "stats.describe": JobKind(stats.describe, {"extremes": Param(_bool), "dp": Param(_dp), **VERTICAL}, _private),
    "stats.covariance": JobKind(stats.covariance, {"dp": Param(_dp), **VERTICAL}),
    "stats.correlation": JobKind(stats.correlation, {"dp": Param(_dp), **VERTICAL}),
    "stats.summary": JobKind(stats.summary, {"extremes": Param(_bool), "dp": Param(_dp), **VERTICAL}, _private),
    "stats.histogram": JobKind(stats.histogram, {"bin_edges": Param(_bin_edges, required=True), "dp": Param(_dp),
                                                 **VERTICAL}),
    "model.linear_regression": JobKind(models.linear_regression, {
        "label": Param(_string, required=True), "alpha": Param(_non_negative), "fit_intercept": Param(_bool),
        "holdout": Param(_fraction), "seed": Param(_count(0, 2**31 - 1)), "keep_shared": Param(_bool),
        "own_coefficients": Param(_bool), "dp": Param(_dp), **VERTICAL}, _private_model("model.linear_regression")),
    "model.logistic_regression": JobKind(models.logistic_regression, {
        "label": Param(_string, required=True), "alpha": Param(_non_negative), "fit_intercept": Param(_bool),
        "epochs": Param(_count(1, 200)), "tolerance": Param(_non_negative), "holdout": Param(_fraction),
        "seed": Param(_count(0, 2**31 - 1)), "keep_shared": Param(_bool), "own_coefficients": Param(_bool),
        "dp": Param(_dp), **VERTICAL}, _private_model("model.logistic_regression")),
    "model.mlp": JobKind(models.mlp, {
        "label": Param(_string, required=True), "hidden": Param(_hidden), "output": Param(_one_of("sigmoid", "softmax")),
        "classes": Param(_count(2, 1000)), "epochs": Param(_count(1, 200)), "batch_size": Param(_count(1, 65536)),
        "learning_rate": Param(_rate), "holdout": Param(_fraction), "seed": Param(_count(0, 2**31 - 1)),
        "keep_shared": Param(_bool), **VERTICAL}, _network),
    "model.predict": JobKind(models.predict, {"reveal": Param(_one_of("probabilities", "classes")), **VERTICAL}),
    "model.evaluate": JobKind(models.evaluate, {"label": Param(_string, required=True), **VERTICAL}),
    "psi.intersect": JobKind(intersection.intersect, {"cardinality_only": Param(_bool), **VERTICAL}, _vertical_only),
}
PROGRAMS: dict[str, Program] = {name: kind.program for name, kind in KINDS.items()}


def run(ctx: JobContext) -> dict[str, Result] | None:
    """A job's program at this party: vertical jobs first intersect and align the
    parties' rows (mpc.intersection), then the kind's program runs."""
    if ctx.rules.require_dp and "dp" not in ctx.parameters:  # this party's own rule, again where its data is used
        raise FailedPrecondition("this party's policy requires differential privacy for every release (parameter dp)")
    if ctx.partitioning == "vertical" and not ctx.aligned:
        from mpc.intersection import align  # (imports this package's context module)

        ctx = align(ctx)
    return PROGRAMS[ctx.kind](ctx)


def validate_inputs(kind: str, parameters: dict[str, Any], vertical: bool, inputs: list[tuple[str, list[str]]],
                    receivers: list[str]) -> None:
    KINDS[kind].inputs(parameters, vertical, inputs, receivers)  # the kind's own, more specific, first
    if not vertical and len(inputs) > 1:  # horizontal: every party's rows hold the same columns, in one order
        (first, columns), *others = inputs
        for party, theirs in others:
            if theirs != columns:
                how = "in another order" if sorted(theirs) == sorted(columns) else "other columns"
                raise InvalidArgument(f"a horizontal job reads the same columns at every party, in one order: "
                                      f"{first} lists {columns}, {party} {how} {theirs}")


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
