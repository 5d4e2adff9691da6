"""What a job will cost, estimated from its spec before anything runs, and the
gateway's quotas on it (config `[quotas]`).

One operator held a job slot at every party for an hour with a 4 x 1024 MLP
over 200 epochs on 569 rows: nothing weighed a job's cost before it ran. The
estimate is in work units, rows x parameters x epochs (each row meets each
parameter once per epoch: a secure product, about 16 bytes per party between two
parties): models by their parameter count (an MLP's from its widths), statistics
by rows x columns^2 (their products), weights of evidence and stability indices
by rows x features x bins, an intersection and inference by rows x columns. A
gateway refuses, or holds for its operators' approval, a job whose estimate on
its own rows exceeds `job_cost`; the coordinator also refuses at
submit (RESOURCE_EXHAUSTED, with the estimate and the quota) a job over it on the
rows it knows, and one that would take an operator's submitted estimates past
`operator_cost_per_day` in 24 hours.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.db import open_database
from mpc.catalogue.schemas import BinnedParameters, LinearParameters, LogisticParameters, MlpParameters, Parameters

BYTES_PER_UNIT = 16
"""Two-party Beaver products: about 16 bytes per party per product (DESIGN.md)."""
DAY_S = 86_400.0


@dataclass(frozen=True)
class Quotas:
    """Config `[quotas]`: 0 means no limit."""

    job_cost: float = 0.0
    operator_cost_per_day: float = 0.0
    over: str = "refuse"  # or "manual": a job over job_cost waits for this party's approval


@dataclass(frozen=True)
class Estimate:
    units: float
    rows: int
    parameters: int
    epochs: int

    def __str__(self) -> str:
        return (f"an estimated {self.units:.3g} work units ({self.rows} rows x {self.parameters} parameters x "
                f"{self.epochs} epochs, ~{self.units * BYTES_PER_UNIT / 1e9:.3g} GB per party)")


def estimate(spec: pb.JobSpec, parameters: Parameters, rows: int) -> Estimate:
    """The job's cost on `rows` rows."""
    columns = sum(len(i.columns) for i in spec.inputs) if spec.partitioning == pb.PARTITIONING_VERTICAL \
        else max((len(i.columns) for i in spec.inputs), default=0)
    features = max(columns - 1, 1)
    epochs = 1
    if isinstance(parameters, MlpParameters):
        outputs = (parameters.classes or 1) if parameters.output == "softmax" else 1
        widths = [features, *parameters.hidden, outputs]
        count = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
        epochs = parameters.epochs
    elif isinstance(parameters, LinearParameters):
        count = features + 1
        if isinstance(parameters, LogisticParameters):
            epochs = parameters.epochs or 20
    elif isinstance(parameters, BinnedParameters):  # each row's bin of each feature times its label (or period)
        count = features * max([parameters.bins, *(len(cuts) + 1 for _, cuts in parameters.splits)])
    elif spec.kind.startswith("stats."):
        count = columns * columns
    else:  # psi.intersect, model.predict, model.evaluate: each row's values once
        count = max(columns, 1)
    rows = max(rows, 1)
    return Estimate(float(rows) * count * epochs, rows, count, epochs)


def over(quota: float, units: float) -> bool:
    return quota > 0 and units > quota * (1 + 1e-12)


class OperatorLedger:
    """The estimates of the jobs each operator submitted here, for the daily quota."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS operator_costs (
        job_id   TEXT PRIMARY KEY,
        operator TEXT NOT NULL,
        units    REAL NOT NULL,
        at       REAL NOT NULL
    );
    """

    def __init__(self, database: Path) -> None:
        self._db = open_database(database, self.SCHEMA)
        self._lock = threading.Lock()

    def admit(self, job_id: str, operator: str, units: float, per_day: float) -> str:
        """Records the job's estimate unless it takes the operator past `per_day`
        in 24 hours; returns why not ('' when admitted)."""
        with self._lock:
            (spent,) = self._db.execute("SELECT COALESCE(SUM(units), 0) FROM operator_costs WHERE operator = ? AND at >= ?",
                                        (operator, time.time() - DAY_S)).fetchone()
            if over(per_day, spent + units):
                return (f"operator {operator!r} has submitted jobs estimated at {spent:.3g} work units in the last 24 "
                        f"hours; this one ({units:.3g}) would pass this gateway's quota of {per_day:.3g} "
                        "(config quotas.operator_cost_per_day)")
            self._db.execute("INSERT OR IGNORE INTO operator_costs (job_id, operator, units, at) VALUES (?, ?, ?, ?)",
                             (job_id, operator, units, time.time()))
        return ""


def parse(raw: Any) -> Quotas:
    """Config `[quotas]` (job_cost, operator_cost_per_day, over)."""
    from mpc.errors import InvalidArgument

    if not isinstance(raw, dict) or not set(raw) <= {"job_cost", "operator_cost_per_day", "over"}:
        raise InvalidArgument("config field 'quotas' takes job_cost, operator_cost_per_day and over")
    for key in ("job_cost", "operator_cost_per_day"):
        value = raw.get(key, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"config field 'quotas.{key}' must be a number >= 0 (0: no limit)")
    if raw.get("over", "refuse") not in ("refuse", "manual"):
        raise InvalidArgument("config field 'quotas.over' must be 'refuse' or 'manual'")
    return Quotas(float(raw.get("job_cost", 0)), float(raw.get("operator_cost_per_day", 0)), raw.get("over", "refuse"))
