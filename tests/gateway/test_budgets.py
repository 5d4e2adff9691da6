"""Privacy budgets (gateway.registry.budgets): charges composed by dp-accounting, refusal
with what is left, persistence across a restart (the database file reopened),
and no cost for a job that ended before anything was released."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.registry.budgets import Budgets, composed
from mpc.catalogue.kinds import KINDS, parse
from mpc.catalogue.schemas import build
from mpc.privacy.plan import releases as planned


def releases(kind: str, epsilon: float, columns: int) -> list[tuple[float, int, int]]:
    names = [f"c{i}" for i in range(columns)]
    return planned(kind, build(KINDS[kind].schema, {"dp": {"epsilon": epsilon}}), names, names)  # (no other parameter)


def dataset(epsilon: float, delta: float = 0.0) -> dpb.Dataset:
    return dpb.Dataset(name="loans", policy=dpb.Policy(dp_budget=dpb.PrivacyBudget(epsilon=epsilon, delta=delta)))


def test_a_budget_is_spent_refused_with_what_is_left_and_survives_a_restart(tmp_path: Path) -> None:
    budgets, charged = Budgets(tmp_path / "gateway.db"), []
    budgets.on_charge = lambda name, job, epsilon, unit: charged.append(job)
    events = releases("stats.describe", 4.0, 3)
    assert budgets.charge(dataset(10), "job-1", 4.0, events) == ""
    assert budgets.charge(dataset(10), "job-1", 4.0, events) == ""  # asked again at start and release: once
    assert budgets.charge(dataset(10), "job-2", 4.0, events) == ""
    refusal = budgets.charge(dataset(10), "job-3", 4.0, events)
    assert "has 2 left" in refusal and "from 8 to 12" in refusal
    assert charged == ["job-1", "job-2"]
    reopened = Budgets(tmp_path / "gateway.db")  # a restarted gateway
    spent = reopened.spent(dataset(10))
    assert (spent.epsilon, spent.jobs) == (8.0, 2)
    assert [(c.job_id, c.epsilon, c.released) for c in spent.charges] == [("job-1", 4.0, False), ("job-2", 4.0, False)]


def test_a_job_that_ended_before_release_costs_nothing(tmp_path: Path) -> None:
    budgets = Budgets(tmp_path / "gateway.db")
    ended = {"failed"}
    budgets.ended = lambda job: job in ended
    for job in ("released", "failed", "running"):
        assert budgets.charge(dataset(10), job, 3.0, releases("stats.describe", 3.0, 2)) == ""
    budgets.released("released")
    ended.add("released")  # released, then ended: spent for good
    spent = budgets.spent(dataset(10))
    assert (spent.epsilon, spent.jobs) == (6.0, 2)
    assert [(c.job_id, c.released) for c in spent.charges] == [("released", True), ("running", False)]


def test_the_accountant_composes_tighter_than_the_sum_at_a_positive_delta() -> None:
    charges = [(0.5, releases("stats.describe", 0.5, 4)) for _ in range(40)]
    tight = composed(charges, 1e-6)
    assert tight < 20.0 and tight == pytest.approx(composed(charges, 1e-6))
    assert composed(charges, 0.0) == pytest.approx(20.0)  # pure epsilon: the sum


def test_a_histogram_is_charged_as_one_release_per_column() -> None:
    (noise_parameter, sensitivity, count), = releases("stats.histogram", 2.0, 4)
    assert (noise_parameter, sensitivity, count) == (pytest.approx(0.25), 2, 4)  # epsilon 2 / 4 columns, over 2
    assert composed([(2.0, releases("stats.histogram", 2.0, 4))], 0.0) == 2.0
    assert composed([(2.0, releases("stats.histogram", 2.0, 4))], 1e-6) <= 2.0


def test_concurrent_reviews_never_overspend(tmp_path: Path) -> None:
    """Reviews run on the event loop and in the start and release threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    budgets = Budgets(tmp_path / "gateway.db")
    with ThreadPoolExecutor(8) as pool:
        refusals = list(pool.map(lambda i: budgets.charge(dataset(10), f"job-{i}", 1.0, releases("stats.describe", 1.0, 2)),
                                 range(24)))
    assert sum(not r for r in refusals) == 10 and budgets.spent(dataset(10)).epsilon == 10.0


def test_a_dataset_is_charged_for_the_releases_its_rows_move() -> None:
    """Vertical covariance over 3 + 2 columns: the 2-column dataset moves its own
    sums and squares and every product that involves one of its columns; a
    logistic regression's gradients move with every column of a row."""
    columns, mine = ["a", "b", "c", "d", "e"], ["d", "e"]
    events = planned("stats.covariance", parse("stats.covariance", {"dp": {"epsilon": 1.0}}), columns, mine)
    assert [count for _, _, count in events] == [2, 2, 10 - 3]
    total = 5 + 5 + 10
    assert all(noise_parameter * sensitivity == pytest.approx(1.0 / total) for noise_parameter, sensitivity, _ in events)
    logistic = planned("model.logistic_regression", parse("model.logistic_regression", {"dp": {"epsilon": 1.0}, "label": "e", "epochs": 3}), columns, mine)
    assert [count for _, _, count in logistic] == [1, 1, 6 - 3, 3 * 4, 3]  # d's moments; every epoch's gradient


def test_releases_at_large_sensitivities_compose() -> None:
    """Gradient releases move by 2^27 noise steps (the discrete Laplace's own
    privacy loss distribution would take minutes to build); ten jobs of epsilon 1
    compose to less than their sum at delta 1e-6."""
    events = planned("model.logistic_regression", parse("model.logistic_regression", {"dp": {"epsilon": 1.0}, "label": "y"}), ["a", "b", "y"], ["a", "b", "y"])
    assert max(sensitivity for _, sensitivity, _ in events) == 2**27
    assert composed([(1.0, events)] * 10, 1e-6) < 10.0


def test_a_gaussian_job_is_charged_its_delta() -> None:
    """A Gaussian charge cannot fit a pure budget (delta 0); at a positive delta it
    composes with Laplace charges, and its delta alone exhausts a smaller budget."""
    gaussian = planned("stats.describe", parse("stats.describe", {"dp": {"epsilon": 1.0, "delta": 1e-6, "mechanism": "gaussian"}}),
                       ["a", "b"], ["a", "b"])
    assert composed([(1.0, gaussian)], 0.0) == float("inf")
    alone = composed([(1.0, gaussian)], 1e-5)
    assert alone < 1.0  # more delta to spend than the job's: less epsilon
    both = composed([(1.0, gaussian), (1.0, releases("stats.describe", 1.0, 2))], 1e-5)
    assert alone < both < 2.0
    assert composed([(1.0, gaussian)], 1e-7) == float("inf")  # the job's own delta exceeds the budget's


def test_a_budget_follows_the_rows_and_a_deleted_charge_is_reported(tmp_path: Path) -> None:
    """The same file under two names, or two files the owner declares one privacy
    unit, draw from one budget; a charge deleted from the table (a budget
    "reset") disagrees with the audit chain's dp.charge entries."""
    from gateway.audit import AuditLog
    from gateway.registry.budgets import disagreements, unit_of

    database = tmp_path / "gateway.db"
    log = AuditLog(database)
    budgets = Budgets(database)
    budgets.on_charge = lambda name, job, epsilon, unit: log.append(
        "gateway", "dp.charge", job, "charged", {"dataset": name, "epsilon": repr(epsilon), "unit": unit})
    events = releases("stats.describe", 1.0, 1)

    def named(name: str, digest: str, unit: str = "") -> dpb.Dataset:
        return dpb.Dataset(name=name, content_sha256=digest, policy=dpb.Policy(
            dp_budget=dpb.PrivacyBudget(epsilon=1.0), privacy_unit=unit))

    assert unit_of(named("a", "f1")) == unit_of(named("b", "f1")) != unit_of(named("c", "f2"))
    assert budgets.charge(named("a", "f1"), "job-1", 1.0, events) == ""
    assert "has 0 left" in budgets.charge(named("b", "f1"), "job-2", 1.0, events)
    assert budgets.charge(named("c", "f2"), "job-3", 1.0, events) == ""  # other rows: another budget
    # declared afterwards, the unit takes in what its datasets were charged before
    assert "has 0 left" in budgets.charge(named("d", "f3", "customer"), "job-4", 1.0, events, ["c", "d"])
    assert disagreements(database) == []
    import sqlite3

    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM dp_charges WHERE job_id = 'job-1'")
    problems = disagreements(database)
    assert any("job-1" in p and "missing" in p for p in problems) and any("epsilon 1 charged, 0" in p for p in problems)
