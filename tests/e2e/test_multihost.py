"""Three banks and the dealer, each on a host of its own (a Linux network namespace
with its own address on a bridged virtual link): joint statistics pass across
them, with the TTP dealer and without, and a host whose link is cut mid-job fails the job at
every other party, naming it, within the failure bound. Skips where namespaces
cannot be made."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netnskit
import numpy as np
import pytest

from gateway import demo_data
from gateway.exchange.local_parties import DEALER
from gateway.federation import HOST_PORT

WHY_NOT = netnskit.can_create_namespaces()
pytestmark = [pytest.mark.multiprocess, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]

BANKS = demo_data.INSTITUTIONS
ROWS = 300
BOUND_S = 5.0  # the federation's failure_timeout


@pytest.fixture(scope="module")
def across_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, netnskit.Hosts]]:
    hosts = netnskit.Hosts([*BANKS, DEALER])
    processes: dict[str, Any] = {}
    try:
        root = tmp_path_factory.mktemp("hosts")
        fed = netnskit.federation(root, BANKS, hosts)
        for bank in BANKS:
            demo_data.write_csv(fed.data_dir(bank) / "loans.csv", demo_data.loans(bank, ROWS))
            big = np.tile(demo_data.loans(bank, 1000), (300, 1))  # long enough to cut a link mid-job
            demo_data.write_csv(fed.data_dir(bank) / "big.csv", big + np.random.default_rng(1).normal(size=big.shape))
        processes = netnskit.start(fed, hosts)
        yield root, hosts
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        hosts.close()


def _register(root: Path, addresses: dict[str, str]) -> None:
    from gateway.api.gateway.v1 import datasets_pb2 as dpb

    policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["stats.summary"], allowed_columns=demo_data.COLUMNS,
                        allowed_result_receivers=["bank-a"], min_rows=10, approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
    from mpc.errors import AlreadyExists

    for bank in BANKS:
        with netnskit.client(root, bank, addresses[bank]) as owner:
            for name in ("loans", "big"):
                try:
                    owner.register_dataset(name, f"{name}.csv", policy)
                except AlreadyExists:
                    pass  # (registered by an earlier test)


def _summary_job(root: Path, addresses: dict[str, str], provider: str) -> tuple[str, dict[str, Any]]:
    _register(root, addresses)
    with netnskit.client(root, "bank-a", addresses["bank-a"]) as client:
        job = client.submit("stats.summary", [(b, "loans", demo_data.COLUMNS) for b in BANKS], receivers=["bank-a"],
                            provider=provider)
        job.wait(timeout=180)
        return job.state, (job.result().values if job.state == "SUCCEEDED" else {"error": job.record.error.message})


@pytest.mark.parametrize("provider", ["TFP", "TTP"])
def test_joint_statistics_across_hosts(across_hosts: tuple[Path, netnskit.Hosts], provider: str) -> None:
    root, hosts = across_hosts
    addresses = {b: f"{hosts.addresses[b]}:{HOST_PORT}" for b in BANKS}
    state, values = netnskit.in_namespace(hosts.namespaces["bank-a"], _summary_job, root, addresses, provider)
    assert state == "SUCCEEDED", values
    pooled = np.vstack([demo_data.loans(b, ROWS) for b in BANKS])
    assert demo_data.max_relative_error(values, demo_data.summary(pooled)) < 1e-3


def _cut_mid_job(root: Path, addresses: dict[str, str], cut: list[str]) -> dict[str, Any]:
    with netnskit.client(root, "bank-a", addresses["bank-a"]) as client:
        job = client.submit("stats.summary", [(b, "big", demo_data.COLUMNS) for b in BANKS], receivers=["bank-a"],
                            provider="TTP")
        deadline = time.monotonic() + 120
        while job.refresh().state != "RUNNING" or job.record.progress.percent < 5:
            if job.done or time.monotonic() > deadline:
                return {"missed": job.state}
            time.sleep(0.05)
        subprocess.run(cut, check=True)
        cut_at = time.monotonic()
        job.wait(timeout=120)
        seen = {"coordinator": (job.state, job.record.error.message), "after_s": time.monotonic() - cut_at}
    with netnskit.client(root, "bank-b", addresses["bank-b"]) as other:
        record = other.job(job.id).record
        seen["bank-b"] = (other.job(job.id).state, record.error.message)
    return seen


def test_a_host_cut_off_mid_job_fails_it_everywhere_naming_it(across_hosts: tuple[Path, netnskit.Hosts]) -> None:
    root, hosts = across_hosts
    addresses = {b: f"{hosts.addresses[b]}:{HOST_PORT}" for b in BANKS}
    port = list(hosts.namespaces).index("bank-c")
    cut = ["ip", "-n", hosts.switch, "link", "set", f"port{port}", "down"]
    seen = netnskit.in_namespace(hosts.namespaces["bank-a"], _cut_mid_job, root, addresses, cut)
    assert "missed" not in seen, seen
    assert seen["coordinator"][0] == "FAILED" and "bank-c" in seen["coordinator"][1], seen
    assert seen["bank-b"][0] == "FAILED", seen
    assert seen["after_s"] < BOUND_S + 15, seen  # the bound, plus reporting between gateways
