"""CrypTen over the gRPC exchange: one OS process per party, every party on its own
mutual-TLS port; the same programs give the same answers as over gloo."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.exchange import local_parties as parties
from mpc.programs import smoke, workloads
from mpc.programs.workloads import Params

pytestmark = pytest.mark.multiprocess

FIXED_POINT_TOL = 2e-2  # 16 fractional bits, through sigmoid/reciprocal approximations
SMALL = Params(size=300, rows=120, features=4, batch=40)


def _revealed(results: list[dict]) -> list[dict[str, np.ndarray]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "stats")} for r in results]


@pytest.mark.parametrize("world_size", [2, 3])
def test_workloads_match_gloo(world_size: int) -> None:
    plan = [(name, Params(size=16) if name == "matmul" else SMALL) for name in workloads.WORKLOADS]
    over_grpc = parties.run_parties(workloads.run_many, world_size, plan, transport="grpc", timeout=180)
    over_gloo = parties.run_parties(workloads.run_many, world_size, plan, transport="gloo", timeout=180)
    for rank in range(world_size):
        grpc_results, gloo_results = _revealed(over_grpc[rank]), _revealed(over_gloo[rank])
        for (name, _), from_grpc, from_gloo in zip(plan, grpc_results, gloo_results):
            assert from_grpc.keys() == from_gloo.keys()
            for key in from_grpc:
                np.testing.assert_allclose(from_grpc[key], from_gloo[key], atol=FIXED_POINT_TOL, err_msg=f"{name}.{key}")


def test_logistic_epoch_matches_plaintext() -> None:
    results = parties.run_parties(workloads.run, 2, ("logistic_epoch", SMALL), transport="grpc", timeout=120)
    want = workloads.logistic_epoch_plaintext(SMALL)
    for result in results:
        np.testing.assert_allclose(result["weights"], want, atol=FIXED_POINT_TOL)


def test_smoke_program_over_grpc_matches_plaintext() -> None:
    results = parties.run_parties(smoke.program, 3, transport="grpc", timeout=120)
    assert max(smoke.max_error(3, r) for r in results) < smoke.TOLERANCE


def test_statistics_count_real_bytes_and_rounds() -> None:
    params = Params(size=1000)
    results = parties.run_parties(workloads.run, 2, ("multiply", params), transport="grpc", timeout=120)
    for result in results:
        stats = result["stats"]
        # Beaver multiplication of n values: each party sends two masked n-vectors
        # of int64 (8 bytes each) in one round; revealing the product sends its
        # share (n more). Frame headers add a few dozen bytes.
        assert 2 <= stats["exchanges"] <= 4
        assert 3 * 8 * params.size <= stats["wire_bytes_sent"] <= 3 * 8 * params.size + 500
