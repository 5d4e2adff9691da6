"""The models a gateway holds: revealed models at result receivers, this party's
share of models kept secret-shared, and model assets (ONNX networks) this party
registered. Stored in the gateway's SQLite database; a share or an asset's
weights are never returned by the ModelService (only metadata and metrics), so no
single operator can collect the shares of a shared model through the API. Each
model carries a policy on its use in model.predict and model.evaluate, checked
by this party when a job is proposed, started and released (`review`). Every
store, read, registration, policy change, deletion and use is audited (the RPCs
by the server's audit interceptor, uses by the scheduler)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.api.gateway.v1 import models_pb2 as mpb
from gateway.api.gateway.v1 import models_pb2_grpc
from gateway.db import Conditions, keyset, next_token, open_database
from gateway.jobs.contracts import Review, parameters_of
from gateway.jobs.store import now
from gateway.transport.rpc import map_errors
from mpc.catalogue.kinds import USING_KINDS
from mpc.catalogue.schemas import (
    LinearParameters,
    MlpParameters,
    Parameters,
    SupervisedParameters,
    label_of,
    with_indicators,
)
from mpc.errors import FailedPrecondition, InvalidArgument, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    record   BLOB NOT NULL,
    shares   BLOB,
    asset    BLOB
);
CREATE TABLE IF NOT EXISTS model_queries (
    model_id TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    party    TEXT NOT NULL,    -- a data party whose rows the job applied the model to
    rows     INTEGER NOT NULL,
    PRIMARY KEY (model_id, job_id, party)
);
"""
DEFAULT_MIN_ROWS_PER_JOB = 20
MODEL_PARTS = ("coefficients", "intercept", "feature_means", "feature_stds", "label_mean", "label_std",
               "input_shift", "input_scale", "frame_shift", "frame_scale")
"""Result values that are part of the model itself (with model.mlp's "layer.*"; the rest are metrics)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _is_part(name: str) -> bool:
    return name in MODEL_PARTS or name.startswith("layer.")


class ModelStore:
    def __init__(self, database: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(database, SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(models)")}
        if "asset" not in columns:  # a database from before model assets
            self._db.execute("ALTER TABLE models ADD COLUMN asset BLOB")

    def save(self, job: pb.Job, result: pb.JobResult | None, shares: dict[str, tuple[np.ndarray, int]] | None,
             public: dict[str, Any] | None = None) -> mpb.Model:
        """Records the model job `job` trained at this party: its revealed values
        (at a receiver), this party's shares (for keep_shared) and the public values
        that go with them (a model.mlp's input frame). Usable by the parties that
        trained it (its default policy) until its policy says otherwise."""
        parameters = parameters_of(job.spec)
        label = label_of(parameters) or ""
        supervised = parameters if isinstance(parameters, SupervisedParameters) else SupervisedParameters()
        model = mpb.Model(
            model_id=job.job_id, kind=job.spec.kind, label=label, shared=supervised.keep_shared,
            provider=job.spec.provider, parties=[p.party_id for p in job.parties], created_at=now(),
            features=[c for i in job.spec.inputs for c in with_indicators(parameters, list(i.columns)) if c != label]
            if job.spec.partitioning == pb.PARTITIONING_VERTICAL
            else [c for c in with_indicators(parameters, list(job.spec.inputs[0].columns)) if c != label],
        )
        model.partial = isinstance(parameters, LinearParameters) and parameters.own_coefficients
        for value in result.values if result is not None else []:
            if _is_part(value.name) and not model.shared:
                model.values.append(value)
                if value.name == "coefficients":  # the program's own names (one-hot categories; partial: its own)
                    model.ClearField("features")
                    model.features.extend(value.column_labels or value.labels)
            elif len(value.tensor.data) == 8:
                model.metrics[value.name] = float(np.frombuffer(value.tensor.data, dtype="<f8")[0])
        model.policy.CopyFrom(mpb.ModelPolicy(
            allowed_parties=model.parties, allowed_datasets=[f"{p}/*" for p in model.parties],
            allowed_result_receivers=model.parties, allowed_job_kinds=USING_KINDS,
            approval_mode=dpb.APPROVAL_MODE_AUTOMATIC))
        if job.spec.kind == "model.mlp":
            model.architecture.CopyFrom(_mlp_architecture(parameters, len(model.features), public or {}))
        blob = _pack(shares) if shares else None
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO models (model_id, created, record, shares) VALUES (?, ?, ?, ?)",
                             (model.model_id, model.created_at.ToNanoseconds() / 1e9, model.SerializeToString(), blob))
        return model

    def register(self, request: mpb.RegisterModelRequest) -> mpb.Model:
        """Checks and stores a model asset (InvalidArgument saying what is wrong)."""
        from mpc.programs.models import assets

        if not NAME.match(request.model_id):
            raise InvalidArgument(f"model name {request.model_id!r} must match {NAME.pattern}")
        output = request.output or "identity"
        outputs = assets.inspect(request.onnx, list(request.input_shape), output)
        width = math.prod(request.input_shape)
        if request.features and len(request.features) != width:
            raise InvalidArgument(f"{len(request.features)} feature names for an input of {width} values")
        shift, scale = list(request.input_shift), list(request.input_scale)
        if shift or scale:
            if len(shift) != width or len(scale) != width:
                raise InvalidArgument(f"input_shift and input_scale need one value per input value ({width})")
            if not all(math.isfinite(v) for v in shift) or not all(math.isfinite(v) and v > 0 for v in scale):
                raise InvalidArgument("input_shift must be finite numbers and input_scale finite numbers above 0")
        model = mpb.Model(model_id=request.model_id, kind="asset.onnx", asset=True, created_at=now(),
                          features=list(request.features), policy=request.policy,
                          digest=hashlib.sha256(request.onnx).hexdigest(),
                          architecture=mpb.Architecture(input_shape=request.input_shape, output=output, outputs=outputs,
                                                        frame_shift=shift, frame_scale=scale))
        with self._lock:
            if self._db.execute("SELECT 1 FROM models WHERE model_id = ?", (model.model_id,)).fetchone():
                raise InvalidArgument(f"a model {model.model_id!r} already exists at this gateway")
            self._db.execute("INSERT INTO models (model_id, created, record, asset) VALUES (?, ?, ?, ?)",
                             (model.model_id, model.created_at.ToNanoseconds() / 1e9, model.SerializeToString(),
                              request.onnx))
        return model

    def set_policy(self, model_id: str, policy: mpb.ModelPolicy) -> mpb.Model:
        with self._lock:
            row = self._db.execute("SELECT record FROM models WHERE model_id = ?", (model_id,)).fetchone()
            if row is None:
                raise NotFound(f"no model {model_id!r} at this gateway")
            model = mpb.Model.FromString(row[0])
            model.policy.CopyFrom(policy)
            self._db.execute("UPDATE models SET record = ? WHERE model_id = ?", (model.SerializeToString(), model_id))
        return model

    def review(self, job: pb.Job, party_id: str) -> Review:
        """Whether this holder lets the job use its model: the model's own policy
        and how it is held (NotFound if this gateway holds no such model)."""
        spec = job.spec
        model = self.get(spec.model.model_id)
        reasons = []
        if model.partial:
            reasons.append(f"model {model.model_id!r} is held here only in part (own_coefficients)")
        elif not model.asset and model.kind != "model.mlp":
            reasons.append(f"model {model.model_id!r} is a {model.kind}: export it as ONNX (mpcgate models export) "
                           "and register it as an asset to apply it privately")
        if model.shared and sorted(spec.model.holders) != sorted(model.parties):
            reasons.append(f"model {model.model_id!r} is kept shared by {', '.join(model.parties)}: "
                           "exactly they must hold it in the job")
        if not model.shared and list(spec.model.holders) != [party_id]:
            reasons.append(f"model {model.model_id!r} is held by {party_id} alone: name only it as the holder")
        policy = model.policy
        data = [i.party_id for i in spec.inputs]
        strangers = sorted({p for p in data if p not in policy.allowed_parties})
        if strangers:
            reasons.append(f"parties {', '.join(strangers)} may not use model {model.model_id!r}")
        datasets = [f"{i.party_id}/{i.dataset}" for i in spec.inputs
                    if f"{i.party_id}/{i.dataset}" not in policy.allowed_datasets
                    and f"{i.party_id}/*" not in policy.allowed_datasets]
        if datasets:
            reasons.append(f"model {model.model_id!r} may not be applied to {', '.join(datasets)}")
        receivers = [r for r in spec.result_receivers if r not in policy.allowed_result_receivers]
        if receivers:
            reasons.append(f"result receivers {', '.join(receivers)} are not allowed for model {model.model_id!r}")
        if spec.kind not in policy.allowed_job_kinds:
            reasons.append(f"job kind {spec.kind!r} is not allowed on model {model.model_id!r}")
        label = label_of(parameters_of(spec))
        given = sum(len([c for c in i.columns if c != label]) for i in spec.inputs)
        width = math.prod(model.architecture.input_shape)
        if width and given != width:
            reasons.append(f"model {model.model_id!r} takes {width} input values per row; the job's inputs give {given}")
        if reasons:
            return Review("reject", reasons)
        return Review("manual" if policy.approval_mode == dpb.APPROVAL_MODE_MANUAL else "approve")

    def holding(self, job: pb.Job) -> dict[str, Any]:
        """What this party's worker needs of the job's model (JobContext.model)."""
        model_id = job.spec.model.model_id
        model = self.get(model_id)
        a = model.architecture
        architecture = {"input_shape": list(a.input_shape), "output": a.output, "outputs": a.outputs,
                        "widths": list(a.widths), "frame_shift": list(a.frame_shift), "frame_scale": list(a.frame_scale)}
        limits = {"model_id": model_id, "min_rows": int(model.policy.min_rows_per_job or DEFAULT_MIN_ROWS_PER_JOB),
                  "rows_left": self._rows_left(model, job)}
        if model.asset:
            with self._lock:
                row = self._db.execute("SELECT asset FROM models WHERE model_id = ?", (model_id,)).fetchone()
            return {"kind": "asset", "onnx": bytes(row[0]), "architecture": architecture, "limits": limits}
        if model.kind != "model.mlp":
            raise FailedPrecondition(f"model {model_id!r} ({model.kind}) cannot be applied privately")
        if model.shared:
            return {"kind": "mlp", "architecture": architecture, "shares": self.shares(model_id), "limits": limits}
        values = {v.name: np.frombuffer(v.tensor.data, dtype="<f8").reshape(tuple(v.tensor.shape)) for v in model.values}
        return {"kind": "mlp", "architecture": architecture, "values": values, "limits": limits}

    def _rows_left(self, model: mpb.Model, job: pb.Job) -> int:
        """The rows the job's data parties may still have the model applied to (the
        least of theirs; -1: no limit), other jobs' queries counted."""
        budget = model.policy.max_rows_per_party
        if budget <= 0:
            return -1
        parties = sorted({i.party_id for i in job.spec.inputs})
        with self._lock:
            used = [self._db.execute("SELECT COALESCE(SUM(rows), 0) FROM model_queries WHERE model_id = ? AND party = ? "
                                     "AND job_id != ?", (model.model_id, p, job.job_id)).fetchone()[0] for p in parties]
        return max(budget - max(used, default=0), 0)

    def record_query(self, job_id: str, model_id: str, parties: list[str], rows: int) -> None:
        """A job applied the model to `rows` rows of `parties` (once per job)."""
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO model_queries (model_id, job_id, party, rows) VALUES (?, ?, ?, ?)",
                                 [(model_id, job_id, p, rows) for p in parties])

    def get(self, model_id: str) -> mpb.Model:
        with self._lock:
            row = self._db.execute("SELECT record FROM models WHERE model_id = ?", (model_id,)).fetchone()
        if row is None:
            raise NotFound(f"no model {model_id!r} at this gateway")
        return mpb.Model.FromString(row[0])

    def shares(self, model_id: str) -> dict[str, tuple[np.ndarray, int]]:
        """This party's shares of a shared model (for jobs that use it; never an RPC)."""
        with self._lock:
            row = self._db.execute("SELECT shares FROM models WHERE model_id = ?", (model_id,)).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"no shares of model {model_id!r} at this gateway")
        return _unpack(row[0])

    def page(self, limit: int = 100, below: int | None = None) -> list[tuple[int, mpb.Model]]:
        """Models with their row numbers, newest first, below `below` (keyset pages)."""
        where = Conditions()
        if below is not None:
            where.add("rowid < ?", below)
        with self._lock:
            rows = self._db.execute("SELECT rowid, record FROM models" + where.sql() + " ORDER BY rowid DESC LIMIT ?",
                                    (*where.params, limit)).fetchall()
        return [(key, mpb.Model.FromString(record)) for key, record in rows]

    def delete(self, model_id: str) -> None:
        self.get(model_id)
        with self._lock:
            self._db.execute("DELETE FROM models WHERE model_id = ?", (model_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _mlp_architecture(parameters: Parameters, features: int, public: dict[str, Any]) -> mpb.Architecture:
    assert isinstance(parameters, MlpParameters)  # (the caller's kind is model.mlp)
    output = parameters.output
    widths = [features, *parameters.hidden, (parameters.classes or 2) if output == "softmax" else 1]
    return mpb.Architecture(widths=widths, output=output, outputs=widths[-1], input_shape=[features],
                            frame_shift=[float(v) for v in public.get("frame_shift", [])],
                            frame_scale=[float(v) for v in public.get("frame_scale", [])])


def _pack(shares: dict[str, tuple[np.ndarray, int]]) -> bytes:
    buffer = io.BytesIO()
    arrays = {f"{name}": np.asarray(share, dtype=np.int64) for name, (share, _) in shares.items()}
    arrays.update({f"{name}.scale": np.array(scale, dtype=np.int64) for name, (_, scale) in shares.items()})
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return buffer.getvalue()


def _unpack(blob: bytes) -> dict[str, tuple[np.ndarray, int]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        names = [k for k in data.files if not k.endswith(".scale")]
        return {name: (data[name], int(data[f"{name}.scale"])) for name in names}


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(self, store: ModelStore) -> None:
        self._store = store

    @map_errors
    async def ListModels(self, request: mpb.ListModelsRequest, context: Any) -> mpb.ListModelsResponse:
        size, below = keyset(request.page, 100, 1000)
        found = self._store.page(size + 1, below)
        response = mpb.ListModelsResponse(models=[model for _, model in found[:size]])
        response.page.next_page_token = next_token([key for key, _ in found], size)
        return response

    @map_errors
    async def GetModel(self, request: mpb.GetModelRequest, context: Any) -> mpb.GetModelResponse:
        return mpb.GetModelResponse(model=self._store.get(request.model_id))

    @map_errors
    async def RegisterModel(self, request: mpb.RegisterModelRequest, context: Any) -> mpb.RegisterModelResponse:
        return mpb.RegisterModelResponse(model=await asyncio.to_thread(self._store.register, request))

    @map_errors
    async def SetModelPolicy(self, request: mpb.SetModelPolicyRequest, context: Any) -> mpb.SetModelPolicyResponse:
        return mpb.SetModelPolicyResponse(model=self._store.set_policy(request.model_id, request.policy))

    @map_errors
    async def DeleteModel(self, request: mpb.DeleteModelRequest, context: Any) -> mpb.DeleteModelResponse:
        self._store.delete(request.model_id)
        return mpb.DeleteModelResponse()
