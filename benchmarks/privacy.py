"""Privacy benchmark: what differential privacy inside MPC costs. stats.describe on
3 parties x 100k rows x 8 columns (one OS process per party, mpcgate's gRPC
exchange with mutual TLS), exact and with dp, interleaved in one run; prints
seconds and bytes per party for each and the ratio dp/exact, and how long the
budget accountant takes to compose a dataset's charges.

Usage: .venv/bin/python benchmarks/privacy.py [--parties 3] [--rows 100000] [--columns 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from mpc.parties import run_parties


def _describe(rank: int, world: int, args: tuple[int, int, int]) -> list[dict[str, float]]:
    import crypten.communicator as comm

    from mpc.programs import run
    from mpc.programs.context import JobContext, PartyLayout, ReleaseRules

    rows, d, repeats = args
    names = [f"x{j}" for j in range(d)]
    table = np.random.default_rng(rank).normal(50, 10, size=(rows, d))
    rules = ReleaseRules(dp_bounds={name: (0.0, 100.0) for name in names})
    out = []
    for _ in range(repeats):
        for dp in (False, True):
            parameters = {"dp": {"epsilon": 1.0}} if dp else {}
            ctx = JobContext("stats.describe", "horizontal", rank, world,
                             [PartyLayout(r, f"party{r}", names, -1) for r in range(world)], [0], parameters, table,
                             rules=rules)
            comm.get().reset_communication_stats()
            started = time.perf_counter()
            run(ctx)
            stats = comm.get().get_communication_stats()
            out.append({"dp": dp, "seconds": time.perf_counter() - started, "bytes": stats["wire_bytes_sent"],
                        "rounds": stats["exchanges"]})
    return out


def _accountant(jobs: int) -> float:
    from gateway.budgets import composed
    from mpc.programs.noise_plan import releases

    def events(epsilon: float, d: int) -> list[tuple[float, int, int]]:
        names = [f"x{j}" for j in range(d)]
        return releases("stats.describe", {"dp": {"epsilon": epsilon}}, names, names)

    composed([(1.0, events(1.0, 8))], 1e-6)  # imports
    started = time.perf_counter()
    composed([(1.0, events(1.0, 8)) for _ in range(jobs)] + [(0.5, events(0.5, 4))], 1e-6)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parties", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (exact, dp); the first pair warms up")
    args = parser.parse_args()
    runs: list[Any] = run_parties(_describe, args.parties, (args.rows, args.columns, args.repeats), transport="grpc",
                                  timeout=3600)
    by_rank = [r[2:] if args.repeats > 1 else r for r in runs]

    def best(dp: bool, key: str) -> float:
        timed = [max(party[i][key] for party in by_rank) for i in range(len(by_rank[0])) if by_rank[0][i]["dp"] == dp]
        return min(timed)

    print(f"\nstats.describe, {args.parties} parties x {args.rows} rows x {args.columns} columns, gRPC exchange, "
          f"best of {max(1, args.repeats - 1)} after a warm-up (the busiest party)\n")
    print(f"{'':10s} {'seconds':>9s} {'MB/party':>9s} {'rounds':>7s}")
    for dp in (False, True):
        print(f"{'dp' if dp else 'exact':10s} {best(dp, 'seconds'):9.3f} {best(dp, 'bytes') / 1e6:9.2f} "
              f"{int(best(dp, 'rounds')):7d}")
    print(f"dp/exact:  {best(True, 'seconds') / best(False, 'seconds'):9.2f}x "
          f"{best(True, 'bytes') / best(False, 'bytes'):9.2f}x")
    for jobs in (10, 100, 1000):
        print(f"accountant: a dataset with {jobs} charged jobs composed in {_accountant(jobs) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
