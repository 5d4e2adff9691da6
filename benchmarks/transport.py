"""Transport benchmark: the same CrypTen workloads over CrypTen's gloo transport and
over mpcgate's gRPC exchange with mutual TLS, in one run, one OS process per party:
with mpcgate's communicator ("gRPC"), and with CrypTen's own DistributedCommunicator
on the exchange's torch.distributed backend ("dist").

Prints each workload's wall-time ratios to gloo, the bytes and rounds per party,
and the exchange's raw throughput beside a plain TCP socket on loopback.

Usage: .venv/bin/python benchmarks/transport.py [--parties 2] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time
from typing import Any

import numpy as np
import torch

from gateway.exchange import local_parties as parties
from mpc.programs import workloads
from mpc.programs.workloads import Params

FULL = [
    ("multiply", Params(size=1_000_000), "1M-element multiplication"),
    ("compare", Params(size=100_000), "100k comparisons"),
    ("matmul", Params(size=256), "256x256 matmul"),
    ("logistic_epoch", Params(rows=10_000, features=20, batch=500), "logistic regression, 1 epoch, 10k x 20"),
]
QUICK = [
    ("multiply", Params(size=100_000), "100k-element multiplication"),
    ("compare", Params(size=10_000), "10k comparisons"),
    ("matmul", Params(size=64), "64x64 matmul"),
    ("logistic_epoch", Params(rows=1_000, features=20, batch=500), "logistic regression, 1 epoch, 1k x 20"),
]
RAW_BYTES = 256 * 1024 * 1024
RAW_TENSOR = 8 * 1024 * 1024
PING_BYTES, PINGS = 1024, 500
BULK_BYTES, BULKS = 16 * 1024 * 1024, 16


def _ping_and_bulk(rank: int, world_size: int, args: Any) -> dict[str, float]:
    """Ranks 0 and 1 over CrypTen's communicator (gloo or the exchange): the median
    1 KB round trip, and the throughput of 16 MB tensors sent one after another."""
    import crypten.communicator as comm

    c, peer = comm.get(), 1 - rank
    small = torch.zeros(PING_BYTES // 8, dtype=torch.long)
    trips = []
    for _ in range(PINGS):
        started = time.perf_counter()
        if rank == 0:
            c.send(small, peer)
            c.recv(small, peer)
        else:
            c.recv(small, peer)
            c.send(small, peer)
        trips.append(time.perf_counter() - started)
    big = torch.ones(BULK_BYTES // 8, dtype=torch.long)
    c.barrier()
    started = time.perf_counter()
    for _ in range(BULKS):
        c.send(big, peer) if rank == 0 else c.recv(big, peer)
    c.send(small, peer) if rank == 1 else c.recv(small, peer)  # the last byte has arrived
    elapsed = time.perf_counter() - started
    return {"rtt_ms": float(np.median(trips)) * 1e3, "bulk_mbps": BULK_BYTES * BULKS / elapsed / 1e6}


def _repeat(rank: int, world_size: int, args: tuple[list[tuple[str, Params]], int]) -> list[list[dict[str, Any]]]:
    """Every workload `repeats` times in one session; the first run warms up."""
    plan, repeats = args
    return [[workloads.WORKLOADS[name](rank, world_size, p) for _ in range(repeats)] for name, p in plan]


def _raw_exchange(rank: int, world_size: int, args: Any) -> float:
    """Rank 0 streams RAW_BYTES to rank 1 over the exchange; returns MB/s seen by rank 1."""
    import crypten.communicator as comm

    session = comm.get().session
    payload = np.random.default_rng(0).integers(-(2**62), 2**62, RAW_TENSOR // 8, dtype=np.int64)
    count = RAW_BYTES // RAW_TENSOR
    if rank == 0:
        for _ in range(count):
            session.send("party1", "raw", payload)
        session.recv("party1", "raw")
        return 0.0
    started = time.perf_counter()
    for _ in range(count):
        session.recv("party0", "raw")
    elapsed = time.perf_counter() - started
    session.send("party0", "raw", np.zeros(1, dtype=np.int64))
    return RAW_BYTES / elapsed / 1e6


def _tcp_receiver(port_queue: mp.Queue, result: mp.Queue) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port_queue.put(server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            buffer = bytearray(RAW_TENSOR)
            view = memoryview(buffer)
            received, started = 0, time.perf_counter()
            while received < RAW_BYTES:
                n = conn.recv_into(view)
                if not n:
                    break
                received += n
            result.put(received / (time.perf_counter() - started) / 1e6)


def _raw_tcp() -> float:
    ctx = mp.get_context("spawn")
    ports, result = ctx.Queue(), ctx.Queue()
    receiver = ctx.Process(target=_tcp_receiver, args=(ports, result))
    receiver.start()
    payload = np.random.default_rng(0).integers(-(2**62), 2**62, RAW_TENSOR // 8, dtype=np.int64).tobytes()
    with socket.create_connection(("127.0.0.1", ports.get(timeout=30))) as conn:
        for _ in range(RAW_BYTES // RAW_TENSOR):
            conn.sendall(payload)
    mbps = result.get(timeout=120)
    receiver.join(10)
    return mbps


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    timed = runs[1:] if len(runs) > 1 else runs
    return min(timed, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parties", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per workload (the first is a warm-up)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (for a fast look)")
    args = parser.parse_args()
    plan_described = QUICK if args.quick else FULL
    plan = [(name, p) for name, p, _ in plan_described]

    measured = {}
    for transport in ("gloo", "grpc", "torch"):
        results = parties.run_parties(_repeat, args.parties, (plan, args.repeats), transport=transport, timeout=1800)
        measured[transport] = [[_best(runs) for runs in by_rank] for by_rank in zip(*results)]  # [workload][rank]

    print(f"\nCrypTen over gloo vs over mpcgate's gRPC exchange (mTLS), {args.parties} parties, "
          f"best of {max(1, args.repeats - 1)} after a warm-up\n")
    header = (f"{'workload':42s} {'gloo s':>8s} {'gRPC s':>8s} {'ratio':>6s} {'dist s':>8s} {'ratio':>6s} "
              f"{'MB/party':>9s} {'rounds':>7s}")
    print(header)
    print("-" * len(header))
    for (name, _, label), *runs in zip(plan_described, measured["gloo"], measured["grpc"], measured["torch"]):
        gloo_s, grpc_s, dist_s = (max(r["seconds"] for r in by_rank) for by_rank in runs)
        mb = np.mean([r["stats"]["wire_bytes_sent"] for r in runs[1]]) / 1e6
        rounds = int(np.mean([r["stats"]["exchanges"] for r in runs[1]]))
        print(f"{label:42s} {gloo_s:8.3f} {grpc_s:8.3f} {grpc_s / gloo_s:6.2f} {dist_s:8.3f} {dist_s / gloo_s:6.2f} "
              f"{mb:9.2f} {rounds:7d}")

    probes = {t: parties.run_parties(_ping_and_bulk, 2, transport=t, timeout=600)[0] for t in ("gloo", "grpc", "torch")}
    print(f"\n{PING_BYTES} B round trip (median of {PINGS}) and {BULK_BYTES >> 20} MiB tensors back to back:")
    print(f"  {'':8s} {'RTT ms':>8s} {'MB/s':>8s}")
    for t, probe in probes.items():
        print(f"  {t:8s} {probe['rtt_ms']:8.3f} {probe['bulk_mbps']:8.0f}")
    for t, name in (("grpc", "exchange"), ("torch", "dist over the exchange")):
        print(f"  {name}/gloo: round trip {probes[t]['rtt_ms'] / probes['gloo']['rtt_ms']:.2f}x, "
              f"throughput {probes[t]['bulk_mbps'] / probes['gloo']['bulk_mbps']:.2f}x")

    raw = parties.run_parties(_raw_exchange, 2, transport="grpc", timeout=600)[1]
    tcp = _raw_tcp()
    print(f"\nraw throughput, {RAW_BYTES >> 20} MiB in {RAW_TENSOR >> 20} MiB tensors, one direction:")
    print(f"  exchange (gRPC + mTLS): {raw:8.0f} MB/s")
    print(f"  plain TCP socket:       {tcp:8.0f} MB/s   (exchange/TCP = {raw / tcp:.2f})")


if __name__ == "__main__":
    main()
