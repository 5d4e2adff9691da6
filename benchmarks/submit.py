"""SubmitJob latency when many jobs arrive at once (partner-API issue, defect 14):
three gateways and the dealer, `--jobs` submissions from as many threads, each
timed from the call to its answer. The baseline, in the same run, is a gateway
whose SubmitJob waits for every party's review (`submit_wait_s` longer than any
review: the behaviour before), the measured one answers after at most
`submit_wait_s` = 1 s (the default). Jobs are cancelled as soon as they are
answered; what is measured is the answer, not the jobs.

Usage: .venv/bin/python benchmarks/submit.py [--jobs 30] [--rows 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation

BANKS = ["bank-a", "bank-b", "bank-c"]


def latencies(wait_s: float, jobs: int, rows: int) -> list[float]:
    config = {"bank-a": f"submit_wait_s = {wait_s}"}
    with tempfile.TemporaryDirectory() as scratch, \
            LocalFederation(Path(scratch), BANKS, dealer=True, party_config=config) as federation:
        for bank in BANKS:
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv", demo_data.loans(bank, rows))
        federation.start()
        policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["stats.describe"],
                            allowed_columns=demo_data.COLUMNS, allowed_result_receivers=["bank-a"], min_rows=10,
                            approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
        for bank in BANKS:
            with federation.client(bank) as client:
                client.register_dataset("loans", "loans.csv", policy)
        inputs = [(b, "loans", ["income", "age"]) for b in BANKS]

        def submit(_: int) -> float:
            with federation.client("bank-a") as client:
                started = time.perf_counter()
                job = client.submit("stats.describe", inputs, receivers=["bank-a"])
                took = time.perf_counter() - started
                job.cancel("benchmark")
                return took

        with ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(submit, range(jobs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    before = latencies(3600.0, args.jobs, args.rows)
    after = latencies(1.0, args.jobs, args.rows)
    for label, values in (("waits for every review", before), ("submit_wait_s = 1", after)):
        print(f"{label:>24}: median {statistics.median(values):6.2f} s, max {max(values):6.2f} s ({len(values)} jobs)")
    print(f"median ratio (answer now / before): {statistics.median(after) / statistics.median(before):.3f}")


if __name__ == "__main__":
    main()
