"""Linear regression against an exact float64 solve, over features of random
offset, scale, shape, outliers, correlation, coefficients (some zero), label
noise (down to a near-perfect fit), penalty and size, horizontal and vertical:
each fit comes back within the README's documented accuracy or the job is
refused with a clear error. Never a wrong number. Real CrypTen, one process per
party.

The reference solves the normal equations on standardized columns: scikit-learn's
LinearRegression drops a column whose scale is ~1e-7 of another's (its lstsq
cut-off) and answered R^2 0.455 where the fit's is 0.991."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from statskit import Session, Task
from test_models_linear import assert_matches

pytestmark = pytest.mark.multiprocess

# CI replays a fixed sample (a landing must not hinge on a draw); runs elsewhere explore anew
EXPLORE = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None,
               derandomize=bool(os.environ.get("CI")))


class Exact:
    """Ridge (alpha in the data's units, the intercept unpenalized) solved in
    float64 on standardized columns."""

    def __init__(self, x: np.ndarray, y: np.ndarray, alpha: float) -> None:
        mean, sd = x.mean(axis=0), x.std(axis=0)
        z = (x - mean) / sd
        scaled = np.linalg.solve(z.T @ z + alpha * np.diag(1 / sd**2), z.T @ (y - y.mean()))
        self.coef_ = scaled / sd
        self.intercept_ = y.mean() - self.coef_ @ mean

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        residual = y - x @ self.coef_ - self.intercept_
        return float(1 - residual @ residual / np.sum((y - y.mean()) ** 2))


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    d = draw(st.integers(1, 4))
    rows = draw(st.integers(3 * d + 8, 600))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["normal", "uniform", "heavy", "correlated", "conditioned"]))
    condition = 10.0 ** draw(st.integers(2, 8))
    x = {"normal": lambda: rng.normal(size=(rows, d)), "uniform": lambda: rng.uniform(-1, 1, (rows, d)),
         "heavy": lambda: rng.standard_t(3, size=(rows, d)),
         "correlated": lambda: rng.normal(size=(rows, d)) + 0.9 * rng.normal(size=(rows, 1)),
         "conditioned": lambda: conditioned(rng, rows, d, condition)}[shape]()
    if draw(st.booleans()):  # a few outliers
        x[rng.integers(0, rows, max(1, rows // 100))] *= 10.0 ** draw(st.integers(1, 2))
    scales = 10.0 ** np.array([draw(st.integers(-4, 6)) for _ in range(d)])
    offsets = np.array([draw(st.sampled_from([0.0, 1.0, -50.0, 1e3, -1e5])) for _ in range(d)]) * scales
    x = x * scales + offsets
    coefficients = rng.normal(size=d) / scales * 10.0 ** draw(st.integers(-2, 3))
    coefficients[rng.random(d) < 0.25] = 0.0
    signal = (x - x.mean(axis=0)) @ coefficients
    offset = draw(st.sampled_from([0.0, 7.0, -3e4]))
    # the label's spread stays above 1e-9 of its offset: below, float64 holds only a few distinct labels and no
    # reference (numpy's either) is defined to 1e-3
    noise = max(10.0 ** draw(st.integers(-6, 1)) * max(float(signal.std()), 1e-6), 1e-9 * abs(offset))
    y = signal + offset + rng.normal(0, noise, rows)
    return x, y, draw(st.sampled_from([0.0, 0.1, 10.0]))


def conditioned(rng: np.random.Generator, rows: int, d: int, condition: float) -> np.ndarray:
    """Features whose covariance has eigenvalues spread geometrically from 1 to
    1 / condition in random directions (d = 1: plain normal)."""
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return rng.normal(size=(rows, d)) * np.sqrt(np.geomspace(1, 1 / condition, d)) @ rotation.T


@settings(max_examples=15, **EXPLORE)
@given(problem=problems(), partitioning=st.sampled_from(["horizontal", "vertical"]), data=st.data())
def test_linear_regression_is_right_or_refused(two: Session, problem: tuple, partitioning: str,
                                               data: st.DataObject) -> None:
    x, y, alpha = problem
    d = x.shape[1]
    names = [f"x{j}" for j in range(d)] + ["y"]
    if partitioning == "horizontal":
        cut = data.draw(st.integers(1, len(x) - 1))
        task = Task("model.linear_regression", "horizontal", [np.column_stack([x, y])[:cut], np.column_stack([x, y])[cut:]],
                    [names, names], {"label": "y", "alpha": alpha})
    else:  # party 0 holds features, party 1 the rest (perhaps none) and the label
        at = data.draw(st.integers(1, d))
        keys = [np.array([f"k{i}" for i in range(len(x))])] * 2
        task = Task("model.linear_regression", "vertical", [x[:, :at], np.column_stack([x[:, at:], y])],
                    [names[:at], names[at:]], {"label": "y", "alpha": alpha}, {}, keys)
    status, answer = two.run(task)
    event(f"{partitioning}: {status if status == 'ok' else answer.split(':')[0]}")  # --hypothesis-show-statistics
    if status == "ok":
        assert_matches(answer, Exact(x, y, alpha), x, y)  # the README's bounds
    else:
        assert answer.startswith(("FAILED_PRECONDITION", "INVALID_ARGUMENT")), answer


HEAVY = {
    # lognormal (sigma = 1) incomes over 10,000 rows span 15 to 27 standard deviations (eight draws): 26 here
    "incomes": lambda rng: np.column_stack([rng.lognormal(10, 1, 10_000), rng.normal(size=10_000)]),
    # sigma = 2.5: ~110 standard deviations
    "lognormal 2.5": lambda rng: np.column_stack([rng.lognormal(3, 2.5, 20_000), rng.normal(size=20_000)]),
    # California housing's shape: occupancy ~120 standard deviations, rooms ~55
    "occupancy": lambda rng: np.column_stack([np.r_[rng.gamma(2, 1.5, 19_997), 400, 900, 1243],
                                              np.r_[rng.normal(5, 2.5, 19_998), 141, 90]]),
}


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
@pytest.mark.parametrize("case", sorted(HEAVY))
def test_heavy_tailed_features_are_answered(two: Session, case: str, partitioning: str) -> None:
    """Horizontal linear regression tightens each column's frame by a public 2^j
    (stats.horizontal.tightened_moments), so a range of hundreds of standard
    deviations is answered within the README's bounds (it was refused beyond ~20);
    vertically, features far out at both parties (occupancy 2^7, rooms 2^6) are
    multiplied in two limbs (stats.vertical.cross_correlations; refused before)."""
    rng = np.random.default_rng(3)
    x = HEAVY[case](rng)
    assert np.ptp(x[:, 0]) / x[:, 0].std() > 25
    y = 0.5 * x[:, 1] / x[:, 1].std() + 0.3 * x[:, 0] / x[:, 0].std() + rng.normal(size=len(x))
    table = np.column_stack([x, y])
    for alpha in (0.0, 10.0):
        if partitioning == "horizontal":
            task = Task("model.linear_regression", "horizontal", np.array_split(table, 2), [["a", "b", "y"]] * 2,
                        {"label": "y", "alpha": alpha})
        else:
            keys = [np.array([f"k{i}" for i in range(len(x))])] * 2
            task = Task("model.linear_regression", "vertical", [table[:, :1], table[:, 1:]], [["a"], ["b", "y"]],
                        {"label": "y", "alpha": alpha}, {}, keys)
        status, answer = two.run(task)
        assert status == "ok", answer
        assert_matches(answer, Exact(x, y, alpha), x, y)


def test_logistic_regression_refuses_a_heavy_tailed_column_by_name(two: Session) -> None:
    """Logistic regression shares each row in the range's frame at 12 bits and keeps
    the ~20-deviation limit (README): the job names the column instead of answering."""
    rng = np.random.default_rng(3)
    x = HEAVY["incomes"](rng)
    table = np.column_stack([x, (x[:, 1] + rng.normal(size=len(x)) > 0).astype(float)])
    status, answer = two.run(Task("model.logistic_regression", "horizontal", np.array_split(table, 2),
                                  [["income", "other", "y"]] * 2, {"label": "y", "epochs": 1}))
    assert status == "refused" and answer.startswith("FAILED_PRECONDITION") and "'income'" in answer, answer


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_ill_conditioned_features_are_solved_until_the_documented_limit(two: Session, partitioning: str) -> None:
    """Eight features whose correlation matrix has condition 5.6e5 and 1.7e6 (largest
    variance inflation factors 3.4e4 and 9.9e4: diabetes has 470 and 59) are solved
    within the README's bounds; condition 1.7e7 (inflation 9.4e5, past the limit
    1e-3 / (sqrt(8) 2^-30) = 3.8e5) is refused, naming the collinear columns, never
    answered wrongly. (Refusal started near condition 5e4 with the Newton-Schulz
    solve at 32 bits, near 500 before its exact-residual refinement.)"""
    for spread, condition, solved in ((1e6, 5.6e5, True), (3e6, 1.7e6, True), (3e7, 1.7e7, False)):
        rng = np.random.default_rng(11)
        x = conditioned(rng, 2000, 8, spread) * rng.uniform(0.5, 50, 8) + rng.uniform(-100, 100, 8)
        assert np.linalg.cond(np.corrcoef(x, rowvar=False)) == pytest.approx(condition, rel=0.05)
        y = x @ rng.normal(size=8) + rng.normal(0, 3, len(x))
        names = [f"x{j}" for j in range(8)] + ["y"]
        table = np.column_stack([x, y])
        if partitioning == "horizontal":
            task = Task("model.linear_regression", "horizontal", np.array_split(table, 2), [names] * 2, {"label": "y"})
        else:
            keys = [np.array([f"k{i}" for i in range(len(x))])] * 2
            task = Task("model.linear_regression", "vertical", [table[:, :4], table[:, 4:]], [names[:4], names[4:]],
                        {"label": "y"}, {}, keys)
        status, answer = two.run(task)
        if solved:
            assert status == "ok", answer
            assert_matches(answer, Exact(x, y, 0.0), x, y)
        else:
            assert status == "refused" and "the columns 'x1', 'x2', 'x4' are (nearly) collinear" in answer, answer
