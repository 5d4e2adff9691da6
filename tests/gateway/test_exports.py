"""Revealed models leave cleanly (issue 30 defect 4): the torch export of an MLP
crashed on a local class and left a partial file, linear models were pickled whole
modules that torch.load refuses by default, and an ONNX export's "prediction" of a
classifier was a logit that nothing named. Checked against the plaintext model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gateway.client.sdk import Model


def model(kind: str, output: str = "sigmoid") -> Model:
    rng = np.random.default_rng(1)
    if kind == "model.mlp":
        classes = 3 if output == "softmax" else 1
        values = {"feature_means": rng.normal(size=2), "feature_stds": rng.uniform(1, 2, 2),
                  "layer.0.weight": rng.normal(size=(4, 2)), "layer.0.bias": rng.normal(size=4),
                  "layer.2.weight": rng.normal(size=(classes, 4)), "layer.2.bias": rng.normal(size=classes)}
        architecture = {"widths": [2, 4, classes], "output": output}
    else:
        values, architecture = {"coefficients": rng.normal(size=2), "intercept": np.array([0.5])}, {}
    return Model("m", kind, ["a", "b"], "y", False, values, {}, "TTP", ["bank-a"], architecture=architecture)


ROWS = np.random.default_rng(2).normal(size=(5, 2))


@pytest.mark.parametrize("kind, output, names", [
    ("model.linear_regression", "", ["prediction"]),
    ("model.logistic_regression", "", ["logit", "probability"]),
    ("model.mlp", "sigmoid", ["logit", "probability"]),
    ("model.mlp", "softmax", ["logits", "probabilities"]),
])
def test_exported_programs_state_dicts_and_onnx_load_without_our_code(tmp_path: Path, kind: str, output: str,
                                                               names: list[str]) -> None:
    from onnx.reference import ReferenceEvaluator  # onnx's own runtime: no code of ours

    m = model(kind, output or "sigmoid")
    scores = m.predict(ROWS).reshape(len(ROWS), -1)
    assert m.outputs() == names
    program = torch.export.load(m.save_torch(str(tmp_path / "m.pt2"))).module()
    got = program(torch.from_numpy(ROWS))
    got = got if isinstance(got, tuple) else (got,)
    np.testing.assert_allclose(got[0].detach().numpy().reshape(scores.shape), scores, rtol=1e-9)
    if len(names) == 2:
        expected = 1 / (1 + np.exp(-scores)) if names[0] == "logit" else np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
        np.testing.assert_allclose(got[1].detach().numpy().reshape(scores.shape), expected, rtol=1e-9)
    weights = torch.load(m.save_torch(str(tmp_path / "m.state.pt"), state_dict=True))  # weights_only by default
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    session = ReferenceEvaluator(m.to_onnx(str(tmp_path / "m.onnx")))
    assert list(session.output_names) == names
    first = session.run(None, {"features": ROWS.astype(np.float32)})[0]
    np.testing.assert_allclose(first.reshape(scores.shape), scores, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt2", "m.state.pt"]  # nothing partial left


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    broken = model("model.mlp")
    broken.values["layer.0.weight"] = np.zeros((4, 3))  # does not fit the layer
    with pytest.raises(RuntimeError):
        broken.save_torch(str(tmp_path / "m.pt2"))
    assert not list(tmp_path.iterdir())
