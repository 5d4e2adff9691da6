"""Neural-network benchmark (joint models part 2, beside benchmarks/models.py):
model.mlp training and private inference under MPC (one process per party,
CrypTen over mpcgate's mutual-TLS gRPC exchange with the TTP dealer) beside
plaintext PyTorch on the same rows, in the same run.

- Training: an MLP 30-64-32-1 on 3 parties x 50k rows (horizontal), the same
  network, initialization, batches and learning rate as its plaintext twin
  (network.torch_network). Prints seconds and MB sent per party per epoch,
  rounds, the ratio to PyTorch, and held-out accuracy beside the twin's.
- Inference, 2 parties (the data owner and the model owner, whose ONNX asset
  stays secret-shared): the MLP on 10k rows and a LeNet-style convolutional
  network on 28x28 inputs. Prints rows per second, KB sent per row (the busier
  party), the ratio to PyTorch, and the largest probability error.

For context: CrypTen's published 2-party figures put a small feed-forward
network at about 25x plaintext per epoch.

Usage: .venv/bin/python benchmarks/networks.py [--rows 50000] [--epochs 1] [--batch 128]
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

import numpy as np
import torch

from gateway.exchange.local_parties import run_parties

SEED = 11
WIDTHS = [30, 64, 32, 1]


def dataset(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled rows with a non-linear label, on columns of mixed scales and offsets."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(rows, WIDTHS[0]))
    score = x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.5 * x[:, 3:8].sum(axis=1) / np.sqrt(5)
    y = (score > np.median(score)).astype(np.float64)
    return x * rng.uniform(0.5, 30, WIDTHS[0]) + rng.uniform(-100, 100, WIDTHS[0]), y


def _train(rank: int, world: int, args: tuple) -> dict[str, Any]:
    import crypten.communicator as comm

    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    rows, parameters = args
    x, y = dataset(rows * world)
    names = [f"x{j}" for j in range(WIDTHS[0])] + ["y"]
    table = np.column_stack([x, y])[rank * rows : (rank + 1) * rows]
    ctx = JobContext("model.mlp", "horizontal", rank, world, [PartyLayout(r, f"party{r}", names, -1) for r in range(world)],
                     [0], parse("model.mlp", parameters), table)
    communicator = comm.get()
    marks: list[tuple[float, int, int]] = []

    def progress(phase: str, percent: float) -> None:
        stats = communicator.get_communication_stats()
        marks.append((time.perf_counter(), stats["wire_bytes_sent"], stats["exchanges"]))

    ctx.progress = progress
    result = program("model.mlp")(ctx)
    # the epochs: from the end of standardizing (the first mark) to the last epoch's
    (start, sent0, rounds0), (end, sent1, rounds1) = marks[0], marks[-1]
    out = {"seconds": end - start, "bytes": sent1 - sent0, "rounds": rounds1 - rounds0}
    if result:
        out["accuracy"] = float(result["accuracy"].values[0])
    return out


def _twin(rows: int, world: int, parameters: dict[str, Any]) -> dict[str, float]:
    """The plaintext twin: the same rows, holdout, standardization, init and batches."""
    from mpc.programs.models import network

    x, y = dataset(rows * world)
    masks = [np.random.default_rng([parameters["seed"], r]).random(rows) < 0.2 for r in range(world)]
    parts = [slice(r * rows, (r + 1) * rows) for r in range(world)]
    train_x = np.vstack([x[p][~m] for p, m in zip(parts, masks)])
    train_y = np.concatenate([y[p][~m] for p, m in zip(parts, masks)])
    test_x = np.vstack([x[p][m] for p, m in zip(parts, masks)])
    test_y = np.concatenate([y[p][m] for p, m in zip(parts, masks)])
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    net = network.torch_network(WIDTHS, parameters["seed"])
    u, target = torch.from_numpy((train_x - mean) / std).float(), torch.from_numpy(train_y).float()
    optimizer = torch.optim.SGD(net.parameters(), lr=parameters["learning_rate"])
    started = time.perf_counter()
    for epoch in range(1, parameters["epochs"] + 1):
        order = torch.from_numpy(np.random.default_rng([parameters["seed"], epoch]).permutation(len(u)))
        for start in range(0, len(u), parameters["batch_size"]):
            batch = order[start : start + parameters["batch_size"]]
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(u[batch])[:, 0], target[batch])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        guess = net(torch.from_numpy((test_x - mean) / std).float())[:, 0] > 0
    return {"seconds": seconds / parameters["epochs"], "accuracy": float((guess.numpy() == test_y).mean())}


class LeNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 6, 5), torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2 = torch.nn.Linear(16 * 4 * 4, 84), torch.nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _asset(module: torch.nn.Module, shape: list[int], output: str) -> dict[str, Any]:
    from mpc.runtime import compat

    from mpc.programs.models import assets

    buffer = io.BytesIO()
    compat.export_onnx(buffer, module.eval(), torch.zeros(1, *shape))
    data = buffer.getvalue()
    return {"kind": "asset", "onnx": data,
            "architecture": {"input_shape": shape, "output": output, "outputs": assets.inspect(data, shape, output)}}


def _infer(rank: int, world: int, args: tuple) -> dict[str, Any]:
    import crypten.communicator as comm

    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    x, model = args
    names = [f"c{j}" for j in range(x.shape[1])]
    ctx = JobContext("model.predict", "horizontal", rank, world,
                     [PartyLayout(0, "data", names, -1), PartyLayout(1, "owner", [], -1)], [0], parse("model.predict", {}),
                     x if rank == 0 else np.zeros((0, 0)), model=model if rank == 1 else None)
    communicator = comm.get()
    communicator.reset_communication_stats()
    started = time.perf_counter()
    result = program("model.predict")(ctx)
    out = {"seconds": time.perf_counter() - started, "bytes": communicator.get_communication_stats()["wire_bytes_sent"]}
    if result:
        out["predictions"] = result["predictions"].values
    return out


def inference(name: str, module: torch.nn.Module, shape: list[int], output: str, x: np.ndarray) -> None:
    model = _asset(module, shape, output)
    outs = run_parties(_infer, 2, (x, model), timeout=3600, transport="grpc", provider="TTP")
    seconds = max(o["seconds"] for o in outs)
    batch = torch.from_numpy(x).float().reshape(len(x), *shape)
    started = time.perf_counter()
    with torch.no_grad():
        logits = module(batch)
    plain = time.perf_counter() - started
    expected = torch.sigmoid(logits) if output == "sigmoid" else torch.softmax(logits, 1)
    error = np.abs(outs[0]["predictions"] - expected.numpy()).max()
    kb = max(o["bytes"] for o in outs) / len(x) / 1e3
    print(f"{name:28s} {len(x):7d} {len(x) / seconds:9.0f} {kb:9.1f} {seconds / plain:9.0f} {error:9.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="training rows per party")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--inference-rows", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    parameters = {"label": "y", "hidden": WIDTHS[1:-1], "epochs": args.epochs, "batch_size": args.batch,
                  "learning_rate": 0.1, "seed": 1}
    print(f"\nmodel.mlp {'-'.join(map(str, WIDTHS))}, 3 parties x {args.rows} rows, batch {args.batch}, gRPC/TTP\n")
    header = f"{'s/epoch':>8s} {'MB/party/epoch':>15s} {'rounds/epoch':>13s} {'x PyTorch':>10s}  held-out accuracy (MPC vs twin)"
    print(header)
    print("-" * len(header))
    outs = run_parties(_train, 3, (args.rows, parameters), timeout=24 * 3600, transport="grpc", provider="TTP")
    twin = _twin(args.rows, 3, parameters)
    seconds = max(o["seconds"] for o in outs) / args.epochs
    mb = max(o["bytes"] for o in outs) / 1e6 / args.epochs
    rounds = max(o["rounds"] for o in outs) // args.epochs
    accuracy = outs[0]["accuracy"]
    print(f"{seconds:8.1f} {mb:15.1f} {rounds:13d} {seconds / twin['seconds']:10.0f}  "
          f"{accuracy:.4f} vs {twin['accuracy']:.4f} (gap {accuracy - twin['accuracy']:+.4f})\n", flush=True)

    print("private inference, 2 parties (data owner, model owner), gRPC/TTP\n")
    header = f"{'network':28s} {'rows':>7s} {'rows/s':>9s} {'KB/row':>9s} {'x PyTorch':>9s} {'max error':>9s}"
    print(header)
    print("-" * len(header))
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    mlp = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 1))
    inference("MLP 30-64-32-1", mlp, [30], "sigmoid", rng.normal(size=(args.inference_rows, 30)))
    inference("LeNet-style conv, 28x28", LeNet(), [1, 28, 28], "softmax", rng.random((args.images, 784)))


if __name__ == "__main__":
    main()
