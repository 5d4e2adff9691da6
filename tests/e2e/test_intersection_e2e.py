"""Private set intersection through real gateways (mutual TLS, the dealer, one
worker process per party): a vertical job on customers that the banks hold only
partly and in different orders runs on the inner join; psi.intersect reports the
size; a policy's minimum intersection and a repeated key are refused clearly."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation
from mpc.errors import InvalidArgument

pytestmark = pytest.mark.multiprocess

BANKS = ["bank-a", "bank-b"]
COMMON = 250


def _customers() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """bank-a: income of customers 0..399; bank-b: debt of customers 150..549,
    each in its own order. 250 in common."""
    rng = np.random.default_rng(8)
    income = rng.normal(60_000, 15_000, 600)
    debt = 0.3 * income + rng.normal(0, 5_000, 600)
    out = {}
    for bank, ids, column in (("bank-a", np.arange(0, 400), income), ("bank-b", np.arange(150, 550), debt)):
        order = rng.permutation(ids)
        out[bank] = (np.array([f"C{i:06d}" for i in order]), column[order])
    return out


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path_factory.mktemp("psi"), BANKS, dealer=True, failure_timeout=5.0) as federation:
        for bank, (keys, values) in _customers().items():
            column = "income" if bank == "bank-a" else "debt"
            demo_data.write_csv(federation.data_dir(bank) / "customers.csv", values[:, None], [column], key=keys)
        federation.start()
        for bank in BANKS:
            policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["stats.summary", "psi.intersect"],
                                allowed_columns=["income", "debt"], allowed_result_receivers=BANKS, min_rows=10,
                                approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
            with federation.client(bank) as client:
                client.register_dataset("customers", "customers.csv", policy, key_column="customer_id")
        yield federation


def test_a_vertical_job_runs_on_the_customers_both_banks_hold(fed: LocalFederation) -> None:
    data = _customers()
    inner = {k: v for k, v in zip(*data["bank-a"])}
    joined = np.array([[inner[k], v] for k, v in zip(*data["bank-b"]) if k in inner])
    with fed.client("bank-a") as client:
        job = client.submit("stats.summary", [("bank-a", "customers", ["income"]), ("bank-b", "customers", ["debt"])],
                            receivers=["bank-a"], partitioning="vertical")
        phases = [e.progress.phase for e in job.watch(timeout=120)]
        assert job.state == "SUCCEEDED", job.record
        result = job.result()
    assert len(joined) == COMMON and result["count"][0] == COMMON
    assert np.allclose(result["mean"], joined.mean(axis=0), rtol=1e-6)
    assert abs(result["correlation"][0, 1] - np.corrcoef(joined, rowvar=False)[0, 1]) <= 1e-3
    assert any("intersection" in p for p in phases), phases


def test_psi_intersect_and_a_minimum_intersection(fed: LocalFederation) -> None:
    inputs = [("bank-a", "customers", []), ("bank-b", "customers", [])]
    with fed.client("bank-a") as client:
        job = client.submit("psi.intersect", inputs, receivers=["bank-a"], partitioning="vertical",
                            parameters={"cardinality_only": True})
        assert job.wait(timeout=120).state == "SUCCEEDED", job.record
        assert list(job.result()) == ["intersection_size"] and job.result()["intersection_size"][0] == COMMON
    with fed.client("bank-b") as owner:
        policy = owner.get_dataset("customers").policy
        policy.min_intersection_size = COMMON + 1
        owner.update_policy("customers", policy)
    try:
        with fed.client("bank-a") as client:
            job = client.submit("psi.intersect", inputs, receivers=["bank-a"], partitioning="vertical")
            assert job.wait(timeout=120).state == "FAILED"
            assert "bank-b refused" in job.record.error.message and "min_intersection_size" in job.record.error.message
    finally:
        with fed.client("bank-b") as owner:
            policy.min_intersection_size = 0
            owner.update_policy("customers", policy)


def test_a_repeated_key_is_refused_at_registration(fed: LocalFederation) -> None:
    demo_data.write_csv(fed.data_dir("bank-a") / "twice.csv", np.ones((3, 1)), ["income"],
                        key=np.array(["C1", "C2", "C1 "]))
    with fed.client("bank-a") as client, pytest.raises(InvalidArgument, match="'C1' appears more than once"):
        client.register_dataset("twice", "twice.csv", dpb.Policy(), key_column="customer_id")
