"""Keyset pages (gateway/db.py) as the list services serve them: a page continues
below the last row shown, so rows stored meanwhile shift nothing; a token this
gateway did not give is INVALID_ARGUMENT, not an internal error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from gateway.api.common.v1 import paging_pb2
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.api.gateway.v1 import models_pb2 as mpb
from gateway.db import Conditions, keyset, next_token
from gateway.registry.model_store import ModelServicer, ModelStore
from mpc.errors import InvalidArgument


def _trained(job_id: str) -> pb.Job:
    parameters = struct_pb2.Struct()
    parameters.update({"label": "y"})
    spec = pb.JobSpec(kind="model.linear_regression", parameters=parameters,
                      inputs=[pb.JobInput(party_id="bank-a", dataset="loans", columns=["x", "y"])])
    return pb.Job(job_id=job_id, spec=spec, parties=[pb.PartyStatus(party_id="bank-a")])


def _listed(servicer: ModelServicer, size: int, token: str = "") -> mpb.ListModelsResponse:
    request = mpb.ListModelsRequest(page=paging_pb2.PageRequest(page_size=size, page_token=token))
    return asyncio.run(servicer.ListModels(request, None))


def test_model_pages_stay_put_while_models_are_stored(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "gateway.db")
    servicer = ModelServicer(store)
    for i in range(5):
        store.save(_trained(f"m{i}"), None, None)
    first = _listed(servicer, 2)
    assert [m.model_id for m in first.models] == ["m4", "m3"]
    store.save(_trained("m5"), None, None)  # a new model on top: the next page does not repeat m3
    second = _listed(servicer, 2, first.page.next_page_token)
    assert [m.model_id for m in second.models] == ["m2", "m1"]
    last = _listed(servicer, 2, second.page.next_page_token)
    assert [m.model_id for m in last.models] == ["m0"] and last.page.next_page_token == ""
    store.close()


@pytest.mark.parametrize("token", ["abc", "-1", "1e3", "9" * 50 + "x"])
def test_a_token_this_gateway_did_not_give_is_an_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token"):
        keyset(paging_pb2.PageRequest(page_token=token), 100, 1000)


def test_sizes_default_and_cap_and_the_last_page_has_no_token() -> None:
    assert keyset(paging_pb2.PageRequest(), 100, 1000) == (100, None)
    assert keyset(paging_pb2.PageRequest(page_size=5000, page_token="17"), 100, 1000) == (1000, 17)
    assert next_token([9, 8, 7], 2) == "8" and next_token([9, 8], 2) == ""
    where = Conditions()
    assert where.sql() == ""
    where.add("a = ?", 1)
    where.add("b IN (?, ?)", 2, 3)
    assert where.sql() == " WHERE a = ? AND b IN (?, ?)" and where.params == [1, 2, 3]
