"""Private set intersection benchmark: 2 parties (one process each, CrypTen's
communicator over mpcgate's mutual-TLS gRPC exchange), 100k x 100k and 1M x 1M
keys with 50% overlap, beside a plaintext hash join of the same keys in the same
run. Prints seconds, MB sent per party and keys blinded per second.

Usage: .venv/bin/python benchmarks/psi.py [--sizes 100000 1000000] [--cores N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from gateway.exchange.local_parties import run_parties


def key_sets(size: int) -> list[list[str]]:
    """Two parties' keys, half of them common, each in its own order."""
    rng = np.random.default_rng(size)
    ids = rng.permutation(size * 3 // 2)
    first, second = ids[:size], ids[size // 2 : size // 2 + size]
    return [[f"customer-{i:010d}" for i in rng.permutation(first)], [f"customer-{i:010d}" for i in rng.permutation(second)]]


def _party(rank: int, world: int, args: tuple) -> dict[str, Any]:
    import crypten.communicator as comm

    from mpc.programs.intersection.protocol import intersect

    size, cores = args
    keys = key_sets(size)[rank]
    communicator = comm.get()
    communicator.reset_communication_stats()
    started = time.perf_counter()
    found = intersect(rank, world, keys, b"benchmark", cores=cores)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": communicator.get_communication_stats()["wire_bytes_sent"], "size": found.size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cores", type=int, default=None, help="blinding processes per party (default: all cores)")
    args = parser.parse_args()
    print("\nECDH-PSI (X25519), 2 parties over the gRPC exchange, 50% overlap\n")
    header = f"{'keys per party':>15s} {'s PSI':>8s} {'MB/party':>9s} {'s plain join':>13s} {'x plain':>8s} {'common':>9s}"
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        sets = key_sets(size)
        started = time.perf_counter()
        other = set(sets[1])
        plain = [k for k in sets[0] if k in other]
        plain_seconds = time.perf_counter() - started
        outs = run_parties(_party, 2, (size, args.cores), timeout=3600, transport="grpc")
        seconds = max(o["seconds"] for o in outs)
        assert all(o["size"] == len(plain) for o in outs), (outs, len(plain))
        mb = max(o["bytes"] for o in outs) / 1e6
        print(f"{size:15,d} {seconds:8.1f} {mb:9.1f} {plain_seconds:13.3f} {seconds / plain_seconds:8.0f} {len(plain):9,d}",
              flush=True)


if __name__ == "__main__":
    main()
