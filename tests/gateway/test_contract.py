"""The generated contract: the services DESIGN.md names exist with their RPCs and
stream shapes, and the messages a tensor stream needs round-trip."""

from __future__ import annotations

import pytest

from gateway.api.common.v1 import tensor_pb2
from gateway.api.exchange.v1 import exchange_pb2
from gateway.api.gateway.v1 import datasets_pb2, jobs_pb2, models_pb2


@pytest.mark.parametrize(
    ("module", "service", "methods"),
    [
        (datasets_pb2, "DatasetService", {"RegisterDataset", "GetDataset", "ListDatasets", "UpdatePolicy", "DeleteDataset"}),
        (jobs_pb2, "JobService", {"SubmitJob", "GetJob", "ListJobs", "WatchJob", "CancelJob", "ApproveJob", "GetResult"}),
        (exchange_pb2, "ExchangeService", {"Exchange"}),
        (models_pb2, "ModelService", {"ListModels", "GetModel", "DeleteModel", "RegisterModel", "SetModelPolicy"}),
    ],
)
def test_services_have_their_rpcs(module, service: str, methods: set[str]) -> None:  # type: ignore[no-untyped-def]
    descriptor = module.DESCRIPTOR.services_by_name[service]
    assert {m.name for m in descriptor.methods} == methods
    assert descriptor.full_name.startswith("mpcgate.") and ".v1." in descriptor.full_name


def test_stream_shapes() -> None:
    watch = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].methods_by_name["WatchJob"]
    assert watch.server_streaming and not watch.client_streaming
    exchange = exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].methods_by_name["Exchange"]
    assert exchange.server_streaming and exchange.client_streaming


def test_tensor_frame_round_trips() -> None:
    header = exchange_pb2.ExchangeRequest(
        header=exchange_pb2.FrameHeader(
            sequence=3,
            tag="mul",
            payload_type=exchange_pb2.PAYLOAD_TYPE_TENSOR,
            tensor=tensor_pb2.TensorHeader(
                element_type=tensor_pb2.ELEMENT_TYPE_INT64,
                shape=[1024, 1024],
                byte_order=tensor_pb2.BYTE_ORDER_LITTLE_ENDIAN,
                byte_size=8 * 1024 * 1024,
                chunk_count=8,
            ),
        )
    )
    decoded = exchange_pb2.ExchangeRequest.FromString(header.SerializeToString())
    assert decoded.WhichOneof("payload") == "header"
    assert list(decoded.header.tensor.shape) == [1024, 1024]
    chunk = exchange_pb2.ExchangeRequest(chunk=b"\x01" * 1024)
    assert exchange_pb2.ExchangeRequest.FromString(chunk.SerializeToString()).chunk == b"\x01" * 1024


def test_enums_default_to_unspecified() -> None:
    job = jobs_pb2.Job()
    assert job.state == jobs_pb2.JOB_STATE_UNSPECIFIED
    assert job.spec.provider == jobs_pb2.PROVIDER_UNSPECIFIED
    assert datasets_pb2.Policy().approval_mode == datasets_pb2.APPROVAL_MODE_UNSPECIFIED
