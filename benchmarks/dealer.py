"""Dealer benchmark: the transport benchmark's workloads with Beaver triples from
the TTP dealer (its own process, mutual TLS) vs CrypTen's TFP provider, both over
mpcgate's gRPC exchange, in one run. Prints the wall-time ratio TTP/TFP and the
bytes each party and the dealer move.

Usage: .venv/bin/python benchmarks/dealer.py [--parties 2] [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np
from transport import FULL, QUICK, _best, _repeat

from gateway.exchange import local_parties as parties
from gateway.exchange.local_parties import DEALER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parties", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    described = QUICK if args.quick else FULL
    plan = [(name, p) for name, p, _ in described]
    measured = {}
    for provider in ("TFP", "TTP"):
        results = parties.run_parties(_repeat, args.parties, (plan, args.repeats), transport="grpc",
                                      provider=provider, timeout=1800)
        measured[provider] = [[_best(runs) for runs in by_rank] for by_rank in zip(*results)]
    print(f"\nBeaver triples from the TTP dealer vs TFP, {args.parties} parties over the gRPC exchange (mTLS)\n")
    header = (f"{'workload':42s} {'TFP s':>7s} {'TTP s':>7s} {'ratio':>6s} {'MB party-party':>15s} "
              f"{'MB p0->dealer':>14s} {'MB dealer->p0':>14s} {'MB dealer->others':>18s}")
    print(header)
    print("-" * len(header))
    for (name, _, label), tfp, ttp in zip(described, measured["TFP"], measured["TTP"]):
        tfp_s, ttp_s = max(r["seconds"] for r in tfp), max(r["seconds"] for r in ttp)
        between = np.mean([sum(n for p, n in r["stats"]["sent_to"].items() if p != DEALER) for r in ttp]) / 1e6
        to_dealer = ttp[0]["stats"]["sent_to"].get(DEALER, 0) / 1e6
        from_dealer = ttp[0]["stats"]["received_from"].get(DEALER, 0) / 1e6
        to_others = sum(r["stats"]["received_from"].get(DEALER, 0) for r in ttp[1:]) / 1e6
        print(f"{label:42s} {tfp_s:7.3f} {ttp_s:7.3f} {ttp_s / tfp_s:6.2f} {between:15.2f} "
              f"{to_dealer:14.4f} {from_dealer:14.2f} {to_others:18.2f}")


if __name__ == "__main__":
    main()
