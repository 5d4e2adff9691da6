"""The typed boundary between a gateway and a job's worker process: the plan the
gateway sends (once), and every message either side puts on their pipe.

Worker to gateway: Listening (its exchange port), Progress, AskRelease (answered by
the gateway's ReleaseAnswer after it rechecks its policies, right before anything
is revealed), Audit (an event of the job at this party for the gateway's audit
log, such as an intersection's set sizes), then Finished or Failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mpc.catalogue.context import PartyLayout, ReleaseRules, Result, Vocabulary
from mpc.catalogue.schemas import Parameters


class InputSource(Protocol):
    """Where a worker reads this party's input (gateway.registry.ingest.Source: a
    columnar cache, memory-mapped): picklable, so only the path crosses the pipe."""

    @property
    def rows(self) -> int: ...

    @property
    def categories(self) -> dict[str, Vocabulary]:
        """The categorical columns' vocabularies (their cells are codes)."""
        ...

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(float64 rows x columns, keys or None)."""
        ...


@dataclass(frozen=True)
class WorkerPlan:
    job_id: str
    session_id: str
    party_id: str
    parties: list[str]  # by rank
    addresses: dict[str, str]  # peers' gateway addresses
    tls: tuple[str, str, str]  # ca, cert, key paths of this party
    kind: str
    partitioning: str  # "horizontal" | "vertical"
    receivers: list[int]  # ranks
    layout: list[PartyLayout]
    parameters: Parameters
    source: InputSource | None  # the input's columnar cache (read by the worker, not sent through the pipe)
    failure_timeout: float = 20.0
    provider: str = "TFP"
    dealer: str | None = None  # the session's dealer (TTP), if any; may be this process's party
    rules: ReleaseRules = field(default_factory=ReleaseRules)  # this party's own release rules
    model: dict[str, Any] | None = None  # what this party holds of the job's model (JobContext.model)

    @property
    def members(self) -> list[str]:
        """Everyone in the session: the parties by rank, then the dealer if any."""
        return [*self.parties, *([self.dealer] if self.dealer else [])]


@dataclass(frozen=True)
class Listening:
    port: int


@dataclass(frozen=True)
class Progress:
    phase: str
    percent: float
    bytes_sent: int
    bytes_received: int
    rounds: int


@dataclass(frozen=True)
class AskRelease:
    """The program is about to reveal its results."""


@dataclass(frozen=True)
class ReleaseAnswer:
    refusal: str  # '' allows the release


@dataclass(frozen=True)
class Audit:
    action: str
    details: dict[str, str]


@dataclass(frozen=True)
class Finished:
    results: dict[str, Result] | None  # None at a party that receives nothing
    kept: dict[str, tuple[np.ndarray, int]]  # this party's shares of values kept secret-shared, with their scale
    public: dict[str, np.ndarray]  # public values kept with them


@dataclass(frozen=True)
class Failed:
    reason: str
    message: str
    metadata: dict[str, str]  # a failed peer is metadata's party_id


FromWorker = Listening | Progress | AskRelease | Audit | Finished | Failed
