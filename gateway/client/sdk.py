"""The Python client SDK for operators and partner services.

    client = Client("gw.bank-a:7443", token, TlsIdentity.from_dir(pki, "alice"), server_party="bank-a")
    job = client.submit("stats.summary", inputs=[("bank-a", "loans", ["income", "debt"]), ...],
                        receivers=["bank-a"])
    for event in job.watch():
        print(event.progress.percent)
    print(job.result()["correlation"])

Every call is mutual TLS plus a bearer token; failures raise the typed errors of
mpc.errors (InvalidArgument, PermissionDenied, ...) carrying the gRPC status
and the server's message.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import struct_pb2

from gateway.api.common.v1 import paging_pb2
from gateway.api.gateway.v1 import datasets_pb2, datasets_pb2_grpc, jobs_pb2_grpc, models_pb2, models_pb2_grpc
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.auth.diagnose import explain_connection_failure
from gateway.client import exports
from gateway.client.audit import AuditReader
from gateway.client.results import Result
from gateway.contract import states
from gateway.transport import rpc
from gateway.transport.tls import TlsIdentity
from mpc.errors import FailedPrecondition, InvalidArgument, MpcgateError, from_rpc_error

T = TypeVar("T")
InputLike = pb.JobInput | tuple[str, str, Sequence[str]]

_PARTITIONING = {"horizontal": pb.PARTITIONING_HORIZONTAL, "vertical": pb.PARTITIONING_VERTICAL}
_PROVIDERS = {"TFP": pb.PROVIDER_TFP, "TTP": pb.PROVIDER_TTP}


@dataclass(frozen=True)
class Model:
    """A model a joint job trained, as this gateway holds it. A revealed model has
    its weights as numpy arrays (coefficients in the features' own units); a
    shared model (`shared`) only its metrics: the weights exist as shares at the
    parties' gateways, and no API returns them. A `partial` model (vertical,
    own_coefficients) holds this party's features' coefficients and its part of the
    intercept: `predict` gives its part of the score, and the parts sum to the
    model's."""

    model_id: str
    kind: str
    features: list[str]
    label: str
    shared: bool
    values: dict[str, np.ndarray]
    metrics: dict[str, float]
    provider: str
    parties: list[str]
    partial: bool = False
    asset: bool = False  # an ONNX network registered at this gateway (its weights never leave it)
    architecture: dict[str, Any] = field(default_factory=dict)  # model.mlp and assets: widths, output, input shape

    @property
    def coefficients(self) -> np.ndarray:
        return self._weights("coefficients")

    @property
    def intercept(self) -> float:
        return float(self._weights("intercept")[0])

    def _weights(self, name: str) -> np.ndarray:
        if self.shared:
            raise FailedPrecondition(f"model {self.model_id} is kept secret-shared: nobody holds its {name}")
        return self.values[name]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The model applied in plaintext to rows of the features, in their order:
        a linear model's prediction or score, a model.mlp's logits."""
        if self.kind == "model.mlp":
            import torch

            with torch.no_grad():
                scores: np.ndarray = self.to_torch()(torch.from_numpy(np.asarray(features, dtype=np.float64))).numpy()
            return scores
        linear: np.ndarray = np.asarray(features, dtype=np.float64) @ self.coefficients + self.intercept
        return linear

    def to_torch(self) -> Any:
        """A torch.nn.Module computing the same predictions (float64); for a
        model.mlp, its standardization and layers, giving logits."""
        import torch

        if self.kind == "model.mlp":
            return exports.mlp_module(self._weights("feature_means"), self._weights("feature_stds"),
                               [self.values[f"layer.{2 * i}.{part}"] for i in range(len(self.architecture["widths"]) - 1)
                                for part in ("weight", "bias")])
        layer = torch.nn.Linear(len(self.features), 1, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.coefficients.reshape(1, -1)))
            layer.bias.fill_(self.intercept)
        return layer

    def outputs(self) -> list[str]:
        """The exported programs' outputs: a classifier's logit(s) and probability
        (or probabilities per class), a linear regression's prediction."""
        return exports.outputs(self)

    def to_onnx(self, path: str) -> str:
        """Writes the model as ONNX: input "features" (rows x features); outputs as
        `outputs()` names them. The file appears whole or not at all."""
        return exports.to_onnx(self, path)

    def save_torch(self, path: str, state_dict: bool = False) -> str:
        """Writes the model as a torch.export program (`torch.export.load(path).module()`,
        no Python class needed; outputs as `outputs()` names them) or, with
        `state_dict`, its tensors alone (`torch.load(path)`, weights only)."""
        return exports.save_torch(self, path, state_dict)


class Client:
    def __init__(self, address: str, token: str, tls: TlsIdentity, server_party: str, timeout: float = 30.0) -> None:
        self._channel = rpc.secure_channel(tls, address, server_party)
        self._endpoint = (address, tls, server_party)
        self.party = server_party  # the gateway this client talks to
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self.jobs_stub = jobs_pb2_grpc.JobServiceStub(self._channel)
        self.datasets_stub = datasets_pb2_grpc.DatasetServiceStub(self._channel)
        self.models_stub = models_pb2_grpc.ModelServiceStub(self._channel)

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self._timeout)
        except grpc.RpcError as err:
            raise self._failure(err) from None

    def _failure(self, err: grpc.RpcError) -> MpcgateError:
        """The typed error; when the channel could not connect, with why (who
        answered at the address, which side refused whose certificate)."""
        error = from_rpc_error(err)
        if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            why = explain_connection_failure(*self._endpoint)
            if why:
                explained = type(error)(f"{why} [{error.message}]")
                explained.code = error.code  # type: ignore[misc]
                return explained
        return error

    @property
    def audit(self) -> AuditReader:
        """The gateway's audit log (scope audit:read)."""
        return AuditReader(self._channel, self._call)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -----------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        inputs: Iterable[InputLike],
        receivers: Sequence[str],
        partitioning: str = "horizontal",
        parameters: Mapping[str, Any] | None = None,
        provider: str = "TTP",
        deadline_s: float | None = None,
        request_id: str = "",
        model: tuple[str, Sequence[str]] | None = None,
        purpose: str = "",
    ) -> Job:
        """Submits a job; `model` = (model id, holders) for model.predict and model.evaluate;
        `purpose`: why it runs, shown to every data owner (a policy may require it)."""
        if partitioning not in _PARTITIONING:
            raise InvalidArgument(f"partitioning must be one of {sorted(_PARTITIONING)}")
        if provider not in _PROVIDERS:
            raise InvalidArgument(f"provider must be one of {sorted(_PROVIDERS)}")
        spec = pb.JobSpec(
            kind=kind,
            inputs=[i if isinstance(i, pb.JobInput) else pb.JobInput(party_id=i[0], dataset=i[1], columns=list(i[2]))
                    for i in inputs],
            partitioning=_PARTITIONING[partitioning],
            result_receivers=list(receivers),
            provider=_PROVIDERS[provider],
            request_id=request_id,
            purpose=purpose,
        )
        if model is not None:
            spec.model.CopyFrom(pb.ModelRef(model_id=model[0], holders=list(model[1])))
        if parameters:
            spec.parameters.CopyFrom(_struct(parameters))
        if deadline_s:
            spec.deadline.FromNanoseconds(int(round(deadline_s * 1e9)))
        response = self._call(self.jobs_stub.SubmitJob, pb.SubmitJobRequest(spec=spec))
        return Job(self, response.job)

    def job(self, job_id: str) -> Job:
        return Job(self, self._call(self.jobs_stub.GetJob, pb.GetJobRequest(job_id=job_id)).job)

    def list_jobs(self, states_wanted: Sequence[int] = (), page_size: int = 100, kind: str = "",
                  since: datetime | None = None, party: str = "") -> list[Job]:
        """Jobs this gateway knows, newest first: only in `states_wanted`, of `kind`,
        created at or after `since` (UTC where naive), with `party` taking part, where given."""
        request = pb.ListJobsRequest(states=[pb.JobState.ValueType(s) for s in states_wanted], kind=kind,
                                     party_id=party)
        if since is not None:
            request.since.FromDatetime(since if since.tzinfo else since.replace(tzinfo=UTC))
        jobs: list[Job] = []
        token = ""
        while True:
            request.page.CopyFrom(paging_pb2.PageRequest(page_size=page_size, page_token=token))
            response = self._call(self.jobs_stub.ListJobs, request)
            jobs += [Job(self, j) for j in response.jobs]
            token = response.page.next_page_token
            if not token:
                return jobs

    def approve(self, job_id: str, approve: bool = True, reason: str = "") -> Job:
        request = pb.ApproveJobRequest(job_id=job_id, approve=approve, reason=reason)
        return Job(self, self._call(self.jobs_stub.ApproveJob, request).job)

    # -- datasets ---------------------------------------------------------------------

    def register_dataset(self, name: str, path: str, policy: datasets_pb2.Policy, numeric_columns: Sequence[str] = (),
                         key_column: str = "", description: str = "", file_format: str = "",
                         replace: bool = False, complete_columns: Sequence[str] = (),
                         categorical_columns: Sequence[str] = (), other_columns: Sequence[str] = ()
                         ) -> datasets_pb2.Dataset:
        """Registers a CSV or Parquet file (format from `file_format`, else the suffix).
        Missing cells (empty, NA, NaN, null, ...) are allowed except in `complete_columns`;
        a column without numbers is categorical (`categorical_columns`: codes too)."""
        formats = {"": datasets_pb2.FILE_FORMAT_UNSPECIFIED, "csv": datasets_pb2.FILE_FORMAT_CSV,
                   "parquet": datasets_pb2.FILE_FORMAT_PARQUET}
        if file_format not in formats:
            raise InvalidArgument(f"file_format must be one of {sorted(formats)}")
        request = datasets_pb2.RegisterDatasetRequest(
            name=name, path=path, format=formats[file_format], numeric_columns=list(numeric_columns),
            key_column=key_column, description=description, policy=policy, replace=replace,
            complete_columns=list(complete_columns), categorical_columns=list(categorical_columns),
            other_columns=list(other_columns))
        response: datasets_pb2.RegisterDatasetResponse = self._call(self.datasets_stub.RegisterDataset, request)
        return response.dataset

    def list_datasets(self) -> list[datasets_pb2.Dataset]:
        datasets, token = [], ""
        while True:
            response = self._call(self.datasets_stub.ListDatasets, datasets_pb2.ListDatasetsRequest(
                page=paging_pb2.PageRequest(page_token=token)))
            datasets += list(response.datasets)
            token = response.page.next_page_token
            if not token:
                return datasets

    def get_dataset(self, name: str) -> datasets_pb2.Dataset:
        response: datasets_pb2.GetDatasetResponse = self._call(self.datasets_stub.GetDataset,
                                                               datasets_pb2.GetDatasetRequest(name=name))
        return response.dataset

    def update_policy(self, name: str, policy: datasets_pb2.Policy) -> datasets_pb2.Dataset:
        response: datasets_pb2.UpdatePolicyResponse = self._call(
            self.datasets_stub.UpdatePolicy, datasets_pb2.UpdatePolicyRequest(name=name, policy=policy))
        return response.dataset

    def delete_dataset(self, name: str) -> None:
        self._call(self.datasets_stub.DeleteDataset, datasets_pb2.DeleteDatasetRequest(name=name))

    # -- models -----------------------------------------------------------------------

    def list_models(self) -> list[Model]:
        models, token = [], ""
        while True:
            response = self._call(self.models_stub.ListModels, models_pb2.ListModelsRequest(
                page=paging_pb2.PageRequest(page_token=token)))
            models += [_model(m) for m in response.models]
            token = response.page.next_page_token
            if not token:
                return models

    def model(self, model_id: str) -> Model:
        return _model(self._call(self.models_stub.GetModel, models_pb2.GetModelRequest(model_id=model_id)).model)

    def register_model(self, model_id: str, onnx: Any, input_shape: Sequence[int], policy: Mapping[str, Any],
                       output: str = "identity", features: Sequence[str] = (), input_shift: Sequence[float] = (),
                       input_scale: Sequence[float] = ()) -> Model:
        """Registers a network this party owns as a model asset: ONNX bytes, or a
        torch.nn.Module (exported as crypten.nn.from_pytorch exports it); `policy`
        in the policy file's keys (gateway.contract.policies.parse_model). The network sees
        (x - input_shift) / input_scale where those are given (public to its users)."""
        from gateway.contract.policies import parse_model

        if not isinstance(onnx, bytes):
            from mpc.runtime import compat

            import torch

            buffer = io.BytesIO()
            compat.export_onnx(buffer, onnx.eval(), torch.zeros(1, *input_shape))
            onnx = buffer.getvalue()

        request = models_pb2.RegisterModelRequest(model_id=model_id, onnx=onnx, input_shape=list(input_shape),
                                                  output=output, policy=parse_model(dict(policy)), features=list(features),
                                                  input_shift=list(input_shift), input_scale=list(input_scale))
        return _model(self._call(self.models_stub.RegisterModel, request).model)

    def set_model_policy(self, model_id: str, policy: Mapping[str, Any]) -> Model:
        from gateway.contract.policies import parse_model

        request = models_pb2.SetModelPolicyRequest(model_id=model_id, policy=parse_model(dict(policy)))
        return _model(self._call(self.models_stub.SetModelPolicy, request).model)

    def delete_model(self, model_id: str) -> None:
        self._call(self.models_stub.DeleteModel, models_pb2.DeleteModelRequest(model_id=model_id))


class Job:
    """A handle on one job at the gateway the client talks to."""

    def __init__(self, client: Client, record: pb.Job) -> None:
        self._client = client
        self.record = record

    @property
    def id(self) -> str:
        return self.record.job_id

    @property
    def state(self) -> str:
        return states.name(self.record.state)

    @property
    def done(self) -> bool:
        return self.record.state in states.TERMINAL

    def refresh(self) -> Job:
        self.record = self._client.job(self.id).record
        return self

    def watch(self, after_sequence: int = 0, timeout: float | None = None) -> Iterator[pb.JobEvent]:
        """The job's events, replayed from the start, until it ends."""
        request = pb.WatchJobRequest(job_id=self.id, after_sequence=after_sequence)
        try:
            for response in self._client.jobs_stub.WatchJob(request, metadata=self._client._metadata, timeout=timeout):
                yield response.event
        except grpc.RpcError as err:
            raise self._client._failure(err) from None
        self.refresh()

    def wait(self, timeout: float | None = None) -> Job:
        for _ in self.watch(timeout=timeout):
            pass
        return self

    def cancel(self, reason: str = "") -> Job:
        request = pb.CancelJobRequest(job_id=self.id, reason=reason)
        self.record = self._client._call(self._client.jobs_stub.CancelJob, request).job
        return self

    def result(self) -> Result:
        raw = self._client._call(self._client.jobs_stub.GetResult, pb.GetResultRequest(job_id=self.id)).result
        values, labels, columns, suppressed = {}, {}, {}, {}
        for value in raw.values:
            values[value.name] = _array(value)
            labels[value.name] = list(value.labels)
            if value.column_labels:
                columns[value.name] = list(value.column_labels)
            if value.suppressed:
                suppressed[value.name] = list(value.suppressed)
        return Result(raw.job_id, values, labels, pb.Provider.Name(raw.provider).removeprefix("PROVIDER_"),
                      columns, suppressed)


def _array(value: pb.ResultValue) -> np.ndarray:
    return np.frombuffer(value.tensor.data, dtype="<f8").reshape(tuple(value.tensor.shape)).copy()


def _model(record: models_pb2.Model) -> Model:
    return Model(record.model_id, record.kind, list(record.features), record.label, record.shared,
                 {v.name: _array(v) for v in record.values}, dict(record.metrics),
                 pb.Provider.Name(record.provider).removeprefix("PROVIDER_"), list(record.parties), record.partial,
                 record.asset, {"widths": list(record.architecture.widths), "output": record.architecture.output,
                                "input_shape": list(record.architecture.input_shape)})


def _finite(name: str, value: Any) -> None:
    if isinstance(value, float) and not np.isfinite(value):
        raise InvalidArgument(f"parameter {name}: {value} is not a finite number")
    for item in value if isinstance(value, (list, tuple)) else ():
        _finite(name, item)


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    for name, value in values.items():
        _finite(name, value)
    struct = struct_pb2.Struct()
    struct.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()})
    return struct
