"""Missing cells and categorical columns: what handling them costs under MPC,
3 parties over mpcgate's mutual-TLS gRPC exchange with the TTP dealer.

- stats.describe on 4 columns with a fifth of their cells missing, per choice of
  the `missing` parameter (drop, mean, median, indicator), beside the same job on
  complete columns: the difference is what the handling costs (the pooled mean
  takes a few rounds, the median a bisection of 32 steps).
- stats.crosstab of two categorical columns (12 and 5 categories): horizontal
  (each party's counts added) and vertical (the two columns at different owners:
  a product of one-hot columns under MPC), beside numpy counting the same table.

Prints seconds, MB sent per party and rounds per job, and the ratio to plaintext.

Usage: .venv/bin/python benchmarks/columns.py [--rows 10000,100000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from measured import measured

from gateway.exchange.local_parties import run_parties

WORLD = 3
COLUMNS = ["a", "b", "c", "d"]
LEVELS = (12, 5)


def _numeric(rank: int, rows: int, gaps: bool) -> np.ndarray:
    rng = np.random.default_rng(rank)
    table = rng.normal(100, 20, (rows, len(COLUMNS)))
    if gaps:
        table[rng.random(table.shape) < 0.2] = np.nan
    return table


def _categorical(rank: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(10 + rank)
    return np.column_stack([rng.integers(0, k, rows) for k in LEVELS]).astype(np.float64)


def _party(rank: int, world: int, args: tuple) -> dict[str, Any]:
    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules, Vocabulary
    from mpc.catalogue.kinds import parse
    from mpc.programs import run

    job, rows = args
    vocabularies = {"u": Vocabulary(tuple(f"u{i:02d}" for i in range(LEVELS[0]))),
                    "v": Vocabulary(tuple(f"v{i}" for i in range(LEVELS[1])))}
    keys = None
    categories: dict[str, Vocabulary] = {}
    if job.startswith("crosstab"):
        kind, parameters = "stats.crosstab", {}
        codes = _categorical(0, rows)
        if job == "crosstab vertical":
            names = [["u"], ["v"], []]
            table = codes[:, [rank]] if rank < 2 else np.zeros((0, 0))
            keys = np.array([f"k{i}" for i in range(rows)], dtype=object) if rank < 2 else None
            categories = {n: vocabularies[n] for n in names[rank]}
        else:
            names = [["u", "v"]] * world
            table, categories = _categorical(rank, rows), vocabularies
    else:
        kind, names = "stats.describe", [COLUMNS] * world
        choice = job.split()[-1]
        parameters = {} if choice == "complete" else {"missing": choice}
        table = _numeric(rank, rows, gaps=choice != "complete")
    ctx = JobContext(kind, "vertical" if job.endswith("vertical") else "horizontal", rank, world,
                     [PartyLayout(r, f"party{r}", names[r], -1) for r in range(world)], [0],
                     parse(kind, parameters), table, keys, categories=categories,
                     rules=ReleaseRules(min_group_size=5))
    _, cost = measured(lambda: run(ctx))
    return cost


def _plaintext(job: str, rows: int) -> float:
    started = time.perf_counter()
    if job.startswith("crosstab"):
        codes = np.vstack([_categorical(r, rows) for r in range(WORLD)]) if "horizontal" in job else _categorical(0, rows)
        np.add.at(np.zeros(LEVELS), (codes[:, 0].astype(int), codes[:, 1].astype(int)), 1)
    else:
        table = np.vstack([_numeric(r, rows, gaps=not job.endswith("complete")) for r in range(WORLD)])
        choice = job.split()[-1]
        if choice == "drop":
            table = table[~np.isnan(table).any(axis=1)]
        elif choice != "complete":
            fill = np.nanmedian(table, axis=0) if choice == "median" else np.nanmean(table, axis=0)
            table = np.where(np.isnan(table), fill, table)
        table.mean(axis=0), table.var(axis=0, ddof=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000", help="rows per party")
    args = parser.parse_args()
    jobs = ["describe complete", "describe drop", "describe mean", "describe median", "describe indicator",
            "crosstab horizontal", "crosstab vertical"]
    print(f"\nmissing cells and categorical columns, {WORLD} parties, gRPC/TTP\n")
    header = f"{'rows/party':>10s} {'job':20s} {'s':>7s} {'MB/party':>9s} {'rounds':>7s} {'x plain':>9s}"
    print(header)
    print("-" * len(header))
    for rows in (int(r) for r in args.rows.split(",")):
        for job in jobs:
            outs = run_parties(_party, WORLD, (job, rows), timeout=3600, transport="grpc", provider="TTP")
            cost = {key: max(o[key] for o in outs) for key in ("seconds", "bytes", "rounds")}
            plain = _plaintext(job, rows)
            print(f"{rows:10d} {job:20s} {cost['seconds']:7.2f} {cost['bytes'] / 1e6:9.2f} {cost['rounds']:7d} "
                  f"{cost['seconds'] / plain:9.0f}", flush=True)


if __name__ == "__main__":
    main()
