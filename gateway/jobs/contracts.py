"""What the scheduler needs from the rest of the gateway (this party's registry,
its peers, its model store, its audit log) and its configuration: the seams that
let each be a real component in the server and a small stand-in nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format

from gateway.api.common.v1 import error_pb2
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.jobs.cost import Quotas
from gateway.workers.plan import InputSource
from mpc.catalogue.context import ReleaseRules
from mpc.catalogue.kinds import parse
from mpc.catalogue.parameters import UNLIMITED, Limits
from mpc.catalogue.schemas import Parameters


@dataclass(frozen=True)
class Review:
    """A party's decision on a proposed job, from its own datasets and policies."""

    decision: str  # "approve" | "manual" | "reject"
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Disclosure:
    """This party's protections on a job's releases and what the job charged its
    datasets (for GetJob's `reveals` and `charges`)."""

    min_group_size: int = 0  # the strictest of its datasets in the job (0: none takes part)
    max_leverage: float = 0.0  # the strictest of its datasets in the job (0: none takes part)
    charges: list[pb.PrivacyCharge] = field(default_factory=list)


@dataclass(frozen=True)
class LoadedInput:
    source: InputSource  # where the worker reads the input (columnar cache, columns, key column)

    @property
    def rows(self) -> int:
        return self.source.rows


class Datasets(Protocol):
    """This party's registry and policies, as the scheduler needs them."""

    def review(self, job: pb.Job, party_id: str) -> Review:
        """Raises InvalidArgument for an unknown dataset or column, FailedPrecondition
        for a file changed since registration."""

    def load(self, job: pb.Job, job_input: pb.JobInput) -> LoadedInput:
        """Where the worker reads the input's columns (and key column for vertical
        jobs): the registered content, never a file changed since registration."""

    def rules(self, job: pb.Job, party_id: str) -> ReleaseRules:
        """This party's release rules for the job (the strictest of its datasets')."""

    def released(self, job_id: str) -> None:
        """The job's results are leaving this party (its privacy charges are spent)."""

    def rows(self, job: pb.Job, party_id: str) -> int:
        """The rows of the party's inputs to the job (0 where it has none or they are unknown)."""

    def ledger(self, job: pb.Job, party_id: str) -> dict[str, Any]:
        """For the party's signed job record: its inputs' content digests and the
        job's privacy charges, by dataset."""

    def intersected(self, job_id: str, dataset: str, counterparties: list[str]) -> None:
        """A vertical job is aligning the dataset's keys with these parties' (counted
        against the dataset's intersections_per_day)."""

    def disclosure(self, job: pb.Job, party_id: str) -> Disclosure:
        """The party's protections on the job's releases and the job's privacy charges."""


class Peers(Protocol):
    async def join_dealer(self, dealer: str, address: str, session_id: str, ranks: list[pb.PartyStatus]) -> None: ...
    async def propose(self, party: str, job: pb.Job) -> pb.PartyStatus: ...
    async def start(self, party: str, job_id: str, session_id: str, ranks: list[pb.PartyStatus]) -> None: ...
    async def stop(self, party: str, job: pb.Job, state: states.State, error: error_pb2.ErrorInfo,
                   head: tuple[int, str] | None = None, records: list[cpb.SignedRecord] = ...) -> None: ...
    async def report(self, party: str, job_id: str, status: pb.PartyStatus, progress: pb.Progress,
                     head: tuple[int, str] | None = None, record: cpb.SignedRecord | None = None) -> None: ...
    async def sync(self, party: str, job_id: str) -> tuple[states.State, error_pb2.ErrorInfo]: ...


Audit = Callable[[str, str, str, dict[str, str]], None]
"""audit(action, job_id, outcome, details)."""

class Models(Protocol):
    """Where this party keeps the models its jobs train and the assets it registered
    (gateway.registry.model_store.ModelStore)."""

    def save(self, job: pb.Job, result: pb.JobResult | None, shares: dict[str, Any] | None,
             public: dict[str, Any] | None = None) -> Any: ...

    def review(self, job: pb.Job, party_id: str) -> Review:
        """This holder's decision on a job using its model (NotFound if it holds none)."""

    def holding(self, job: pb.Job) -> dict[str, Any]:
        """What this party's worker needs of the job's model (mpc.catalogue.context.JobContext.model)."""

    def record_query(self, job_id: str, model_id: str, parties: list[str], rows: int) -> None:
        """A job queried the model with these parties' rows (counted against its policy)."""


AuditHead = Callable[[], tuple[int, str]]
"""The local audit log's head (sequence, hash), which peers record at a job's end."""


@dataclass(frozen=True)
class SchedulerConfig:
    party_id: str
    peer_addresses: dict[str, str]
    tls_files: tuple[str, str, str]
    max_concurrent_jobs: int = 2
    default_deadline_s: float = 3600.0
    allow_insecure_providers: bool = False
    failure_timeout: float = 20.0
    dealer: tuple[str, str] | None = None  # the federation's TTP dealer: (party id, address)
    limits: Limits = field(default_factory=Limits)
    quotas: Quotas = field(default_factory=Quotas)
    drain_grace_s: float = 60.0
    submit_wait_s: float = 1.0  # how long SubmitJob waits for the parties' reviews before it answers
    warm_workers: int = 0  # workers started ahead of jobs (gateway.workers.runner)


MAX_PURPOSE = 1000
"""The longest purpose (characters) a job may state."""

DRAIN_FLUSH_S = 15.0
"""How long a draining gateway waits, once its jobs have ended, for its last reports
and stops to reach the other parties (one peer call's deadline)."""

ROOT_CAUSE_WAIT_S = 2.0
"""How long the coordinator waits, when parties only report that a peer vanished,
for the vanished party's own report of why (a refusal, a crash, a bad input)."""


def error_info(reason: str, message: str, party: str = "", metadata: dict[str, str] | None = None) -> error_pb2.ErrorInfo:
    return error_pb2.ErrorInfo(reason=reason, message=message, party_id=party, metadata=metadata or {})


def participants(spec: pb.JobSpec) -> list[str]:
    """The job's parties in rank order: the order they first appear in the inputs,
    then the holders of the job's model (model.predict, model.evaluate)."""
    return list(dict.fromkeys([*(i.party_id for i in spec.inputs), *spec.model.holders]))


def has_input(spec: pb.JobSpec, party_id: str) -> bool:
    return any(i.party_id == party_id for i in spec.inputs)


def parameters_of(spec: pb.JobSpec, limits: Limits = UNLIMITED) -> Parameters:
    """The job's parameters, checked against its kind and typed (every party parses
    the spec it received itself; the scheduler with this gateway's limits)."""
    return parse(spec.kind, json_format.MessageToDict(spec.parameters), limits)
