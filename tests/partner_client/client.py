"""A partner institution's own client: code generated from mpcgate's proto/ alone,
plus grpcio and protobuf (tests/e2e/test_partner_api_e2e.py runs it in a virtual
environment of its own). It imports nothing of mpcgate's Python packages.

Usage: python client.py GENERATED_DIR ADDRESS PARTY TLS_DIR CLIENT_NAME (token in MPCGATE_TOKEN)
Prints one JSON object: datasets, the job id of each submission, the watched
states, and the decoded result.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

generated, address, party, tls_dir, name = sys.argv[1:6]
sys.path.insert(0, generated)

import grpc  # noqa: E402
from mpcgate.common.v1 import tensor_pb2  # noqa: E402
from mpcgate.gateway.v1 import datasets_pb2, datasets_pb2_grpc, jobs_pb2, jobs_pb2_grpc  # noqa: E402

tls = Path(tls_dir)
credentials = grpc.ssl_channel_credentials(
    root_certificates=(tls / "ca.crt").read_bytes(), private_key=(tls / f"{name}.key").read_bytes(),
    certificate_chain=(tls / f"{name}.crt").read_bytes())
# a gateway's certificate names its party: the TLS host check is made against it
channel = grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", party)])
metadata = (("authorization", f"Bearer {os.environ['MPCGATE_TOKEN']}"),)
jobs = jobs_pb2_grpc.JobServiceStub(channel)
datasets = datasets_pb2_grpc.DatasetServiceStub(channel)

listed = datasets.ListDatasets(datasets_pb2.ListDatasetsRequest(), metadata=metadata, timeout=30)
spec = jobs_pb2.JobSpec(
    kind="stats.describe", partitioning=jobs_pb2.PARTITIONING_HORIZONTAL, provider=jobs_pb2.PROVIDER_TTP,
    result_receivers=[party], request_id="partner-retry-1",
    inputs=[jobs_pb2.JobInput(party_id=p, dataset="loans", columns=["income", "age"]) for p in ("bank-a", "bank-b")])
submitted = [jobs.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec), metadata=metadata, timeout=30).job.job_id
             for _ in range(2)]  # a retry with the same request_id: the same job

job_id, states, last = submitted[0], [], 0
first = jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=metadata, timeout=120)
for response in first:  # a dropped stream: one event, then the client goes away
    states.append(jobs_pb2.JobState.Name(response.event.state))
    last = response.event.sequence
    break
first.cancel()
for response in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id, after_sequence=last), metadata=metadata,
                              timeout=120):  # resumed after the last event seen
    states.append(jobs_pb2.JobState.Name(response.event.state))

result = jobs.GetResult(jobs_pb2.GetResultRequest(job_id=job_id), metadata=metadata, timeout=30).result
decoded = {}
for value in result.values:
    tensor = value.tensor
    assert tensor.element_type == tensor_pb2.ELEMENT_TYPE_FLOAT64
    assert tensor.byte_order == tensor_pb2.BYTE_ORDER_LITTLE_ENDIAN
    count = 1
    for dimension in tensor.shape:
        count *= dimension
    decoded[value.name] = {"labels": list(value.labels),
                           "values": list(struct.unpack(f"<{count}d", tensor.data))}

print(json.dumps({"datasets": sorted(d.name for d in listed.datasets), "submitted": submitted, "states": states,
                  "result": decoded, "mpcgate_imported": sorted(m for m in sys.modules
                                                               if m.split(".")[0] in ("gateway", "mpc"))}))
