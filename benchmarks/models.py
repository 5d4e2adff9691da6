"""Model benchmark: logistic and linear regression trained under MPC (one process
per party, CrypTen over mpcgate's mutual-TLS gRPC exchange with the TTP dealer,
and over CrypTen's own gloo transport with TFP, in the same run) beside
scikit-learn on the pooled plaintext.

- 2 parties, vertical, 100k rows x (10 + 20) features, the label at party 0;
- 3 parties, horizontal, 50k rows each x 30 features.

Prints seconds (total and per epoch), MB sent per party, rounds, the ratio to
scikit-learn, and accuracy / AUC (held-out rows) or R^2 beside scikit-learn's;
then, over gRPC with the dealer, the cost of the release check (each row's
leverage bounded under MPC, models/influence.py) as a ratio to the same job
without it.

Usage: .venv/bin/python benchmarks/models.py [--scale 1.0] [--epochs 10] [--model both|logistic|linear]
       [--release-check-only]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from measured import measured

from gateway.exchange.local_parties import run_parties

SEED = 7


def dataset(rows: int, d: int, rank: int, world: int, vertical: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same pooled data for every party and for the plaintext reference."""
    rng = np.random.default_rng(SEED)
    total = rows if vertical else rows * world
    x = rng.normal(size=(total, d)) * rng.uniform(0.5, 3, d) + rng.uniform(-5, 5, d)
    true = rng.normal(size=d) / np.sqrt(d)
    logits = ((x - x.mean(0)) / x.std(0)) @ true * 2
    y = (rng.random(total) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return x, y


def _party(rank: int, world: int, args: tuple) -> dict[str, Any]:
    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    kind, rows, widths, vertical, epochs, bound = args
    d = sum(widths) if vertical else widths[0]
    x, y = dataset(rows, d, rank, world, vertical)
    if kind == "model.linear_regression":
        y = x @ np.linspace(-1, 1, d) + np.random.default_rng(1).normal(size=len(y))
    if vertical:
        start = sum(widths[:rank])
        table = x[:, start : start + widths[rank]]
        names = [[f"x{j}" for j in range(sum(widths[:r]), sum(widths[: r + 1]))] for r in range(world)]
        if rank == 0:
            table = np.column_stack([table, y])
        names[0] = [*names[0], "y"]
        keys = np.array([f"k{i}" for i in range(rows)])
    else:
        table = np.column_stack([x, y])[rank * rows : (rank + 1) * rows]
        names = [[f"x{j}" for j in range(d)] + ["y"]] * world
        keys = None
    ctx = JobContext(kind, "vertical" if vertical else "horizontal", rank, world,
                     [PartyLayout(r, f"party{r}", names[r], -1) for r in range(world)], [0],
                     parse(kind, {"label": "y", "alpha": 1.0} | ({"epochs": epochs, "tolerance": 0.0}
                                                                 if "logistic" in kind else {})), table, keys,
                     rules=ReleaseRules(max_leverage=bound))
    result, out = measured(lambda: program(kind)(ctx))
    if result:
        out["result"] = {k: np.asarray(v.values) for k, v in result.items()}
    return out


def _reference(kind: str, rows: int, widths: list[int], world: int, vertical: bool) -> dict[str, float]:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import roc_auc_score

    d = sum(widths) if vertical else widths[0]
    x, y = dataset(rows, d, 0, world, vertical)
    started = time.perf_counter()
    if kind == "model.linear_regression":
        y = x @ np.linspace(-1, 1, d) + np.random.default_rng(1).normal(size=len(y))
        model = LinearRegression().fit(x, y)
        return {"seconds": time.perf_counter() - started, "r2": model.score(x, y)}
    model = LogisticRegression(max_iter=1000).fit(x - x.mean(0), y)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "accuracy": model.score(x - x.mean(0), y),
            "auc": roc_auc_score(y, model.decision_function(x - x.mean(0)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows (1.0: the sizes above)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model", choices=["both", "logistic", "linear"], default="both")
    parser.add_argument("--release-check-only", action="store_true", help="only the release check's cost")
    args = parser.parse_args()
    if args.release_check_only:
        _release_check(args)
        return
    settings = [
        ("2 parties vertical", 2, int(100_000 * args.scale), [10, 20], True),
        ("3 parties horizontal", 3, int(50_000 * args.scale), [30], False),
    ]
    print(f"\nmodels under MPC vs scikit-learn (pooled plaintext), {args.epochs} epochs for logistic regression\n")
    header = (f"{'setting':22s} {'model':9s} {'transport':12s} {'s total':>8s} {'s/epoch':>8s} {'MB/party':>9s} "
              f"{'rounds':>7s} {'x sklearn':>9s}  quality (MPC vs sklearn)")
    print(header)
    print("-" * len(header))
    for name, world, rows, widths, vertical in settings:
        for kind in [f"model.{m}_regression" for m in ("logistic", "linear") if args.model in ("both", m)]:
            reference = _reference(kind, rows, widths, world, vertical)
            for transport, provider in (("grpc", "TTP"), ("gloo", "TFP")):
                outs = run_parties(_party, world, (kind, rows, widths, vertical, args.epochs, 1.0), timeout=3600,
                                   transport=transport, provider=provider)
                seconds = max(o["seconds"] for o in outs)
                # CrypTen's gloo counters stay off; the gRPC exchange counts real serialized bytes
                mb = f"{max(o['bytes'] for o in outs) / 1e6:9.1f}" if transport == "grpc" else f"{'n/a':>9s}"
                rounds = f"{max(o['rounds'] for o in outs):7d}" if transport == "grpc" else f"{'n/a':>7s}"
                result = outs[0]["result"]
                if kind == "model.logistic_regression":
                    epochs = len(result["loss"])
                    quality = (f"acc {result['accuracy'][0]:.4f} vs {reference['accuracy']:.4f}, "
                               f"AUC {result['auc'][0]:.4f} vs {reference['auc']:.4f} (MPC on held-out rows)")
                else:
                    epochs = 1
                    quality = f"R2 {result['r2'][0]:.5f} vs {reference['r2']:.5f}"
                label = "logistic" if "logistic" in kind else "linear"
                print(f"{name:22s} {label:9s} {transport + '/' + provider:12s} {seconds:8.1f} {seconds / epochs:8.2f} "
                      f"{mb} {rounds} {seconds / reference['seconds']:9.0f}  {quality}", flush=True)
    _release_check(args)


def _release_check(args: argparse.Namespace) -> None:
    """The leverage bound's cost on each setting's logistic regression (gRPC, TTP)."""
    print("\nthe release check (max_leverage 0.9) against the same job without it, gRPC/TTP\n")
    header = f"{'setting':22s} {'model':9s} {'s without':>10s} {'s with':>8s} {'ratio':>6s} {'+MB/party':>10s} {'+rounds':>8s}"
    print(header)
    print("-" * len(header))
    for name, world, rows, widths, vertical in (("2 parties vertical", 2, int(100_000 * args.scale), [10, 20], True),):
        kind = "model.logistic_regression"
        runs = [run_parties(_party, world, (kind, rows, widths, vertical, args.epochs, bound), timeout=3600,
                            transport="grpc", provider="TTP") for bound in (1.0, 0.9)]
        (s0, s1), (b0, b1), (r0, r1) = ([max(o[key] for o in outs) for outs in runs] for key in ("seconds", "bytes", "rounds"))
        print(f"{name:22s} {'logistic':9s} {s0:10.2f} {s1:8.2f} {s1 / s0:6.3f} {(b1 - b0) / 1e6:10.1f} {r1 - r0:8d}",
              flush=True)


if __name__ == "__main__":
    main()
