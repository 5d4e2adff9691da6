"""Joint models trained under MPC. Each program's docstring says what it reveals."""

from mpc.programs.models.inference import evaluate, predict
from mpc.programs.models.linear import linear_regression
from mpc.programs.models.logistic import logistic_regression
from mpc.programs.models.mlp import mlp

__all__ = ["evaluate", "linear_regression", "logistic_regression", "mlp", "predict"]
