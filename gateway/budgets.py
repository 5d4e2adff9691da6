"""Each dataset's differential-privacy budget at its own party: every
differentially private job that reads the dataset is charged at review (before
anything runs), a job that would exceed the budget is refused saying what is
left, and the charges persist in the gateway's database.

A charge holds the job's noisy releases that touch the dataset, as the
accountant's events (noise parameter and integer sensitivity of each release,
mpc.programs.noise_plan.releases). What a dataset has spent is the composition
of the charges of jobs still under way here or whose results were released;
a job that ended here before anything was released (refused elsewhere, failed,
cancelled) costs nothing. Composition is by Google's dp-accounting privacy loss
distributions at the budget's delta (tighter than adding epsilons), or the sum of
epsilons when the budget's delta is 0 (pure differential privacy).
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.db import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS dp_charges (
    dataset  TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    epsilon  REAL NOT NULL,
    events   TEXT NOT NULL,   -- JSON [[noise_parameter, sensitivity, count], ...]
    released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, job_id)
);
"""

Events = list[tuple[float, int, int]]  # or [("gaussian", rho, delta)]


def composed(charges: list[tuple[float, Events]], delta: float) -> float:
    """The epsilon that `charges` (each: the job's epsilon, its events) spend together at `delta`.

    A Laplace release is an epsilon_i-DP event (epsilon_i = noise parameter x
    sensitivity), a Gaussian job's a rho-zCDP one, (epsilon_i, delta_i) at the job's
    delta (mpc.programs.gaussian.epsilon_of). They compose through dp-accounting's
    privacy loss distribution of the pair that dominates every (epsilon_i,
    delta_i)-DP mechanism: rigorous whatever the sensitivity (the discrete
    Laplace's own distribution costs time linear in it, minutes at 2^27) and within
    0.3% of it at the sizes measured. A Gaussian charge cannot fit a budget of delta 0."""
    if not charges:
        return 0.0
    pure = all(not isinstance(event[0], str) for _, events in charges for event in events)
    total = sum(epsilon for epsilon, _ in charges)
    if delta <= 0:
        return total if pure else math.inf
    from dp_accounting.pld import common, privacy_loss_distribution

    from mpc.programs.gaussian import epsilon_of

    alike: Counter[tuple[float, float]] = Counter()  # the same release in many jobs: one self-composition
    for _, events in charges:
        for first, second, third in events:
            if isinstance(first, str):  # ("gaussian", rho, the job's delta)
                alike[(epsilon_of(float(second), float(third)), float(third))] += 1
            else:
                alike[(first * second, 0.0)] += int(third)
    distribution = None
    for (epsilon, its_delta), count in alike.items():
        one = privacy_loss_distribution.from_privacy_parameters(common.DifferentialPrivacyParameters(epsilon, its_delta))
        part = one.self_compose(count)
        distribution = part if distribution is None else distribution.compose(part)
    assert distribution is not None
    spent = distribution.get_epsilon_for_delta(delta)
    return min(spent, total) if pure else spent


class Budgets:
    def __init__(self, database: Path) -> None:
        self._db = open_database(database, SCHEMA)
        self._lock = threading.Lock()
        self._charging = threading.Lock()
        self.ended: Callable[[str], bool] = lambda job_id: False
        """Whether a job has ended at this party (set by the gateway's wiring)."""
        self.on_charge: Callable[[str, str, float], None] = lambda dataset, job_id, epsilon: None
        """Audits a charge (dataset, job, epsilon; set by the gateway's wiring)."""

    def _counted(self, dataset: str, but: str = "") -> list[tuple[float, Events]]:
        with self._lock:
            rows = self._db.execute("SELECT job_id, epsilon, events, released FROM dp_charges WHERE dataset = ?",
                                    (dataset,)).fetchall()
        return [(epsilon, [tuple(e) for e in json.loads(events)]) for job_id, epsilon, events, released in rows
                if job_id != but and (released or not self.ended(job_id))]

    def spent(self, dataset: dpb.Dataset) -> dpb.PrivacySpent:
        charges = self._counted(dataset.name)
        return dpb.PrivacySpent(epsilon=composed(charges, dataset.policy.dp_budget.delta), jobs=len(charges))

    def charge(self, dataset: dpb.Dataset, job_id: str, epsilon: float, events: Events) -> str:
        """Records the job's charge (once) unless it would exceed the dataset's
        budget; returns why not ('' when charged or when there is no budget)."""
        budget = dataset.policy.dp_budget
        if budget.epsilon <= 0:
            return ""
        with self._charging:  # reviews run on the event loop and in start and release threads: check and charge at once
            return self._charge(dataset, budget, job_id, epsilon, events)

    def _charge(self, dataset: dpb.Dataset, budget: dpb.PrivacyBudget, job_id: str, epsilon: float,
                events: Events) -> str:
        others = self._counted(dataset.name, but=job_id)
        after = composed([*others, (epsilon, events)], budget.delta)
        if math.isinf(after):
            return (f"dataset {dataset.name!r}'s privacy budget (epsilon {budget.epsilon:g}, delta {budget.delta:g}) "
                    "cannot hold this job's delta: the gaussian mechanism needs a budget with a larger delta")
        if after > budget.epsilon * (1 + 1e-9):
            before = composed(others, budget.delta)  # (for the refusal only)
            left = max(budget.epsilon - before, 0.0)
            return (f"dataset {dataset.name!r}'s privacy budget (epsilon {budget.epsilon:g}, delta {budget.delta:g}) "
                    f"has {left:.4g} left; this job would bring the spent epsilon from {before:.4g} to {after:.4g}")
        with self._lock:
            added = self._db.execute(
                "INSERT OR IGNORE INTO dp_charges (dataset, job_id, epsilon, events) VALUES (?, ?, ?, ?)",
                (dataset.name, job_id, epsilon, json.dumps(events))).rowcount
        if added:
            self.on_charge(dataset.name, job_id, epsilon)
        return ""

    def charges(self, job_id: str) -> dict[str, float]:
        """The job's charges, by dataset."""
        with self._lock:
            rows = self._db.execute("SELECT dataset, epsilon FROM dp_charges WHERE job_id = ?", (job_id,)).fetchall()
        return dict(rows)

    def released(self, job_id: str) -> None:
        """The job's results are leaving this party: its charges are spent for good."""
        with self._lock:
            self._db.execute("UPDATE dp_charges SET released = 1 WHERE job_id = ?", (job_id,))


def valid(budget: dpb.PrivacyBudget) -> bool:
    return math.isfinite(budget.epsilon) and budget.epsilon > 0 and 0 <= budget.delta < 1
