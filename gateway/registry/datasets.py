"""The dataset registry: local tables registered for joint jobs, their schemas and
policies, and the policy review every proposed job goes through.

Data never leaves the gateway: the registry stores the file's path (which must lie
inside the data directory), its validated schema and row count, the SHA-256 of its
bytes, and its policy. A job reads the file only if it still has that digest: a
file changed after registration is refused until it is registered again.
Policies are default deny: an empty list allows nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import datasets_pb2_grpc
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract.policies import max_leverage
from gateway.db import open_database
from gateway.jobs.contracts import Disclosure, LoadedInput, Review, parameters_of, participants
from gateway.jobs.store import now
from gateway.registry import ingest
from gateway.registry.budgets import Budgets, unit_of
from gateway.registry.intersections import Intersections
from gateway.registry.review import release_rules, review
from gateway.transport.rpc import map_errors
from mpc.catalogue import keys as keyspace
from mpc.catalogue.context import ReleaseRules, Vocabulary
from mpc.catalogue.kinds import KINDS
from mpc.catalogue.schemas import (
    Parameters,
    missing_choice,
    private,
)
from mpc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mpc.privacy import plan as noise_plan

NAME = re.compile(r"^[a-z0-9_.-]{1,64}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name   TEXT PRIMARY KEY,
    path   TEXT NOT NULL,
    record BLOB NOT NULL
);
"""


class Registry:
    def __init__(self, database: Path, data_dir: Path, party_id: str) -> None:
        self._data_dir = data_dir.resolve()
        self._party = party_id
        self._lock = threading.Lock()
        self._db = open_database(database, SCHEMA)
        self._cache_dir = Path(database).parent / "columnar"
        self.budgets = Budgets(database)
        self.intersections = Intersections(database)

    # -- registry -------------------------------------------------------------------

    def register(self, request: dpb.RegisterDatasetRequest) -> dpb.Dataset:
        if not NAME.match(request.name):
            raise InvalidArgument(f"dataset name {request.name!r} must match {NAME.pattern}")
        path = self._inside_data_dir(request.path)
        file_format = _format(path, request.format)
        digest, size = _digest(path)
        parsed = ingest.parse(path, file_format == dpb.FILE_FORMAT_PARQUET)
        wanted = list(request.numeric_columns) or [c for c in parsed.header if c != request.key_column]
        wanted += [c for c in request.categorical_columns if c not in wanted]
        for column in [*wanted, *([request.key_column] if request.key_column else [])]:
            if column not in parsed.header:
                raise InvalidArgument(f"{path.name}: no column {column!r} (columns: {', '.join(parsed.header)})")
        if request.key_column:
            keyspace.check(parsed.keys(request.key_column), f"{path.name}, key column {request.key_column!r}")
        categorical = frozenset(request.categorical_columns) | {c for c in wanted if parsed.textual(c)}
        for declared, what in ((request.complete_columns, "complete"), (request.other_columns, "other")):
            strays = [c for c in declared if c not in (categorical if what == "other" else wanted)]
            if strays:
                kind = "categorical" if what == "other" else "registered"
                raise InvalidArgument(f"{what} column {strays[0]!r} is not among the {kind} columns")
        profile = ingest.write_cache(self._cache(digest), parsed, wanted, request.key_column,
                                     frozenset(request.complete_columns), categorical)  # validates every cell
        dataset = dpb.Dataset(
            name=request.name, party_id=self._party, description=request.description, format=file_format,
            columns=[_column(c, profile, c in request.other_columns) for c in wanted]
            + ([dpb.Column(name=request.key_column, type=dpb.COLUMN_TYPE_KEY)] if request.key_column else []),
            row_count=parsed.rows, key_column=request.key_column, policy=request.policy,
            created_at=now(), updated_at=now(), content_sha256=digest, size_bytes=size,
        )
        verb = "INSERT OR REPLACE" if request.replace else "INSERT"
        with self._lock:
            try:
                self._db.execute(f"{verb} INTO datasets (name, path, record) VALUES (?, ?, ?)",
                                 (dataset.name, str(path), dataset.SerializeToString()))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"dataset {request.name!r} is already registered (register with replace "
                                    "to replace it)") from None
        return dataset

    def get(self, name: str) -> dpb.Dataset:
        return self._spent(self._row(name)[1])

    def list(self) -> list[dpb.Dataset]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM datasets ORDER BY name").fetchall()
        return [self._spent(dpb.Dataset.FromString(r[0])) for r in rows]

    def _spent(self, dataset: dpb.Dataset) -> dpb.Dataset:
        if dataset.policy.HasField("dp_budget"):
            dataset.dp_spent.CopyFrom(self.budgets.spent(dataset, self._same_unit(dataset)))
        return dataset

    def _same_unit(self, dataset: dpb.Dataset) -> builtins.list[str]:
        """The datasets registered here whose rows are `dataset`'s privacy unit (its
        own name among them): their charges count against its budget."""
        unit = unit_of(dataset)
        with self._lock:
            rows = self._db.execute("SELECT record FROM datasets").fetchall()
        return sorted({dataset.name} | {d.name for d in map(dpb.Dataset.FromString, (r[0] for r in rows))
                                        if unit_of(d) == unit})

    def update_policy(self, name: str, policy: dpb.Policy) -> dpb.Dataset:
        _, dataset = self._row(name)
        dataset.policy.CopyFrom(policy)
        dataset.updated_at.CopyFrom(now())
        with self._lock:
            self._db.execute("UPDATE datasets SET record = ? WHERE name = ?", (dataset.SerializeToString(), name))
        return dataset

    def delete(self, name: str) -> None:
        """Forgets the dataset and its columnar copy (unless another dataset has the same content)."""
        _, dataset = self._row(name)
        with self._lock:
            self._db.execute("DELETE FROM datasets WHERE name = ?", (name,))
        if dataset.content_sha256 and not any(d.content_sha256 == dataset.content_sha256 for d in self.list()):
            self._cache(dataset.content_sha256).unlink(missing_ok=True)

    def _row(self, name: str) -> tuple[Path, dpb.Dataset]:
        with self._lock:
            row = self._db.execute("SELECT path, record FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no dataset {name!r} at party {self._party!r}")
        return Path(row[0]), dpb.Dataset.FromString(row[1])

    def _inside_data_dir(self, raw: str) -> Path:
        if not raw or "\x00" in raw:
            raise InvalidArgument("a dataset path must be a non-empty path without NUL characters")
        candidate = Path(raw)
        path = (candidate if candidate.is_absolute() else self._data_dir / candidate).resolve()
        if not path.is_relative_to(self._data_dir):
            raise InvalidArgument(f"{raw}: datasets must lie inside the gateway's data directory")
        if not path.is_file():
            raise InvalidArgument(f"{raw}: no such file in the data directory")
        return path

    # -- what the scheduler needs (gateway.jobs.scheduler.Datasets) ------------------

    def review(self, job: pb.Job, party_id: str) -> Review:
        mine = [i for i in job.spec.inputs if i.party_id == party_id]
        if not mine:
            raise InvalidArgument(f"the job has no input at party {party_id!r}")
        parameters = parameters_of(job.spec)
        reasons: list[str] = []
        manual = False
        for job_input in mine:
            try:
                path, dataset = self._row(job_input.dataset)
            except NotFound as err:
                raise InvalidArgument(err.message) from None
            usable = {c.name for c in dataset.columns if c.type != dpb.COLUMN_TYPE_KEY}
            unknown = [c for c in job_input.columns if c not in usable]
            if unknown:
                raise InvalidArgument(f"dataset {dataset.name!r} at {party_id!r} has no column "
                                      f"{', '.join(map(repr, unknown))}")
            categorical = [c.name for c in dataset.columns
                           if c.type == dpb.COLUMN_TYPE_CATEGORICAL and c.name in job_input.columns]
            if categorical and not KINDS[job.spec.kind].categorical:
                raise InvalidArgument(f"column {categorical[0]!r} of dataset {dataset.name!r} at {party_id!r} is "
                                      f"categorical: {job.spec.kind} reads numeric columns (count categories with "
                                      "stats.crosstab; models one-hot encode them)")
            gaps = [c for c in dataset.columns
                    if c.name in job_input.columns and c.missing_count and missing_choice(parameters, c.name) is None]
            if gaps:
                raise InvalidArgument(f"column {gaps[0].name!r} of dataset {dataset.name!r} at {party_id!r} has "
                                      f"{gaps[0].missing_count} missing cells (of {dataset.row_count}): say what the "
                                      "job does with them, parameter missing (drop, mean, median or indicator)")
            self._unchanged(path, dataset)
            if job.spec.partitioning == pb.PARTITIONING_VERTICAL and not dataset.key_column:
                raise InvalidArgument(f"dataset {dataset.name!r} at {party_id!r} declares no key column "
                                      "(vertical jobs align rows by it)")
            decision = review(dataset.policy, dataset, job.spec, parameters, job_input.columns, party_id)
            reasons += decision.reasons
            if job.spec.partitioning == pb.PARTITIONING_VERTICAL:
                others = sorted(set(participants(job.spec)) - {party_id})
                refusal = self.intersections.refusal(job.job_id, dataset.name, others,
                                                     dataset.policy.intersections_per_day)
                reasons += [refusal] if refusal else []
            manual |= decision.decision == "manual"
        if not reasons and private(parameters) is not None:
            reasons += [r for job_input in mine if (r := self._charge(job, parameters, job_input))]
        if reasons:
            return Review("reject", reasons)
        return Review("manual" if manual else "approve")

    def _charge(self, job: pb.Job, parameters: Parameters, job_input: pb.JobInput) -> str:
        """Charges a differentially private job to the input's dataset's budget
        (once; review, start and release all ask); why not, if it would exceed it."""
        dataset = self._row(job_input.dataset)[1]
        dp = private(parameters)
        assert dp is not None  # (only dp jobs are charged)
        vertical = job.spec.partitioning == pb.PARTITIONING_VERTICAL  # the job's columns: all inputs', or each party's
        columns = [c for i in job.spec.inputs for c in i.columns] if vertical else list(job_input.columns)
        events = noise_plan.releases(job.spec.kind, parameters, columns, list(job_input.columns))
        return self.budgets.charge(dataset, job.job_id, dp.epsilon, events, self._same_unit(dataset))

    def released(self, job_id: str) -> None:
        self.budgets.released(job_id)

    def rows(self, job: pb.Job, party_id: str) -> int:
        total = 0
        for job_input in job.spec.inputs:
            if job_input.party_id == party_id:
                try:
                    total += self._row(job_input.dataset)[1].row_count
                except NotFound:
                    pass  # the review names it
        return total

    def intersected(self, job_id: str, dataset: str, counterparties: builtins.list[str]) -> None:
        self.intersections.record(job_id, dataset, counterparties)

    def ledger(self, job: pb.Job, party_id: str) -> dict[str, Any]:
        names = [i.dataset for i in job.spec.inputs if i.party_id == party_id]  # none where the party has no input
        inputs = {}
        for name in names:
            try:
                inputs[name] = self._row(name)[1].content_sha256
            except NotFound:
                inputs[name] = ""  # deleted since: its digest is gone too
        return {"inputs": inputs, "dp_charges": self.budgets.charges(job.job_id)}

    def disclosure(self, job: pb.Job, party_id: str) -> Disclosure:
        policies = []
        for job_input in job.spec.inputs:
            if job_input.party_id == party_id:
                try:
                    policies.append(self._row(job_input.dataset)[1].policy)
                except NotFound:
                    pass  # deleted since: its protections are gone with it
        charges = [pb.PrivacyCharge(dataset=d, epsilon=e, released=r) for d, e, r in self.budgets.charged(job.job_id)]
        return Disclosure(min_group_size=max((release_rules(p).min_group_size for p in policies), default=0),
                          max_leverage=min((max_leverage(p) for p in policies), default=0.0), charges=charges)

    def rules(self, job: pb.Job, party_id: str) -> ReleaseRules:
        """The strictest release rules of the party's datasets the job reads."""
        each = [release_rules(self._row(i.dataset)[1].policy) for i in job.spec.inputs if i.party_id == party_id]
        return ReleaseRules(
            min_group_size=max(r.min_group_size for r in each),
            small_groups="refuse" if any(r.small_groups == "refuse" for r in each) else "suppress",
            allow_extremes=all(r.allow_extremes for r in each),
            min_intersection=max(r.min_intersection for r in each),
            max_key_ratio=min((r.max_key_ratio for r in each if r.max_key_ratio > 0), default=0.0),
            require_dp=any(r.require_dp for r in each),
            dp_bounds={c: bounds for r in each for c, bounds in r.dp_bounds.items()},
            max_leverage=min(r.max_leverage for r in each),
        )

    def _unchanged(self, path: Path, dataset: dpb.Dataset) -> None:
        """The file must still be the one registered (same bytes, so same rows)."""
        if not path.is_file():
            raise FailedPrecondition(f"the file of dataset {dataset.name!r} is gone; register it again")
        if dataset.content_sha256 and _digest(path)[0] != dataset.content_sha256:
            raise FailedPrecondition(f"the file of dataset {dataset.name!r} changed since it was registered "
                                     f"({dataset.row_count} rows then); register it again to use it")

    def load(self, job: pb.Job, job_input: pb.JobInput) -> LoadedInput:
        """Where the worker reads this input: the columnar copy of the registered
        content, named by its digest, so a file changed since cannot reach the job
        (the start checks' review refuses it anyway; hashing it again here would read
        the file twice in a row). A missing copy is rebuilt, from the file only if it
        is still the one registered."""
        path, dataset = self._row(job_input.dataset)
        cache = self._cache(dataset.content_sha256)
        usable = [c for c in dataset.columns if c.type != dpb.COLUMN_TYPE_KEY]
        categorical = {c.name: Vocabulary(tuple(c.categories), c.other) for c in usable
                       if c.type == dpb.COLUMN_TYPE_CATEGORICAL}
        if not cache.is_file():
            self._unchanged(path, dataset)
            ingest.write_cache(cache, ingest.parse(path, dataset.format == dpb.FILE_FORMAT_PARQUET),
                               [c.name for c in usable], dataset.key_column, categorical=frozenset(categorical))
        # keys align vertical rows, and name a data party's own predictions for it
        keyed = job.spec.partitioning == pb.PARTITIONING_VERTICAL or job.spec.kind == "model.predict"
        return LoadedInput(ingest.Source(str(cache), list(job_input.columns), dataset.key_column if keyed else None,
                                         dataset.row_count, {c: v for c, v in categorical.items()
                                                             if c in job_input.columns}))

    def _cache(self, digest: str) -> Path:
        return self._cache_dir / f"{digest}{ingest.SUFFIX}"


def _column(name: str, profile: ingest.Profile, other: bool) -> dpb.Column:
    categories = profile.categories.get(name)
    return dpb.Column(name=name, type=dpb.COLUMN_TYPE_NUMERIC if categories is None else dpb.COLUMN_TYPE_CATEGORICAL,
                      nullable=profile.missing[name] > 0, missing_count=profile.missing[name],
                      categories=categories or [], other=other)


def _digest(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                sha.update(block)
                size += len(block)
    except OSError as err:
        raise FailedPrecondition(f"{path.name}: cannot read: {err.strerror}") from None
    return sha.hexdigest(), size


def _format(path: Path, declared: dpb.FileFormat.ValueType) -> dpb.FileFormat.ValueType:
    if declared != dpb.FILE_FORMAT_UNSPECIFIED:
        return declared
    return dpb.FILE_FORMAT_PARQUET if path.suffix.lower() in (".parquet", ".pq") else dpb.FILE_FORMAT_CSV


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    """Every call is audited by the server's audit interceptor."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @map_errors
    async def RegisterDataset(self, request: dpb.RegisterDatasetRequest, context: Any) -> dpb.RegisterDatasetResponse:
        # parsing a large file takes seconds: off the event loop, so other calls are answered meanwhile
        return dpb.RegisterDatasetResponse(dataset=await asyncio.to_thread(self._registry.register, request))

    @map_errors
    async def GetDataset(self, request: dpb.GetDatasetRequest, context: Any) -> dpb.GetDatasetResponse:
        return dpb.GetDatasetResponse(dataset=self._registry.get(request.name))

    @map_errors
    async def ListDatasets(self, request: dpb.ListDatasetsRequest, context: Any) -> dpb.ListDatasetsResponse:
        return dpb.ListDatasetsResponse(datasets=self._registry.list())

    @map_errors
    async def UpdatePolicy(self, request: dpb.UpdatePolicyRequest, context: Any) -> dpb.UpdatePolicyResponse:
        return dpb.UpdatePolicyResponse(dataset=self._registry.update_policy(request.name, request.policy))

    @map_errors
    async def DeleteDataset(self, request: dpb.DeleteDatasetRequest, context: Any) -> dpb.DeleteDatasetResponse:
        self._registry.delete(request.name)
        return dpb.DeleteDatasetResponse()
