"""Optimizer benchmark: why model.logistic_regression trains by Böhning–Newton
steps rather than mini-batch SGD under fixed point. Both run under MPC (CrypTen,
2 parties, the same secret-shared standardized rows); after each epoch the
benchmark decrypts the weights (only here) and scores held-out rows in plaintext,
beside scikit-learn's LogisticRegression on the same rows.

- plain mini-batch SGD (batch 256, CrypTen's own sigmoid) at three learning rates;
- the production program (fixed-Hessian Newton, no learning rate), run for each
  epoch budget.

Prints the held-out AUC after 1, 2, 5, 10 and 20 epochs and seconds per epoch.

Usage: .venv/bin/python benchmarks/optimizers.py [--rows 20000] [--features 30]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from gateway.exchange.local_parties import run_parties

CHECKPOINTS = (1, 2, 5, 10, 20)
RATES = (0.03, 0.3, 3.0)
BATCH = 256
ALPHA = 1.0


def dataset(rows: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features of mixed scales and offsets, labels from a logistic
    model; the held-out mask (20%)."""
    rng = np.random.default_rng(11)
    base = rng.normal(size=(rows, d))
    x = (base + 0.6 * base[:, :1]) * rng.uniform(0.5, 3, d) + rng.uniform(-5, 5, d)
    logits = ((x - x.mean(0)) / x.std(0)) @ (rng.normal(size=d) / np.sqrt(d)) * 2 + 0.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return x, y, rng.random(rows) < 0.2


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def _sgd(rank: int, world: int, args: tuple) -> dict[str, Any]:
    """Mini-batch SGD on vertically split, standardized rows (labels at party 0)."""
    import crypten
    import torch

    rows, d, rate = args
    x, y, test = dataset(rows, d)
    train = x[~test]
    u = (x - train.mean(0)) / train.std(0)
    split = np.array_split(np.arange(d), world)
    parts = [crypten.cryptensor(torch.from_numpy(u[~test][:, c] if r == rank else np.zeros(((~test).sum(), len(c)))),
                                src=r) for r, c in enumerate(split)]
    design = crypten.cat(parts, dim=1)
    labels = crypten.cryptensor(torch.from_numpy(y[~test] if rank == 0 else np.zeros((~test).sum())), src=0)
    w = crypten.cryptensor(torch.zeros(d))
    b = crypten.cryptensor(torch.zeros(1))
    n = int((~test).sum())
    aucs, seconds = {}, 0.0
    for epoch in range(1, max(CHECKPOINTS) + 1):
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            xb, yb = design[start : start + BATCH], labels[start : start + BATCH]
            residual = (xb.matmul(w) + b).sigmoid() - yb
            gradient = xb.t().matmul(residual).div(len(residual)) + w.mul(ALPHA / n)
            w = w - gradient.mul(rate)
            b = b - residual.mean().mul(rate)
        seconds += time.perf_counter() - started
        if epoch in CHECKPOINTS:
            weights, bias = w.get_plain_text().double().numpy(), float(b.get_plain_text().item())
            scores = u[test] @ weights + bias
            aucs[epoch] = _auc(y[test], scores) if np.all(np.isfinite(scores)) else float("nan")
    return {"aucs": aucs, "seconds": seconds / max(CHECKPOINTS)}


def _newton(rank: int, world: int, args: tuple) -> dict[str, Any]:
    """The production program with `epochs` Böhning–Newton steps (no early stop)."""
    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    rows, d, epochs = args
    x, y, test = dataset(rows, d)
    split = np.array_split(np.arange(d), world)
    names = [[f"x{j}" for j in c] for c in split]
    names[0] = [*names[0], "y"]  # the label at party 0
    table = np.column_stack([x[:, split[0]], y]) if rank == 0 else x[:, split[rank]]
    ctx = JobContext("model.logistic_regression", "vertical", rank, world,
                     [PartyLayout(r, f"party{r}", names[r], -1) for r in range(world)], [0],
                     parse("model.logistic_regression",
                           {"label": "y", "epochs": epochs, "tolerance": 0.0, "alpha": ALPHA, "holdout": 0.0}), table,
                     np.array([f"k{i}" for i in range(rows)]))
    ctx = _only(ctx, ~test)
    started = time.perf_counter()
    result = program("model.logistic_regression")(ctx)
    seconds = time.perf_counter() - started
    if not result:
        return {"seconds": seconds}
    scores = x[test] @ result["coefficients"].values + float(result["intercept"].values[0])
    return {"seconds": seconds, "auc": _auc(y[test], scores)}


def _only(ctx: Any, rows: np.ndarray) -> Any:
    """The context on the training rows (held-out rows never enter MPC here)."""
    import dataclasses

    return dataclasses.replace(ctx, table=ctx.table[rows], keys=ctx.keys[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    x, y, test = dataset(args.rows, args.features)
    center = x[~test].mean(0)
    reference = LogisticRegression(C=1 / ALPHA, max_iter=5000).fit(x[~test] - center, y[~test])
    target = _auc(y[test], reference.decision_function(x[test] - center))
    print(f"\nlogistic regression under MPC, {args.rows} rows x {args.features} features, 2 parties (CrypTen, gloo/TFP);"
          f"\nheld-out AUC after each epoch budget; scikit-learn: {target:.4f}\n")
    header = f"{'optimizer':28s} " + " ".join(f"{f'{e} ep':>8s}" for e in CHECKPOINTS) + f" {'s/epoch':>8s}"
    print(header)
    print("-" * len(header))
    for rate in RATES:
        out = run_parties(_sgd, 2, (args.rows, args.features, rate), timeout=3600, transport="gloo", provider="TFP")[0]
        cells = " ".join(f"{out['aucs'][e]:8.4f}" for e in CHECKPOINTS)
        print(f"{f'SGD batch {BATCH}, lr {rate}':28s} {cells} {out['seconds']:8.2f}", flush=True)
    cells, per_epoch = [], []
    for epochs in CHECKPOINTS:
        out = run_parties(_newton, 2, (args.rows, args.features, epochs), timeout=3600, transport="gloo",
                          provider="TFP")[0]
        cells.append(f"{out['auc']:8.4f}")
        per_epoch.append(out["seconds"] / epochs)
    print(f"{'Böhning-Newton (mpcgate)':28s} {' '.join(cells)} {np.median(per_epoch):8.2f}")
    print("\n(Newton's column includes its one-time set-up: standardization and the Hessian bound's inverse.)")


if __name__ == "__main__":
    main()
