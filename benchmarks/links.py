"""Constrained links: the same jobs across hosts (three banks and the dealer, each in
a Linux network namespace of its own on a bridged virtual link, as in
tests/e2e/test_multihost.py) with every host's link unshaped, then shaped by tc's
token-bucket filter to 1 Gbit/s and to 100 Mbit/s. Prints submit-to-result and the
busiest party's bytes and rounds per job kind beside the unshaped run, so the cost
of bandwidth is known per job kind. Needs root (namespaces, tc); says so otherwise.

Usage: .venv/bin/python benchmarks/links.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import netnskit  # noqa: E402  (the test suite's namespace kit)

from gateway import demo_data  # noqa: E402
from gateway.exchange.local_parties import DEALER  # noqa: E402
from gateway.federation import HOST_PORT  # noqa: E402

BANKS = demo_data.INSTITUTIONS
COLUMNS = [f"x{i}" for i in range(8)]
JOBS = [("stats.describe", {}), ("stats.correlation", {}),
        ("model.linear_regression", {"label": "x7"})]
RATES = [("unshaped", None), ("1 Gbit/s", "1gbit"), ("100 Mbit/s", "100mbit")]


def table(bank: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(bank)
    x = rng.normal(size=(rows, 7))
    label = (x @ rng.normal(size=7) + rng.normal(size=rows) > 0).astype(np.float64)
    return np.column_stack([x, label])


def shape(hosts: netnskit.Hosts, rate: str | None) -> None:
    """Every host's outgoing traffic through a token bucket of `rate` (or none)."""
    for ns in hosts.namespaces.values():
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root"], capture_output=True)
        if rate:
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
                            "burst", "256kb", "latency", "100ms"], check=True, capture_output=True)


def _register(root: Path, addresses: dict[str, str]) -> None:
    from gateway.api.gateway.v1 import datasets_pb2 as dpb

    policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=[kind for kind, _ in JOBS], allowed_columns=COLUMNS,
                        allowed_result_receivers=["bank-a"], min_rows=10, approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
    for bank in BANKS:
        with netnskit.client(root, bank, addresses[bank]) as owner:
            owner.register_dataset("data", "data.csv", policy)


def _run_jobs(root: Path, addresses: dict[str, str], gap: float) -> list[tuple[str, float, int, int, str]]:
    out = []
    with netnskit.client(root, "bank-a", addresses["bank-a"]) as client:
        for kind, parameters in JOBS:
            time.sleep(gap)  # warm workers back in their pools
            started = time.perf_counter()
            job = client.submit(kind, [(b, "data", COLUMNS) for b in BANKS], receivers=["bank-a"], provider="TTP",
                                parameters=parameters)
            job.wait(timeout=1800)
            seconds = time.perf_counter() - started
            progress = job.record.progress
            out.append((kind, seconds, progress.bytes_sent, progress.rounds, job.state))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--gap", type=float, default=6.0)
    args = parser.parse_args()
    why_not = netnskit.can_create_namespaces()
    if why_not:
        print(f"skipped: {why_not}")
        return
    hosts = netnskit.Hosts([*BANKS, DEALER])
    processes: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            fed = netnskit.federation(root, BANKS, hosts)
            for i, bank in enumerate(BANKS):
                demo_data.write_csv(fed.data_dir(bank) / "data.csv", table(i, args.rows), COLUMNS)
            processes = netnskit.start(fed, hosts)
            addresses = {b: f"{hosts.addresses[b]}:{HOST_PORT}" for b in BANKS}
            netnskit.in_namespace(hosts.namespaces["bank-a"], _register, root, addresses)
            measured = {}
            for label, rate in RATES:
                shape(hosts, rate)
                measured[label] = netnskit.in_namespace(hosts.namespaces["bank-a"], _run_jobs, root, addresses,
                                                        args.gap, timeout=3600)
            shape(hosts, None)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        hosts.close()
    print(f"\n3 banks x {args.rows:,} rows x {len(COLUMNS)} columns and the dealer, each on its own host (network "
          "namespace), TTP; submit to result in seconds, the busiest party's MB sent and rounds\n")
    header = f"{'job':28s} " + " ".join(f"{label:>12s}" for label, _ in RATES) + f" {'MB sent':>8s} {'rounds':>7s}"
    print(header)
    print("-" * len(header))
    for i, (kind, _) in enumerate(JOBS):
        cells = []
        for label, _ in RATES:
            _, seconds, _, _, state = measured[label][i]
            cells.append(f"{seconds:12.2f}" if state == "SUCCEEDED" else f"{state:>12s}")
        _, _, sent, rounds, _ = measured["unshaped"][i]
        print(f"{kind:28s} " + " ".join(cells) + f" {sent / 1e6:8.2f} {rounds:7d}")


if __name__ == "__main__":
    main()
