"""Peer benchmark: the same workloads on mpcgate (CrypTen over its gRPC exchange with
mutual TLS; Beaver triples from the TTP dealer, and from CrypTen's TFP) and on
SecretFlow's SPU 0.9.5 (SEMI2K over FM64, its brpc link, one process per party on
loopback), workload by workload in one run. Prints mpcgate/SPU wall-time ratios and
bytes sent per party. Each timing includes revealing the result to every party;
inputs are secret-shared before the clock starts.

The statistics workload is the same on both: each of 3 parties holds 100k x 8 rows
and shares only its local aggregates (means of x and of x x^T); the engine derives
the pooled mean, variance and correlation. mpcgate runs its real program (public
frames, checks and all); SPU, the bare formula.

SPU pins its own jax and protobuf, so it lives in a separate virtual environment:
    python3.11 -m venv .venv-spu && .venv-spu/bin/pip install spu==0.9.5
Without it the benchmark says so and stops. SPU's bytes are what its process wrote to
sockets (/proc/self/io); mpcgate's are the exchange's own count.

Usage: .venv/bin/python benchmarks/peers.py [--quick] [--repeats 3] [--only statistics] [--spu-python .venv-spu/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FULL = {"multiply": {"size": 1_000_000}, "compare": {"size": 100_000}, "matmul": {"size": 256},
        "logistic_epoch": {"rows": 10_000, "features": 20, "batch": 500}, "statistics": {"rows": 100_000, "columns": 8}}
QUICK = {"multiply": {"size": 100_000}, "compare": {"size": 10_000}, "matmul": {"size": 64},
         "logistic_epoch": {"rows": 1_000, "features": 20, "batch": 500}, "statistics": {"rows": 10_000, "columns": 8}}
LEARNING_RATE = 0.5


def inputs(name: str, p: dict[str, int], world_size: int) -> list[np.ndarray]:
    """The workload's secret inputs (the same values for both engines)."""
    rng = np.random.default_rng(7)
    if name in ("multiply", "compare"):
        return [rng.uniform(-4, 4, p["size"]), rng.uniform(-4, 4, p["size"])]
    if name == "matmul":
        return [rng.uniform(-1, 1, (p["size"], p["size"])), rng.uniform(-1, 1, (p["size"], p["size"]))]
    if name == "logistic_epoch":
        x = rng.uniform(-1, 1, (p["rows"], p["features"]))
        return [x, (x @ rng.normal(size=(p["features"], 1)) > 0).astype(np.float64)]
    return [statistics_table(rank, p) for rank in range(world_size)]


def statistics_table(rank: int, p: dict[str, int]) -> np.ndarray:
    rng = np.random.default_rng(rank)
    base = rng.normal(size=(p["rows"], 1))
    return (base * rng.uniform(0.2, 1, p["columns"]) + rng.normal(size=(p["rows"], p["columns"]))) + rank


def world(name: str) -> int:
    return 3 if name == "statistics" else 2


# -- mpcgate ---------------------------------------------------------------------------

def _mpcgate_party(rank: int, world_size: int, args: tuple[str, dict[str, int], int]) -> list[dict[str, float]]:
    import crypten
    import crypten.communicator as comm
    import torch

    from mpc.programs import compare
    from mpc.programs.models.sigmoid import activations

    name, p, repeats = args
    session = comm.get().session
    values = inputs(name, p, world_size)
    runs = []
    for _ in range(repeats + 1):  # the first warms up
        if name == "statistics":
            runs.append(_mpcgate_statistics(rank, world_size, values[rank], session))
            continue
        a = crypten.cryptensor(torch.from_numpy(values[0]).float(), src=0)
        b = crypten.cryptensor(torch.from_numpy(values[1]).float(), src=world_size - 1)
        comm.get().barrier()
        sent, started = session.bytes_sent, time.perf_counter()
        if name == "logistic_epoch":
            w = crypten.cryptensor(torch.zeros(p["features"], 1))
            for begin in range(0, p["rows"], p["batch"]):
                xb, yb = a[begin:begin + p["batch"]], b[begin:begin + p["batch"]]
                w = w - xb.t().matmul(activations(xb.matmul(w))[0] - yb) * (LEARNING_RATE / p["batch"])
            out = w
        else:
            out = {"multiply": lambda: a * b, "compare": lambda: compare.less_than(a, b),
                   "matmul": lambda: a.matmul(b)}[name]()
        out.get_plain_text()
        runs.append({"seconds": time.perf_counter() - started, "bytes": session.bytes_sent - sent})
    return runs[1:]


def _mpcgate_statistics(rank: int, world_size: int, table: np.ndarray, session: Any) -> dict[str, float]:
    import crypten.communicator as comm

    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import run

    columns = [f"x{i}" for i in range(table.shape[1])]
    ctx = JobContext(kind="stats.summary", partitioning="horizontal", rank=rank, world_size=world_size,
                     layout=[PartyLayout(r, f"party{r}", columns, -1) for r in range(world_size)],
                     receivers=list(range(world_size)), parameters=parse("stats.summary", {}), table=table)
    comm.get().barrier()
    sent, started = session.bytes_sent, time.perf_counter()
    run(ctx)
    return {"seconds": time.perf_counter() - started, "bytes": session.bytes_sent - sent}


def run_mpcgate(name: str, p: dict[str, int], repeats: int, provider: str) -> dict[str, float]:
    from gateway.exchange import local_parties as parties

    results = parties.run_parties(_mpcgate_party, world(name), (name, p, repeats), transport="grpc",
                                  provider=provider, timeout=1800)
    return _summary(results)


def _summary(by_party: list[list[dict[str, float]]]) -> dict[str, float]:
    """The best repeat's slowest party, and the mean bytes a party sent."""
    seconds = min(max(runs[i]["seconds"] for runs in by_party) for i in range(len(by_party[0])))
    return {"seconds": seconds, "bytes": float(np.mean([runs[-1]["bytes"] for runs in by_party]))}


# -- SPU (runs under the SPU environment's python) ----------------------------------------

def _spu_function(name: str, p: dict[str, int], rows: int) -> Any:
    import jax
    import jax.numpy as jnp

    if name == "multiply":
        return lambda a, b: a * b
    if name == "compare":
        return lambda a, b: a < b
    if name == "matmul":
        return lambda a, b: a @ b
    if name == "logistic_epoch":
        def epoch(x: Any, y: Any) -> Any:
            w = jnp.zeros((p["features"], 1))
            for begin in range(0, p["rows"], p["batch"]):
                xb, yb = x[begin:begin + p["batch"]], y[begin:begin + p["batch"]]
                w = w - xb.T @ (jax.nn.sigmoid(xb @ w) - yb) * (LEARNING_RATE / p["batch"])
            return w
        return epoch

    def statistics(*aggregates: Any) -> Any:
        d = p["columns"]
        pooled = sum(aggregates)
        mean, second = pooled[:d], pooled[d:].reshape(d, d)
        cov = (second - jnp.outer(mean, mean)) * (rows / (rows - 1))
        inverse = jax.lax.rsqrt(jnp.diag(cov))
        return mean, jnp.diag(cov), cov * jnp.outer(inverse, inverse)
    return statistics


def _wrote() -> int:
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["wchar"])


def spu_party(rank: int, ports: list[int], name: str, p: dict[str, int], repeats: int) -> None:
    import spu
    import spu.libspu as libspu
    from spu.utils import frontend

    world_size = len(ports)
    desc = libspu.link.Desc()
    for r, port in enumerate(ports):
        desc.add_party(f"party{r}", f"127.0.0.1:{port}")
    desc.recv_timeout_ms = 600_000
    link = libspu.link.create_brpc(desc, rank)
    config = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.SEMI2K, field=libspu.FieldType.FM64)
    runtime, io = spu.Runtime(link, config), spu.Io(world_size, config)
    values = inputs(name, p, world_size)
    if name == "statistics":
        rows = p["rows"] * world_size
        values = [np.concatenate([t.sum(axis=0), (t.T @ t).ravel()]) / rows for t in values]
    else:
        rows = 0
    names = [f"in{i}" for i in range(len(values))]
    executable, _ = frontend.compile(frontend.Kind.JAX, _spu_function(name, p, rows), values, {}, names,
                                     [libspu.Visibility.VIS_SECRET] * len(values),
                                     lambda outs: [f"out{i}" for i in range(len(outs))])
    runs = []
    for _ in range(repeats + 1):
        # party 0 shares every input (SPU's colocated owners would do it themselves)
        if rank == 0:
            shares = [io.make_shares(v, libspu.Visibility.VIS_SECRET) for v in values]
            for r in range(1, world_size):
                link.send(r, pickle.dumps([(s[r].meta, s[r].share_chunks) for s in shares]))
            mine = [s[0] for s in shares]
        else:
            mine = [_share(meta, chunks) for meta, chunks in pickle.loads(link.recv(0))]
        for input_name, share in zip(names, mine):
            runtime.set_var(input_name, share)
        link.barrier()
        wrote, started = _wrote(), time.perf_counter()
        runtime.run(executable)
        for output in executable.output_names:  # reveal to every party
            share = runtime.get_var(output)
            others = [r for r in range(world_size) if r != rank]
            for r in others:  # (link.all_gather decodes what it gathers as text)
                link.send_async(r, pickle.dumps((share.meta, share.share_chunks)))
            gathered = {rank: share, **{r: _share(*pickle.loads(link.recv(r))) for r in others}}
            io.reconstruct([gathered[r] for r in range(world_size)])
        runs.append({"seconds": time.perf_counter() - started, "bytes": _wrote() - wrote})
    link.stop_link()
    print(json.dumps(runs[1:]))


def _share(meta: bytes, chunks: list[bytes]) -> Any:
    import spu.libspu as libspu

    share = libspu.Share()
    share.meta, share.share_chunks = meta, chunks
    return share


def run_spu(spu_python: Path, name: str, p: dict[str, int], repeats: int) -> dict[str, float]:
    ports = []
    for _ in range(world(name)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": "", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([str(spu_python), __file__, "--spu-party", str(rank), "--ports", json.dumps(ports),
                               "--workload", name, "--params", json.dumps(p), "--repeats", str(repeats)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for rank in range(len(ports))]
    outputs = [proc.communicate(timeout=1800) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode:
            raise RuntimeError(f"an SPU party failed:\n{err[-3000:]}")
    return _summary([json.loads(out.strip().splitlines()[-1]) for out, _ in outputs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(FULL), help="run just this workload (repeatable)")
    parser.add_argument("--spu-python", type=Path, default=ROOT / ".venv-spu" / "bin" / "python")
    parser.add_argument("--spu-party", type=int)
    parser.add_argument("--ports")
    parser.add_argument("--workload")
    parser.add_argument("--params")
    args = parser.parse_args()
    if args.spu_party is not None:
        spu_party(args.spu_party, json.loads(args.ports), args.workload, json.loads(args.params), args.repeats)
        return
    if not args.spu_python.exists() or subprocess.run([str(args.spu_python), "-c", "import spu"],
                                                      capture_output=True).returncode:
        print(f"SPU is not installed at {args.spu_python}: skipped (set it up with "
              "`python3.11 -m venv .venv-spu && .venv-spu/bin/pip install spu==0.9.5`)")
        return
    plan = QUICK if args.quick else FULL
    print(f"\nmpcgate (CrypTen over the gRPC exchange, mTLS) vs SPU 0.9.5 (SEMI2K, FM64, brpc), best of "
          f"{args.repeats} after a warm-up; the result revealed to every party\n")
    header = (f"{'workload':34s} {'parties':>7s} {'SPU s':>7s} {'TTP s':>7s} {'TFP s':>7s} {'TTP/SPU':>8s} "
              f"{'TFP/SPU':>8s} {'SPU MB':>7s} {'TTP MB':>7s}")
    print(header)
    print("-" * len(header))
    for name, p in plan.items():
        if args.only and name not in args.only:
            continue
        spu_run = run_spu(args.spu_python, name, p, args.repeats)
        ttp, tfp = (run_mpcgate(name, p, args.repeats, provider) for provider in ("TTP", "TFP"))
        label = f"{name} {' x '.join(str(v) for v in p.values())}"
        print(f"{label:34s} {world(name):7d} {spu_run['seconds']:7.3f} {ttp['seconds']:7.3f} {tfp['seconds']:7.3f} "
              f"{ttp['seconds'] / spu_run['seconds']:8.2f} {tfp['seconds'] / spu_run['seconds']:8.2f} "
              f"{spu_run['bytes'] / 1e6:7.2f} {ttp['bytes'] / 1e6:7.2f}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
