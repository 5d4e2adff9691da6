"""Job benchmark: three (or --parties) gateways (separate processes, mutual TLS) and
the TTP dealer, 100k rows x 8 columns at each, `stats.describe` and `stats.correlation` jobs timed from submit to
result, beside plaintext numpy on the pooled rows in the same run.

Usage: .venv/bin/python benchmarks/jobs.py [--rows 100000] [--parties 3] [--probe-rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation

COLUMNS = [f"x{i}" for i in range(8)]
KINDS = ["stats.describe", "stats.correlation"]


def table(party: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(party)
    base = rng.normal(size=(rows, 1))
    return (base * rng.uniform(0.2, 1, 8) + rng.normal(size=(rows, 8))) * (10.0 ** np.arange(8) / 100) + party


def numpy_seconds(pooled: np.ndarray, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        pooled.mean(axis=0), pooled.std(axis=0, ddof=1), pooled.min(axis=0), pooled.max(axis=0)
        np.corrcoef(pooled, rowvar=False)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--parties", type=int, default=3)
    parser.add_argument("--gap", type=float, default=6.0,
                        help="seconds before each job, so every gateway's warm worker is back in its pool (a refill "
                             "imports torch and CrypTen: ~2 CPU-seconds per gateway, which back-to-back jobs share)")
    parser.add_argument("--probe-rows", type=int, default=1_000_000,
                        help="then time GetJob while the coordinator registers a file this long (0: skip)")
    args = parser.parse_args()
    parties = [f"bank-{chr(ord('a') + i)}" for i in range(args.parties)]
    with tempfile.TemporaryDirectory() as scratch, LocalFederation(Path(scratch), parties, dealer=True) as federation:
        tables = {p: table(i, args.rows) for i, p in enumerate(parties)}
        for p in parties:
            demo_data.write_csv(federation.data_dir(p) / "data.csv", tables[p], COLUMNS)
        federation.start()
        policy = dpb.Policy(allowed_parties=parties, allowed_job_kinds=KINDS, allowed_columns=COLUMNS,
                            allowed_result_receivers=["bank-a"], min_rows=10, approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
        started = time.perf_counter()
        for p in parties:
            with federation.client(p) as owner:
                owner.register_dataset("data", "data.csv", policy)
        registering = (time.perf_counter() - started) / len(parties)
        pooled = np.vstack(list(tables.values()))
        plain = numpy_seconds(pooled)
        print(f"\n{len(parties)} parties x {args.rows:,} rows x {len(COLUMNS)} columns, horizontal; "
              f"plaintext numpy (describe + correlation) on the pooled rows: {plain * 1e3:.1f} ms; "
              f"registering one party's file: {registering:.2f} s\n")
        print(f"{'job':22s} {'submit->result s':>17s} {'ratio vs numpy':>15s} {'KB sent/party':>14s} {'rounds':>7s} "
              f"{'max rel err':>12s}")
        with federation.client("bank-a") as client:
            total = 0.0
            for kind in KINDS:
                time.sleep(args.gap)
                started = time.perf_counter()
                job = client.submit(kind, [(p, "data", COLUMNS) for p in parties], receivers=["bank-a"])
                job.wait(timeout=1800)
                result = job.result()
                seconds = time.perf_counter() - started
                total += seconds
                reference = demo_data.summary(pooled)
                err = demo_data.max_relative_error(result.values, reference)
                progress = job.record.progress
                print(f"{kind:22s} {seconds:17.2f} {seconds / plain:15.0f} {progress.bytes_sent / 1e3:14.1f} "
                      f"{progress.rounds:7d} {err:12.1e}")
            print(f"{'both':22s} {total:17.2f} {total / plain:15.0f}")
            if args.probe_rows:
                _probe(federation, client, job.id, args.probe_rows)


def _probe(federation: LocalFederation, client: object, job_id: str, rows: int) -> None:
    """GetJob latency at the coordinator while it registers a `rows`-row file."""
    import threading

    demo_data.write_csv(federation.data_dir("bank-a") / "big.csv", table(9, rows), COLUMNS)
    latencies: list[float] = []
    done = threading.Event()

    def register() -> None:
        with federation.client("bank-a") as owner:
            started = time.perf_counter()
            owner.register_dataset("big", "big.csv", dpb.Policy())
            latencies.append(-(time.perf_counter() - started))  # (negative: the registration's own time)
        done.set()

    thread = threading.Thread(target=register)
    thread.start()
    while not done.is_set():
        started = time.perf_counter()
        client.job(job_id)  # type: ignore[attr-defined]
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    thread.join()
    registration = -min(latencies)
    polls = np.array([v for v in latencies if v >= 0])
    print(f"\nGetJob while registering {rows:,} rows ({registration:.2f} s): {len(polls)} calls, "
          f"p50 {np.percentile(polls, 50) * 1e3:.1f} ms, p99 {np.percentile(polls, 99) * 1e3:.1f} ms, "
          f"max {polls.max() * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
