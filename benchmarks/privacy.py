"""Privacy benchmark: what differential privacy inside MPC costs, beside the same
job without it, interleaved in one run (one OS process per party, mpcgate's gRPC
exchange with mutual TLS):
- stats.describe and stats.covariance on 3 parties x 100k rows x 8 columns;
- a logistic-regression epoch on 10k rows x 20 features (split over the parties):
  the jobs run with 1 and with 3 epochs, and an epoch costs half the difference.
Each runs exact, with the laplace mechanism and with the gaussian one. Prints
seconds, bytes and rounds per party for each and the ratios to exact, and
how long the budget accountant takes to compose a dataset's charges.

Usage: .venv/bin/python benchmarks/privacy.py [--parties 3] [--rows 100000] [--columns 8]
       [--lr-rows 10000] [--lr-features 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from gateway.exchange.local_parties import run_parties

STATISTICS = ("stats.describe", "stats.covariance")
VARIANTS = ("exact", "laplace", "gaussian")


def _jobs(rank: int, world: int, args: tuple[int, int, int, int, int]) -> list[dict[str, Any]]:
    import crypten.communicator as comm

    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules
    from mpc.catalogue.kinds import parse
    from mpc.programs import run

    rows, d, lr_rows, lr_d, repeats = args
    rng = np.random.default_rng(rank)
    names = [f"x{j}" for j in range(d)]
    table = rng.normal(50, 10, size=(rows, d))
    features = [f"f{j}" for j in range(lr_d)]
    x = rng.normal(size=(lr_rows // world, lr_d))
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-x @ np.linspace(-1, 1, lr_d)))).astype(np.float64)
    bounds = {**{name: (0.0, 100.0) for name in names}, **{f: (-4.0, 4.0) for f in features}, "y": (0.0, 1.0)}
    work = [(kind, names, table, {}) for kind in STATISTICS]
    work += [("model.logistic_regression", [*features, "y"], np.column_stack([x, y]),
              {"label": "y", "epochs": epochs, "tolerance": 0.0, "holdout": 0.0}) for epochs in (1, 3)]
    out = []
    for _ in range(repeats):
        for kind, columns, data, parameters in work:
            for dp in VARIANTS:
                chosen = dict(parameters)
                if dp != "exact":
                    chosen = {k: v for k, v in chosen.items() if k not in ("tolerance", "holdout")}
                    gaussian = {"delta": 1e-6, "mechanism": "gaussian"} if dp == "gaussian" else {}
                    chosen["dp"] = {"epsilon": 1.0, **gaussian}
                ctx = JobContext(kind, "horizontal", rank, world,
                                 [PartyLayout(r, f"party{r}", columns, -1) for r in range(world)], [0], parse(kind, chosen), data,
                                 rules=ReleaseRules(dp_bounds=bounds))
                comm.get().reset_communication_stats()
                started = time.perf_counter()
                run(ctx)
                stats = comm.get().get_communication_stats()
                out.append({"job": f"{kind}:{parameters.get('epochs', '')}", "dp": dp,
                            "seconds": time.perf_counter() - started, "bytes": stats["wire_bytes_sent"],
                            "rounds": stats["exchanges"]})
    return out


def _accountant(jobs: int) -> float:
    from gateway.registry.budgets import composed
    from mpc.catalogue.kinds import parse
    from mpc.privacy.plan import releases

    def events(epsilon: float, d: int) -> list[tuple[float, int, int]]:
        names = [f"x{j}" for j in range(d)]
        return releases("stats.describe", parse("stats.describe", {"dp": {"epsilon": epsilon}}), names, names)

    composed([(1.0, events(1.0, 8))], 1e-6)  # imports
    started = time.perf_counter()
    composed([(1.0, events(1.0, 8)) for _ in range(jobs)] + [(0.5, events(0.5, 4))], 1e-6)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parties", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--lr-rows", type=int, default=10_000)
    parser.add_argument("--lr-features", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every job; the first warms up")
    args = parser.parse_args()
    runs: list[Any] = run_parties(_jobs, args.parties, (args.rows, args.columns, args.lr_rows, args.lr_features,
                                                       args.repeats), transport="grpc", timeout=3600)
    per_round = len(runs[0]) // args.repeats
    kept = [party[per_round:] if args.repeats > 1 else party for party in runs]

    def best(job: str, dp: str, key: str) -> float:
        """The busiest party's figure, best over the measured rounds."""
        return min(max(party[i][key] for party in kept) for i in range(len(kept[0]))
                   if kept[0][i]["job"] == job and kept[0][i]["dp"] == dp)

    print(f"\n{args.parties} parties, gRPC exchange, best of {max(1, args.repeats - 1)} after a warm-up "
          "(the busiest party); dp at epsilon 1 (gaussian: delta 1e-6)\n")
    print(f"{'job':36s} {'':9s} {'seconds':>9s} {'MB/party':>9s} {'rounds':>7s}")
    rows = [(f"{kind}, {args.rows} x {args.columns}", lambda dp, key, kind=kind: best(f"{kind}:", dp, key))
            for kind in STATISTICS]
    lr = "model.logistic_regression"
    rows.append((f"logistic epoch, {args.lr_rows} x {args.lr_features}",
                 lambda dp, key: (best(f"{lr}:3", dp, key) - best(f"{lr}:1", dp, key)) / 2))
    rows.append(("logistic job, 1 epoch", lambda dp, key: best(f"{lr}:1", dp, key)))
    for name, figure in rows:
        for dp in VARIANTS:
            print(f"{name if dp == 'exact' else '':36s} {dp:9s} {figure(dp, 'seconds'):9.3f} "
                  f"{figure(dp, 'bytes') / 1e6:9.2f} {int(figure(dp, 'rounds')):7d}")
        for dp in VARIANTS[1:]:
            print(f"{'':36s} {dp[:3] + '/exact':9s} {figure(dp, 'seconds') / figure('exact', 'seconds'):8.2f}x "
                  f"{figure(dp, 'bytes') / figure('exact', 'bytes'):8.2f}x")
    for jobs in (10, 100, 1000):
        print(f"accountant: a dataset with {jobs} charged jobs composed in {_accountant(jobs) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
