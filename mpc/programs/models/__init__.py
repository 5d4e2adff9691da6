"""Joint models trained under MPC. Each program's docstring says what it reveals;
with parameter dp, models/private.py."""

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import private as dp_of
from mpc.programs.models import linear, logistic, private
from mpc.programs.models.inference import evaluate, predict
from mpc.programs.models.mlp import mlp

__all__ = ["evaluate", "linear_regression", "logistic_regression", "mlp", "predict"]


def linear_regression(ctx: JobContext) -> dict[str, Result] | None:
    return (private.linear_regression if dp_of(ctx.parameters) else linear.linear_regression)(ctx)


def logistic_regression(ctx: JobContext) -> dict[str, Result] | None:
    return (private.logistic_regression if dp_of(ctx.parameters) else logistic.logistic_regression)(ctx)
