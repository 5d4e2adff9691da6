"""Neural networks under MPC, shared by the programs that train them (mlp.py) and
apply them (inference.py): the architecture every party builds alike, the
inputs' standardization, the output activation, and a network's parameters as a
party keeps or loads its shares of them.

A model's inputs are standardized in two steps: a public frame per column, z =
(x - frame_shift) / frame_scale, computed locally by the rows' owner (|z| <= 1,
so the 16-bit encoding keeps the column's detail whatever its offset or units),
then u = (z - input_shift) * input_scale under encryption, where the shift and
scale (the mean and inverse deviation of z) are secret-shared or held by the
model's owner. The frame is coarse (a power of two and a multiple of an eighth of
it): it is the only part of a model's standardization a party using the model
learns. Networks run at 16 fractional bits (`NETWORK_BITS`): CrypTen's
comparisons (ReLU, max) are right only at the configured precision, so the
network's steps run inside `at_network_precision()`; the programs' secure
helpers (sigmoid, metrics) run outside it, at the programs' configured 24 bits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mpc.programs import secure
from mpc.programs.models import sigmoid

NETWORK_BITS = 16
OUTPUTS = ("sigmoid", "softmax", "identity")
"""What is applied to a network's output under MPC (model.mlp: the first two; assets: any)."""
FRAME_GRID = 3
"""The frame's shift is a multiple of 2^(E - FRAME_GRID), E the power of two of the column's spread."""


@contextlib.contextmanager
def at_network_precision() -> Iterator[None]:
    import crypten

    with crypten.cfg.temp_override({"encoder.precision_bits": NETWORK_BITS}):
        yield


def torch_network(widths: list[int], seed: int) -> torch.nn.Sequential:
    """Linear layers of `widths` (input, hidden..., output) with ReLUs between them,
    initialized by torch's defaults from `seed`: the plaintext twin of
    `crypten_network(widths, seed)`, with the same initial weights."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def crypten_network(widths: list[int], seed: int) -> Any:
    """The same network in crypten.nn (its Linear draws torch's initialization in
    the same order), not yet encrypted: the initial weights are public."""
    import crypten.nn as cnn

    torch.manual_seed(seed)
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(cnn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(cnn.ReLU())
    return cnn.Sequential(*layers)


def parameters(module: Any) -> dict[str, Any]:
    """The module's parameters by name ("0.weight", ...), in a fixed order."""
    return dict(module.named_parameters())


GRADIENT_BOUND = 100.0
"""A gradient entry beyond this is a failed truncation's wrap, not a gradient: it is dropped (as CrypTen does)."""


def sgd_step(module: Any, rate: float) -> None:
    """param -= rate * grad for every parameter with a gradient, dropping entries
    beyond GRADIENT_BOUND: CrypTen's update_parameters, with one comparison for
    all parameters instead of one per parameter tensor."""
    import crypten

    held = [p for p in module.parameters() if p.grad is not None]
    if not held:
        return
    with crypten.no_grad(), torch.no_grad():
        flat = crypten.cat([p.grad.flatten() for p in held])
        step = flat.mul(secure.less_than(flat.square(), GRADIENT_BOUND**2)).mul(rate)
        start = 0
        for param in held:
            size = param.numel()
            param.sub_(step[start : start + size].reshape(param.size()))
            start += size


def load_shares(module: Any, shares: dict[str, tuple[np.ndarray, int]]) -> None:
    """Makes an encrypted module hold this party's stored shares of its parameters
    (a party that holds none contributes zeros, which leaves the sum unchanged)."""
    for name, value in parameters(module).items():
        _hold(value, shares.get(name))


def from_shares(held: tuple[np.ndarray, int] | None, shape: tuple[int, ...]) -> Any:
    """A shared value of `shape` made of this party's stored share (or zeros)."""
    import crypten

    value = crypten.cryptensor(torch.zeros(shape, dtype=torch.float64), precision=NETWORK_BITS)
    _hold(value, held)
    return value


def _hold(value: Any, held: tuple[np.ndarray, int] | None) -> None:
    from crypten.encoder import FixedPointEncoder

    share, scale = held if held is not None else (np.zeros(tuple(value.size()), dtype=np.int64), 1 << NETWORK_BITS)
    value._tensor.share = torch.from_numpy(np.asarray(share, dtype=np.int64).copy()).reshape(value.size())
    value._tensor.encoder = FixedPointEncoder(precision_bits=int(math.log2(scale)))


def local_frame(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A column owner's own public frame (shift, scale) with |(x - shift) / scale| <= 1:
    the shift a multiple of an eighth of the spread's power of two (so the mean is
    public only that coarsely), the scale a power of two."""
    mean = x.mean(axis=0)
    spread = np.maximum(np.abs(x - mean).max(axis=0, initial=0.0), 2.0**-20)
    grid = np.exp2(np.ceil(np.log2(spread)) - FRAME_GRID)
    shift = np.round(mean / grid) * grid
    scale = np.exp2(np.ceil(np.log2(np.maximum(np.abs(x - shift).max(axis=0, initial=0.0), 2.0**-20))))
    return shift, scale


def standardize(z: Any, shift: Any, scale: Any) -> Any:
    """u = (z - shift) * scale under encryption, at the network's precision (z, shift
    and scale shared, each taken at 16 bits)."""
    return (secure.lowered(z) - secure.lowered(shift)) * secure.lowered(scale)


def activate(output: str, logits: Any) -> Any:
    """The network's output activation: probabilities (sigmoid, softmax) or the raw output."""
    if output == "sigmoid":
        return sigmoid.clamp01(sigmoid.activations(logits)[0])
    if output == "softmax":
        with at_network_precision():
            return logits.softmax(1)
    return logits
