"""A revealed model as files other software loads: ONNX (a classifier's logit and
probability, named), a torch.export program (`torch.export.load(path).module()`:
no Python class of ours needed; any number of rows) or a state_dict (tensors
only). Each file appears whole or not at all. Client side:
imports no server code."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np


def outputs(model: Any) -> list[str]:
    """A classifier's logit(s) and probability (or probabilities per class); a
    linear regression's prediction."""
    output = model.architecture.get("output", "sigmoid") if model.kind == "model.mlp" else (
        "sigmoid" if model.kind == "model.logistic_regression" else "identity")
    return {"sigmoid": ["logit", "probability"], "softmax": ["logits", "probabilities"]}.get(output, ["prediction"])


def to_onnx(model: Any, path: str) -> str:
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

    import torch

    names = outputs(model)
    module = with_probabilities(model.to_torch(), names).float()
    example = torch.zeros(1, len(model.features))
    with written(path) as temporary:
        torch.onnx.export(module, (example,), temporary, dynamo=False, input_names=["features"], output_names=names,
                          dynamic_axes={"features": {0: "rows"}, **{n: {0: "rows"} for n in names}})
    return path


def save_torch(model: Any, path: str, state_dict: bool = False) -> str:
    import torch

    with written(path) as temporary:
        if state_dict:
            torch.save(model.to_torch().state_dict(), temporary)
        else:
            module = with_probabilities(model.to_torch(), outputs(model)).eval()
            example = torch.zeros(2, len(model.features), dtype=torch.float64)
            program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("rows")},))
            torch.export.save(program, temporary)
    return path


@contextlib.contextmanager
def written(path: str) -> Iterator[str]:
    """A temporary path beside `path`, renamed to it once written (a failed export
    leaves no partial file)."""
    temporary = f"{path}.partial"
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def with_probabilities(module: Any, names: list[str]) -> Any:
    """`module` (rows -> logits or predictions) returning also the probabilities
    where `names` has two outputs."""
    import torch

    if len(names) == 1:
        return module

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scores = module

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.scores(x)
            probability = torch.sigmoid(logits) if names[0] == "logit" else torch.softmax(logits, dim=1)
            return logits, probability

    return Classifier()


def mlp_module(means: np.ndarray, stds: np.ndarray, parameters: list[np.ndarray]) -> Any:
    """(x - means) / stds, then Linear layers (weight, bias pairs) with ReLUs between them."""
    import torch

    class Standardize(torch.nn.Module):
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(np.asarray(means, dtype=np.float64)))
            self.register_buffer("std", torch.from_numpy(np.asarray(stds, dtype=np.float64)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.std

    layers: list[torch.nn.Module] = [Standardize()]
    for i in range(0, len(parameters), 2):
        weight, bias = parameters[i], parameters[i + 1]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])
