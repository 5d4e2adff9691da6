"""Weights of evidence benchmark: features.woe_iv (mpc/programs/features/woe.py)
under MPC, 2 parties over mpcgate's mutual-TLS gRPC exchange with the TTP dealer,
on a credit-shaped table split vertically: the label holder with `--own`
features, its partner with `--partner` features, 10 equal-frequency bins each.
With `--kind features.select`, the feature screen on the same table (IV >= 0.02,
|r| <= 0.7; `--max-vif 5`: then the VIF screen); with `--kind features.binning`, the binning with a risk team's
constraints (20 fine bins to at most 10, 5% each, monotone event rate: the
last column then gives the bins per column after merging; accuracy:
tests/mpc/test_features_binning.py); with `--kind model.scorecard`, the
scorecard on that binning (the last column: its held-out AUC; accuracy against
scikit-learn: tests/mpc/test_scorecard.py). (stats.stability runs woe_iv's
program: its cost is woe_iv's.)

In the same run, as the baseline: the same binning, counts, WOE and IV (and
screen) in numpy (plaintext). Prints seconds, MB sent per party and rounds, the
ratio to plaintext, per-cell figures (microseconds and bytes per row x feature)
and the largest IV error against the plaintext (select: how many columns' choice
differs from numpy's).

Usage: .venv/bin/python benchmarks/woe.py [--rows 10000,100000] [--own 10] [--partner 25] [--kind features.select]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from measured import measured

from gateway.exchange.local_parties import run_parties

BINS = 10


def dataset(rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of mixed shapes, a rare (4%) default driven by a few of them."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, features)) * rng.uniform(0.5, 3, features) + rng.uniform(-5, 5, features)
    x[:, ::3] = np.exp(x[:, ::3] / 4)  # skewed columns
    weights = np.where(rng.random(features) < 0.3, rng.normal(size=features), 0.0)
    logit = ((x - x.mean(axis=0)) / x.std(axis=0)) @ weights - 3.4
    return x, (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)


def _party(rank: int, world: int, args: tuple) -> dict[str, Any]:
    from mpc.catalogue.context import JobContext, PartyLayout, ReleaseRules
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    rows, own, partner, kind, max_vif = args
    x, y = dataset(rows, own + partner)
    names = [f"x{j}" for j in range(own + partner)]
    layout = [PartyLayout(0, "label holder", [*names[:own], "y"], rows), PartyLayout(1, "partner", names[own:], rows)]
    table = np.column_stack([x[:, :own], y]) if rank == 0 else x[:, own:]
    defaults = kind in ("features.binning", "model.scorecard")  # their own binning
    ctx = JobContext(kind, "vertical", rank, world, layout, [0, 1], parse(kind, {"label": "y", **({} if defaults else {"bins": BINS}), **({"max_vif": max_vif} if max_vif else {})}), table,
                     keys=np.array([f"c{i}" for i in range(rows)]), aligned=True,
                     rules=ReleaseRules(min_group_size=10))
    result, out = measured(lambda: program(kind)(ctx))
    if result:
        out["iv"] = result["iv" if "iv" in result else "selected"].values
        out["bins"] = [len(r.labels) for name, r in result.items() if name.startswith(("woe.", "points."))]
        out["auc"] = float(result["auc"].values[0]) if "auc" in result else float("nan")
    return out


def _plaintext(rows: int, features: int, k: int = 10) -> tuple[float, np.ndarray]:
    from mpc.programs.groups import merged

    x, y = dataset(rows, features)
    started = time.perf_counter()
    ivs = []
    for j in range(features):
        cuts = np.unique(np.quantile(x[:, j], np.linspace(0, 1, BINS + 1)[1:-1]))
        bins = np.searchsorted(cuts[cuts > x[:, j].min()], x[:, j], side="right")
        counts, events = np.bincount(bins), np.bincount(bins, weights=y)
        partition = [[b] for b in range(len(counts))]
        while True:  # the program's merge rule
            grouped = [(counts[g].sum(), events[g].sum()) for g in partition]
            small = np.array([e < k or c - e < k for c, e in grouped])
            if not small.any() or len(partition) == 1:
                break
            partition = merged(partition, small)
        counts, events = (np.array([v[i] for v in grouped], dtype=np.float64) for i in (0, 1))
        p_event, p_non = events / y.sum(), (counts - events) / (len(y) - y.sum())
        ivs.append(float(((p_non - p_event) * np.log(p_non / p_event)).sum()))
    return time.perf_counter() - started, np.array(ivs)


def _screen(rows: int, features: int, iv: np.ndarray, max_vif: float) -> tuple[float, np.ndarray]:
    """features.select's rule in numpy (IV >= 0.02, |r| <= 0.7, greedy by IV; then
    toad's drop_vif above `max_vif`, if set)."""
    x, _ = dataset(rows, features)
    started = time.perf_counter()
    r = np.corrcoef(x, rowvar=False)
    kept: list[int] = []
    for j in sorted(range(features), key=lambda j: (-iv[j], j)):
        if iv[j] >= 0.02 and all(abs(r[i, j]) <= 0.7 for i in kept):
            kept.append(j)
    while max_vif and len(kept) > 1:
        vif = np.diag(np.linalg.inv(r[np.ix_(kept, kept)]))
        if vif.max() <= max_vif:
            break
        kept.pop(int(np.argmax(vif)))
    chosen = np.zeros(features)
    chosen[kept] = 1
    return time.perf_counter() - started, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--own", type=int, default=10)
    parser.add_argument("--partner", type=int, default=25)
    parser.add_argument("--kind", default="features.woe_iv",
                        choices=["features.woe_iv", "features.select", "features.binning", "model.scorecard"])
    parser.add_argument("--max-vif", type=float, default=0.0, help="features.select: its max_vif (0: off)")
    args = parser.parse_args()
    features = args.own + args.partner
    bins = "20 bins merged" if args.kind in ("features.binning", "model.scorecard") else f"{BINS} bins"
    print(f"\n{args.kind} vs numpy, 2 parties (vertical: {args.own} + {args.partner} features, {bins}), gRPC/TTP\n")
    last = {"features.woe_iv": "IV error (largest)", "features.select": "choices unlike numpy",
            "model.scorecard": "held-out AUC"}.get(args.kind, "bins")
    header = (f"{'rows':>7s} {'s':>7s} {'MB/party':>9s} {'rounds':>7s} {'x plain':>8s} {'us/cell':>8s} "
              f"{'B/cell':>7s}  {last}")
    print(header)
    print("-" * len(header))
    for rows in (int(r) for r in args.rows.split(",")):
        plain_seconds, plain = _plaintext(rows, features)
        if args.kind == "features.select":
            screen_seconds, plain = _screen(rows, features, plain, args.max_vif)
            plain_seconds += screen_seconds
        if args.kind == "model.scorecard":  # numpy's binning and IV plus scikit-learn's fit on as many columns
            from sklearn.linear_model import LogisticRegression

            x, y = dataset(rows, features)
            started = time.perf_counter()
            LogisticRegression().fit((x - x.mean(axis=0)) / x.std(axis=0), y)
            plain_seconds += time.perf_counter() - started
        outs = run_parties(_party, 2, (rows, args.own, args.partner, args.kind, args.max_vif), timeout=7200, transport="grpc",
                           provider="TTP")
        cost = {key: max(o[key] for o in outs) for key in ("seconds", "bytes", "rounds")}
        cells = rows * features
        error = float(np.nanmax(np.abs(outs[0]["iv"] - plain)))
        shown = f"{error:.2e}"
        if args.kind == "features.select":
            shown = f"{int(np.sum(outs[0]['iv'] != plain))} of {features} ({int(plain.sum())} kept)"
        if args.kind == "features.binning":
            shown = f"{np.mean(outs[0]['bins']):.1f} per column (the label holder's own)"
        if args.kind == "model.scorecard":
            shown = f"{outs[0]['auc']:.4f} ({len(outs[0]['bins'])} of the label holder's columns in the card)"
        print(f"{rows:7d} {cost['seconds']:7.2f} {cost['bytes'] / 1e6:9.1f} {cost['rounds']:7d} "
              f"{cost['seconds'] / plain_seconds:8.0f} {cost['seconds'] / cells * 1e6:8.2f} "
              f"{cost['bytes'] / cells:7.1f}  {shown}", flush=True)


if __name__ == "__main__":
    main()
