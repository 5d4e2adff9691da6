"""Joint models trained under MPC. Each program's docstring says what it reveals."""

from mpc.programs.models.linear import linear_regression

__all__ = ["linear_regression"]
