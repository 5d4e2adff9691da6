"""Joint models trained under MPC. Each program's docstring says what it reveals;
with parameter dp, models/private.py."""

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LinearParameters, LogisticParameters
from mpc.catalogue.schemas import private as dp_of
from mpc.programs.models import constants, linear, logistic, multiclass, private
from mpc.programs.models.inference import evaluate, predict
from mpc.programs.models.mlp import mlp

__all__ = ["evaluate", "linear_regression", "logistic_regression", "mlp", "predict"]


def linear_regression(ctx: JobContext) -> dict[str, Result] | None:
    if dp_of(ctx.parameters):
        return private.linear_regression(ctx)
    return constants.without_constant_features(ctx, ctx.settings(LinearParameters).label, linear.linear_regression)


def logistic_regression(ctx: JobContext) -> dict[str, Result] | None:
    if dp_of(ctx.parameters):
        return private.logistic_regression(ctx)
    settings = ctx.settings(LogisticParameters)
    program = multiclass.logistic_regression if settings.classes > 2 else logistic.logistic_regression
    return constants.without_constant_features(ctx, settings.label, program)
