"""Accuracy report: models with default parameters on scikit-learn's bundled
datasets across three parties (the test suite's splits, tests/mpc/test_models_bundled.py),
horizontally and vertically, beside scikit-learn on the same rows; then where
linear regression starts refusing ill-conditioned features (eight features, the
correlation matrix's condition swept from 1e4 to 1e8, two parties).

Prints one row per dataset x partitioning x metric: mpcgate's value, scikit-learn's,
their difference and the job's seconds; then condition, largest variance inflation
factor, outcome and the largest standardized-coefficient error.

Usage: .venv/bin/python benchmarks/bundled.py [--only bundled|conditioning]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"),
                str(Path(__file__).resolve().parent.parent / "tests" / "mpc")]
from sklearn import datasets  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.multiclass import OneVsRestClassifier  # noqa: E402
from statskit import Session, Task  # noqa: E402  (the test suite's party harness)
from test_models_bundled import CLASSIFICATION, _held_out, _split, california  # noqa: E402
from test_models_numerics import Exact, conditioned  # noqa: E402


def _row(name: str, partitioning: str, metric: str, ours: float, theirs: float, seconds: float) -> None:
    print(f"{name:14s} {partitioning:10s} {metric:18s} {ours:9.4f} {theirs:9.4f} {ours - theirs:+9.4f} {seconds:7.1f}",
          flush=True)


def _timed(session: Session, task: Task) -> tuple[dict, float]:
    started = time.perf_counter()
    status, result = session.run(task, timeout=900)
    if status != "ok":
        raise SystemExit(f"{task.kind} {task.partitioning}: {result}")
    return result, time.perf_counter() - started


def bundled(three: Session) -> None:
    print(f"{'dataset':14s} {'split':10s} {'metric':18s} {'mpcgate':>9s} {'sklearn':>9s} {'diff':>9s} {'seconds':>7s}")
    regression = {"diabetes": lambda: datasets.load_diabetes(return_X_y=True), "california-like": california}
    for name, load in regression.items():
        x, y = load()
        for partitioning in ("horizontal", "vertical"):
            result, seconds = _timed(three, _split("model.linear_regression", partitioning, x, y, {"label": "y"}))
            _row(name, partitioning, "R^2 (training)", result["r2"][0][0], LinearRegression().fit(x, y).score(x, y),
                 seconds)
    sets = {"breast_cancer": lambda: datasets.load_breast_cancer(return_X_y=True), **CLASSIFICATION}
    for name, load in sets.items():
        x, y = load()
        classes = int(y.max()) + 1
        seed = 2 if name == "breast_cancer" else 3
        for partitioning in ("horizontal", "vertical"):
            parameters = {"label": "y", "seed": seed} | ({"classes": classes} if classes > 2 else {})
            result, seconds = _timed(three, _split("model.logistic_regression", partitioning, x, y.astype(float),
                                                   parameters))
            mask = _held_out(partitioning, len(y), seed)
            center = x[~mask].mean(axis=0)
            reference = LogisticRegression(max_iter=10_000, tol=1e-10)
            if classes > 2:
                ovr = OneVsRestClassifier(reference).fit(x[~mask] - center, y[~mask])
                mine = (x @ result["coefficients"][0].T + result["intercept"][0]).argmax(1)
                _row(name, partitioning, "accuracy (all)", float((mine == y).mean()), ovr.score(x - center, y), seconds)
                continue
            reference.fit(x[~mask] - center, y[~mask])
            _row(name, partitioning, "AUC (held out)", result["auc"][0][0],
                 roc_auc_score(y[mask], reference.decision_function(x[mask] - center)), seconds)
            mine = x @ result["coefficients"][0] + result["intercept"][0][0] > 0
            _row(name, partitioning, "accuracy (all)", float((mine == y).mean()), reference.score(x - center, y), 0.0)


def conditioning(two: Session) -> None:
    print(f"\n{'split':10s} {'condition':>10s} {'largest VIF':>12s} {'outcome':10s} {'std. coef. error':>16s}")
    for partitioning in ("horizontal", "vertical"):
        for spread in 10.0 ** np.arange(4, 8.5, 0.5):
            rng = np.random.default_rng(11)
            x = conditioned(rng, 2000, 8, spread) * rng.uniform(0.5, 50, 8) + rng.uniform(-100, 100, 8)
            y = x @ rng.normal(size=8) + rng.normal(0, 3, len(x))
            names = [f"x{j}" for j in range(8)] + ["y"]
            table = np.column_stack([x, y])
            if partitioning == "horizontal":
                task = Task("model.linear_regression", "horizontal", np.array_split(table, 2), [names] * 2,
                            {"label": "y"})
            else:
                keys = [np.array([f"k{i}" for i in range(len(x))])] * 2
                task = Task("model.linear_regression", "vertical", [table[:, :4], table[:, 4:]],
                            [names[:4], names[4:]], {"label": "y"}, {}, keys)
            status, answer = two.run(task)
            correlation = np.corrcoef(x, rowvar=False)
            inflation = np.linalg.inv(correlation).diagonal().max()
            error = "-"
            if status == "ok":
                exact = Exact(x, y, 0.0)
                error = f"{(np.abs(answer['coefficients'][0] - exact.coef_) * x.std(0) / y.std()).max():.1e}"
            print(f"{partitioning:10s} {np.linalg.cond(correlation):10.1e} {inflation:12.1e} {status:10s} {error:>16s}",
                  flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["bundled", "conditioning"])
    args = parser.parse_args()
    if args.only != "conditioning":
        session = Session(3)
        bundled(session)
        session.close()
    if args.only != "bundled":
        session = Session(2)
        conditioning(session)
        session.close()
