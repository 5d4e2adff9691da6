"""Evaluation benchmark: model.evaluate's risk metrics (KS, AUC, Gini, Brier, the
lift table by decile; mpc/programs/models/evaluation.py) under MPC, 2 parties over
mpcgate's mutual-TLS gRPC exchange with the TTP dealer: the data owner holds the
rows and labels, the model owner a logistic model (an ONNX asset).

In the same run, as baselines: model.predict on the same rows (applying the model,
which evaluate also does: the difference is what the metrics cost), and numpy /
scikit-learn computing the same metrics in plaintext. Prints seconds, MB sent per
party and rounds per job, the metrics' own share of each, and the accuracy of
AUC and KS against the exact values.

Usage: .venv/bin/python benchmarks/evaluation.py [--rows 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

import numpy as np
from measured import measured

from gateway.exchange.local_parties import run_parties

FEATURES = 8


def dataset(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Credit-shaped: standardized features, a 5% event rate from a logistic model."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, FEATURES))
    w = rng.normal(size=FEATURES) / np.sqrt(FEATURES)
    logit = x @ w - 3.2
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return x, y, w, -3.2


def _model(w: np.ndarray, b: float) -> dict[str, Any]:
    import mpc.runtime

    import torch

    from mpc.programs.models import assets

    net = torch.nn.Sequential(torch.nn.Linear(len(w), 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w[None, :]))
        net[0].bias.fill_(b)
    f = io.BytesIO()
    mpc.runtime.compat.export_onnx(f, net.eval(), torch.zeros(1, len(w)))
    onnx = f.getvalue()
    return {"kind": "asset", "onnx": onnx,
            "architecture": {"input_shape": [len(w)], "output": "sigmoid", "outputs": assets.inspect(onnx, [len(w)], "sigmoid")}}


def _party(rank: int, world: int, args: tuple) -> dict[str, Any]:
    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    kind, rows = args
    x, y, w, b = dataset(rows)
    names = [f"x{j}" for j in range(FEATURES)]
    layout = [PartyLayout(0, "bank", [*names, "y"] if kind == "model.evaluate" else names, -1), PartyLayout(1, "owner", [], -1)]
    table = (np.column_stack([x, y]) if kind == "model.evaluate" else x) if rank == 0 else np.zeros((0, 0))
    ctx = JobContext(kind, "horizontal", rank, world, layout, [0],
                     parse(kind, {"label": "y"} if kind == "model.evaluate" else {}), table,
                     rules=ReleaseRules(min_group_size=5), model=_model(w, b) if rank == 1 else None)
    result, out = measured(lambda: program(kind)(ctx))
    if result and kind == "model.evaluate":
        out["auc"], out["ks"] = float(result["auc"].values[0]), float(result["ks"].values[0])
    return out


def _plaintext(rows: int) -> dict[str, float]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    x, y, w, b = dataset(rows)
    started = time.perf_counter()
    logit = x @ w + b
    p = 1 / (1 + np.exp(-logit))
    auc = roc_auc_score(y, logit)
    order = np.argsort(-logit)
    gap = np.cumsum(y[order]) / y.sum() - np.cumsum(1 - y[order]) / (1 - y).sum()
    ks = float(np.abs(gap).max())
    brier_score_loss(y, p)
    deciles = np.array_split(order, 10)
    [(y[d].sum(), p[d].mean()) for d in deciles]
    return {"seconds": time.perf_counter() - started, "auc": float(auc), "ks": ks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,10000,50000")
    args = parser.parse_args()
    print("\nmodel.evaluate (risk metrics) vs model.predict and plaintext, 2 parties, gRPC/TTP\n")
    header = (f"{'rows':>7s} {'job':9s} {'s':>7s} {'MB/party':>9s} {'rounds':>7s}   "
              f"{'metrics: +s':>11s} {'+MB':>7s} {'+rounds':>8s} {'x plain':>8s}  AUC / KS error")
    print(header)
    print("-" * len(header))
    for rows in (int(r) for r in args.rows.split(",")):
        plain = _plaintext(rows)
        runs = {kind: run_parties(_party, 2, (kind, rows), timeout=3600, transport="grpc", provider="TTP")
                for kind in ("model.predict", "model.evaluate")}
        cost = {kind: {key: max(o[key] for o in outs) for key in ("seconds", "bytes", "rounds")} for kind, outs in runs.items()}
        for kind in ("model.predict", "model.evaluate"):
            c = cost[kind]
            line = f"{rows:7d} {kind.split('.')[1]:9s} {c['seconds']:7.2f} {c['bytes'] / 1e6:9.1f} {c['rounds']:7d}"
            if kind == "model.evaluate":
                extra = {key: c[key] - cost["model.predict"][key] for key in c}
                result = runs[kind][0]
                line += (f"   {extra['seconds']:11.2f} {extra['bytes'] / 1e6:7.1f} {extra['rounds']:8d} "
                         f"{c['seconds'] / plain['seconds']:8.0f}  {abs(result['auc'] - plain['auc']):.4f} / "
                         f"{abs(result['ks'] - plain['ks']):.4f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
