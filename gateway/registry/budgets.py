"""Each privacy unit's differential-privacy budget at its own party: every
differentially private job that reads the dataset is charged at review (before
anything runs), a job that would exceed the budget is refused saying what is
left, and the charges persist in the gateway's database.

A charge holds the job's noisy releases that touch the dataset, as the
accountant's events (noise parameter and integer sensitivity of each release,
mpc.privacy.plan.releases). What a dataset has spent is the composition
of the charges of jobs still under way here or whose results were released;
a job that ended here before anything was released (refused elsewhere, failed,
cancelled) costs nothing. Composition is by Google's dp-accounting privacy loss
distributions at the budget's delta (tighter than adding epsilons), or the sum of
epsilons when the budget's delta is 0 (pure differential privacy).

A budget belongs to the rows, not to a name: a dataset's privacy unit is its
policy's `privacy_unit` (the owner declares that two datasets hold the same
people, such as "customer"), else its file's content (the same file registered
twice, or a column subset of it, is one unit). Every dataset of a unit draws
from the unit's charges; each is checked against its own policy's budget.
Every charge is an audit entry (`dp.charge`, with its unit); `disagreements`
recomputes the charges from the audit chain, so a row deleted from the table
(an administrator "resetting" a budget) is reported by `mpcgate audit verify`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
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
    unit     TEXT NOT NULL DEFAULT '',  -- the privacy unit the charge draws from (unit_of)
    charged_at REAL NOT NULL DEFAULT 0,  -- seconds since the epoch (0: charged before this column)
    PRIMARY KEY (dataset, job_id)
);
"""


def unit_of(dataset: dpb.Dataset) -> str:
    """The privacy unit whose budget a dataset draws from."""
    if dataset.policy.privacy_unit:
        return f"unit:{dataset.policy.privacy_unit}"
    return f"file:{dataset.content_sha256}" if dataset.content_sha256 else f"dataset:{dataset.name}"

Events = list[tuple[float, int, int]]  # or [("gaussian", rho, delta)]


def composed(charges: list[tuple[float, Events]], delta: float) -> float:
    """The epsilon that `charges` (each: the job's epsilon, its events) spend together at `delta`.

    A Laplace release is an epsilon_i-DP event (epsilon_i = noise parameter x
    sensitivity), a Gaussian job's a rho-zCDP one, (epsilon_i, delta_i) at the job's
    delta (mpc.privacy.accounting.epsilon_of). They compose through dp-accounting's
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

    from mpc.privacy.accounting import epsilon_of

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
        if "unit" not in {row[1] for row in self._db.execute("PRAGMA table_info(dp_charges)")}:  # an older database
            self._db.execute("ALTER TABLE dp_charges ADD COLUMN unit TEXT NOT NULL DEFAULT ''")
            self._db.execute("UPDATE dp_charges SET unit = 'dataset:' || dataset")
        if "charged_at" not in {row[1] for row in self._db.execute("PRAGMA table_info(dp_charges)")}:
            self._db.execute("ALTER TABLE dp_charges ADD COLUMN charged_at REAL NOT NULL DEFAULT 0")
        self._lock = threading.Lock()
        self._charging = threading.Lock()
        self.ended: Callable[[str], bool] = lambda job_id: False
        """Whether a job has ended at this party (set by the gateway's wiring)."""
        self.on_charge: Callable[[str, str, float, str], None] = lambda dataset, job_id, epsilon, unit: None
        """Audits a charge (dataset, job, epsilon, unit; set by the gateway's wiring)."""

    def _counted(self, unit: str, names: Sequence[str], but: str = "") -> list[tuple[float, Events]]:
        """The charges that count against a unit: those made to it, and those made
        to `names` (the datasets now in it: an owner may declare a unit after
        charges); a job reading two datasets of one unit is charged to each."""
        marks = ",".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(f"SELECT job_id, epsilon, events, released FROM dp_charges WHERE unit = ? "
                                    f"OR dataset IN ({marks})", (unit, *names)).fetchall()
        return [(epsilon, [tuple(e) for e in json.loads(events)]) for job_id, epsilon, events, released in rows
                if job_id != but and (released or not self.ended(job_id))]

    def _history(self, unit: str, names: Sequence[str]) -> list[dpb.PrivacyChargeEntry]:
        """The charges `_counted` counts, as entries, oldest first."""
        marks = ",".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(f"SELECT job_id, dataset, epsilon, released, charged_at FROM dp_charges WHERE "
                                    f"unit = ? OR dataset IN ({marks}) ORDER BY charged_at, rowid",
                                    (unit, *names)).fetchall()
        out = []
        for job_id, dataset, epsilon, released, when in rows:
            if released or not self.ended(job_id):
                entry = dpb.PrivacyChargeEntry(job_id=job_id, dataset=dataset, epsilon=epsilon, released=bool(released))
                entry.charged_at.FromSeconds(int(when))
                out.append(entry)
        return out

    def spent(self, dataset: dpb.Dataset, names: Sequence[str] = ()) -> dpb.PrivacySpent:
        """What the dataset's unit has spent (`names`: the datasets in it)."""
        charges = self._counted(unit_of(dataset), names or [dataset.name])
        return dpb.PrivacySpent(epsilon=composed(charges, dataset.policy.dp_budget.delta), jobs=len(charges),
                                charges=self._history(unit_of(dataset), names or [dataset.name]))

    def charge(self, dataset: dpb.Dataset, job_id: str, epsilon: float, events: Events,
               names: Sequence[str] = ()) -> str:
        """Records the job's charge (once) unless it would exceed the dataset's
        budget, composed over its unit (`names`: the datasets in it); returns why
        not ('' when charged or when there is no budget)."""
        budget = dataset.policy.dp_budget
        if budget.epsilon <= 0:
            return ""
        with self._charging:  # reviews run on the event loop and in start and release threads: check and charge at once
            return self._charge(dataset, budget, job_id, epsilon, events, names or [dataset.name])

    def _charge(self, dataset: dpb.Dataset, budget: dpb.PrivacyBudget, job_id: str, epsilon: float,
                events: Events, names: Sequence[str]) -> str:
        unit = unit_of(dataset)
        others = self._counted(unit, names, but=job_id)
        after = composed([*others, (epsilon, events)], budget.delta)
        if math.isinf(after):
            return (f"dataset {dataset.name!r}'s privacy budget (epsilon {budget.epsilon:g}, delta {budget.delta:g}) "
                    "cannot hold this job's delta: the gaussian mechanism needs a budget with a larger delta")
        if after > budget.epsilon * (1 + 1e-9):
            before = composed(others, budget.delta)  # (for the refusal only)
            left = max(budget.epsilon - before, 0.0)
            shared = f" (its rows are also datasets {', '.join(n for n in names if n != dataset.name)})" \
                if len(names) > 1 else ""
            return (f"dataset {dataset.name!r}'s privacy budget (epsilon {budget.epsilon:g}, delta {budget.delta:g}) "
                    f"has {left:.4g} left{shared}; this job would bring the spent epsilon from {before:.4g} to "
                    f"{after:.4g}")
        with self._lock:
            added = self._db.execute(
                "INSERT OR IGNORE INTO dp_charges (dataset, job_id, epsilon, events, unit, charged_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (dataset.name, job_id, epsilon, json.dumps(events), unit, time.time())
            ).rowcount
        if added:
            self.on_charge(dataset.name, job_id, epsilon, unit)
        return ""

    def charges(self, job_id: str) -> dict[str, float]:
        """The job's charges, by dataset."""
        with self._lock:
            rows = self._db.execute("SELECT dataset, epsilon FROM dp_charges WHERE job_id = ?", (job_id,)).fetchall()
        return dict(rows)

    def charged(self, job_id: str) -> list[tuple[str, float, bool]]:
        """The job's charges: (dataset, epsilon, released), by dataset."""
        with self._lock:
            rows = self._db.execute("SELECT dataset, epsilon, released FROM dp_charges WHERE job_id = ? "
                                    "ORDER BY dataset", (job_id,)).fetchall()
        return [(dataset, float(epsilon), bool(released)) for dataset, epsilon, released in rows]

    def released(self, job_id: str) -> None:
        """The job's results are leaving this party: its charges are spent for good."""
        with self._lock:
            self._db.execute("UPDATE dp_charges SET released = 1 WHERE job_id = ?", (job_id,))


def disagreements(database: Path) -> list[str]:
    """Where the charges table disagrees with the audit chain's `dp.charge`
    entries (a charge deleted or lowered by hand: a budget "reset"), by unit."""
    import sqlite3

    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        audited = [json.loads(d) | {"job": j} for j, d in db.execute(
            "SELECT subject, details FROM audit_log WHERE action = 'dp.charge' ORDER BY seq")]
        stored = {(d, j): e for d, j, e in db.execute("SELECT dataset, job_id, epsilon FROM dp_charges")} \
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'dp_charges'").fetchone() else {}
    finally:
        db.close()
    chain: dict[str, float] = {}
    table: dict[str, float] = {}
    problems = []
    for entry in audited:
        unit = entry.get("unit", f"dataset:{entry['dataset']}")
        chain[unit] = chain.get(unit, 0.0) + float(entry["epsilon"])
        have = stored.get((entry["dataset"], entry["job"]))
        table[unit] = table.get(unit, 0.0) + (have or 0.0)
        if have is None or not math.isclose(have, float(entry["epsilon"]), rel_tol=1e-5):
            problems.append(f"job {entry['job']}'s charge to dataset {entry['dataset']!r} "
                            f"(epsilon {entry['epsilon']}) is {'missing from' if have is None else 'altered in'} the "
                            "budget table")
    if problems:
        summary = ", ".join(f"{u}: epsilon {chain[u]:g} charged, {table[u]:g} in the table" for u in chain
                            if not math.isclose(chain[u], table[u], rel_tol=1e-5))
        problems.append(f"charged epsilon by privacy unit (sums of charges): {summary}")
    return problems
