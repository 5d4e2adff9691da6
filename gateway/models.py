"""The models a gateway holds: revealed models at result receivers, and this
party's share of models kept secret-shared. Stored in the gateway's SQLite
database; a share is never returned by the ModelService (only metadata and
metrics), so no single operator can collect the shares of a shared model through
the API. Every store, read and deletion is audited (reads and deletions by the
server's audit interceptor)."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.api.gateway.v1 import models_pb2 as mpb
from gateway.api.gateway.v1 import models_pb2_grpc
from gateway.db import open_database
from gateway.errors import NotFound
from gateway.jobs.store import now
from gateway.rpc import map_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    record   BLOB NOT NULL,
    shares   BLOB
);
"""
MODEL_PARTS = ("coefficients", "intercept", "feature_means", "feature_stds", "label_mean", "label_std")
"""Result values that are part of the model itself (the rest are metrics)."""


class ModelStore:
    def __init__(self, database: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(database, SCHEMA)

    def save(self, job: pb.Job, result: pb.JobResult | None, shares: dict[str, tuple[np.ndarray, int]] | None) -> mpb.Model:
        """Records the model job `job` trained at this party: its revealed values
        (at a receiver) and this party's shares (for keep_shared)."""
        parameters = json_format.MessageToDict(job.spec.parameters)
        label = str(parameters.get("label", ""))
        model = mpb.Model(
            model_id=job.job_id, kind=job.spec.kind, label=label, shared=bool(parameters.get("keep_shared")),
            provider=job.spec.provider, parties=[p.party_id for p in job.parties], created_at=now(),
            features=[c for i in job.spec.inputs for c in i.columns if c != label] if job.spec.partitioning
            == pb.PARTITIONING_VERTICAL else [c for c in job.spec.inputs[0].columns if c != label],
        )
        model.partial = bool(parameters.get("own_coefficients"))
        for value in result.values if result is not None else []:
            if value.name in MODEL_PARTS and not model.shared:
                model.values.append(value)
                if value.name == "coefficients" and model.partial:  # this party's own features only
                    model.ClearField("features")
                    model.features.extend(value.labels)
            elif len(value.tensor.data) == 8:
                model.metrics[value.name] = float(np.frombuffer(value.tensor.data, dtype="<f8")[0])
        blob = _pack(shares) if shares else None
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO models (model_id, created, record, shares) VALUES (?, ?, ?, ?)",
                             (model.model_id, model.created_at.ToNanoseconds() / 1e9, model.SerializeToString(), blob))
        return model

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

    def list(self, limit: int = 100, offset: int = 0) -> list[mpb.Model]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM models ORDER BY created DESC LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
        return [mpb.Model.FromString(r[0]) for r in rows]

    def delete(self, model_id: str) -> None:
        self.get(model_id)
        with self._lock:
            self._db.execute("DELETE FROM models WHERE model_id = ?", (model_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _pack(shares: dict[str, tuple[np.ndarray, int]]) -> bytes:
    buffer = io.BytesIO()
    arrays = {f"{name}": np.asarray(share, dtype=np.int64) for name, (share, _) in shares.items()}
    arrays.update({f"{name}.scale": np.array(scale, dtype=np.int64) for name, (_, scale) in shares.items()})
    np.savez(buffer, **arrays)
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
        size = request.page.page_size or 100
        offset = int(request.page.page_token or 0)
        found = self._store.list(size + 1, offset)
        response = mpb.ListModelsResponse(models=found[:size])
        if len(found) > size:
            response.page.next_page_token = str(offset + size)
        return response

    @map_errors
    async def GetModel(self, request: mpb.GetModelRequest, context: Any) -> mpb.GetModelResponse:
        return mpb.GetModelResponse(model=self._store.get(request.model_id))

    @map_errors
    async def DeleteModel(self, request: mpb.DeleteModelRequest, context: Any) -> mpb.DeleteModelResponse:
        self._store.delete(request.model_id)
        return mpb.DeleteModelResponse()
