"""model.mlp against its plaintext twin: the same network (torch's initialization
from the same seed), the same rows in the same order per epoch, the same SGD
steps, in float64 PyTorch. Accuracy on the same held-out rows within 0.02, the
per-epoch training loss close, horizontal and vertical, 2 and 3 parties; softmax;
keep_shared keeps shares that add up to the model. Real CrypTen, one process per
party (the TTP dealer and the gateways: tests/e2e/test_models_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from statskit import Session, Task

from mpc.programs.models import network
from mpc.programs.models.holdout import entity_draws

pytestmark = pytest.mark.multiprocess
PARAMETERS = {"label": "y", "hidden": [8], "epochs": 3, "batch_size": 100, "learning_rate": 2.0, "seed": 3}


def rings(rng: np.random.Generator, rows: int, d: int, offset: float = 0.0, classes: int = 2,
          gap: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Labels a linear model cannot separate (the distance from a center, cut at
    quantiles), on columns of mixed scales and offsets, with a margin of `gap`
    around each cut: a held-out accuracy then measures the network, not which way
    rows on a knife's edge happen to fall."""
    scales = rng.uniform(0.5, 50, d)
    x = rng.normal(size=(3 * rows, d)) * scales + offset
    radius = np.sqrt((((x - offset) / scales)[:, :2] ** 2).sum(axis=1))
    cut = np.quantile(radius, np.linspace(0, 1, classes + 1)[1:-1])
    clear = np.abs(radius[:, None] - cut[None, :]).min(axis=1) > gap
    return x[clear][:rows], np.searchsorted(cut, radius[clear][:rows]).astype(np.float64)


def twin(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, parameters: dict) -> dict:
    """The plaintext twin's per-epoch loss and held-out accuracy."""
    classes = int(parameters.get("classes", 2))
    softmax = parameters.get("output") == "softmax"
    mean, std = x.mean(axis=0), x.std(axis=0)
    net = network.torch_network([x.shape[1], *parameters["hidden"], classes if softmax else 1],
                                parameters["seed"]).double()
    u, target = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    optimizer = torch.optim.SGD(net.parameters(), lr=parameters["learning_rate"])
    losses = []
    for epoch in range(1, parameters["epochs"] + 1):
        order = torch.from_numpy(np.random.default_rng([parameters["seed"], epoch]).permutation(len(u)))
        total = 0.0
        for start in range(0, len(u), parameters["batch_size"]):
            rows = order[start : start + parameters["batch_size"]]
            optimizer.zero_grad()
            out = net(u[rows])
            loss = (torch.nn.functional.cross_entropy(out, target[rows].long(), reduction="sum") if softmax else
                    torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], target[rows], reduction="sum"))
            total += loss.item()
            (loss / len(rows)).backward()
            optimizer.step()
        losses.append(total / len(u))
    with torch.no_grad():
        out = net(torch.from_numpy((x_test - mean) / std))
    guess = out.argmax(dim=1).numpy() if softmax else (out[:, 0] > 0).numpy()
    return {"loss": np.array(losses), "accuracy": float((guess == y_test).mean())}


def assert_like_twin(result: dict, reference: dict) -> None:
    assert abs(result["accuracy"][0][0] - reference["accuracy"]) <= 0.02, (result["accuracy"][0], reference)
    # the trajectory follows the twin's (fixed-point steps drift a little from float64's while the loss falls fast)
    assert np.allclose(result["loss"][0], reference["loss"], rtol=0.15, atol=0.02), (result["loss"][0], reference["loss"])
    assert reference["loss"][-1] < reference["loss"][0]  # it learned something to compare


def horizontal_split(session: Session, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[list, np.ndarray]:
    parts = np.array_split(np.arange(len(y)), session.world_size)
    tables = [np.column_stack([x, y])[p] for p in parts]
    mask = np.concatenate([np.random.default_rng([seed, r]).random(len(p)) < 0.2 for r, p in enumerate(parts)])
    return tables, mask


def test_horizontal_matches_plaintext_pytorch(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough: the pooled input frame is the statistics' (tested at both)")
    x, y = rings(np.random.default_rng(1), 2000, 4, offset=1e3)
    tables, mask = horizontal_split(session, x, y, PARAMETERS["seed"])
    names = [f"x{j}" for j in range(4)] + ["y"]
    status, result = session.run(Task("model.mlp", "horizontal", tables, [names] * session.world_size, PARAMETERS),
                                 timeout=600)
    assert status == "ok", result
    assert_like_twin(result, twin(x[~mask], y[~mask], x[mask], y[mask], PARAMETERS))
    assert result["layer.0.weight"][0].shape == (8, 4) and result["layer.0.weight"][2] == names[:4]
    assert np.allclose(result["feature_means"][0], x[~mask].mean(axis=0), rtol=1e-4)
    assert np.allclose(result["feature_stds"][0], x[~mask].std(axis=0), rtol=1e-2)


def test_vertical_matches_plaintext_pytorch_with_labels_at_one_party(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough: columns join alike from any number of owners")
    rows, d = 2000, 2 * session.world_size
    x, y = rings(np.random.default_rng(2), rows, d, offset=-40.0)
    split = np.array_split(np.arange(d), session.world_size)
    tables, names = [x[:, c] for c in split], [[f"x{j}" for j in c] for c in split]
    tables[-1], names[-1] = np.column_stack([tables[-1], y]), [*names[-1], "y"]  # the label at the last party
    keys = [np.array([f"k{i}" for i in range(rows)])] * session.world_size
    status, result = session.run(Task("model.mlp", "vertical", tables, names, PARAMETERS, {}, keys), timeout=600)
    assert status == "ok", result
    draws = entity_draws(keys[0], PARAMETERS["seed"], "mpcgate")
    order = np.argsort(draws, kind="stable")  # the program's row order, whatever the intersection's
    x, y, mask = x[order], y[order], draws[order] < 0.2
    assert_like_twin(result, twin(x[~mask], y[~mask], x[mask], y[mask], PARAMETERS))


def test_softmax_over_three_classes_matches_plaintext_pytorch(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough for the output layer")
    parameters = {**PARAMETERS, "output": "softmax", "classes": 3, "hidden": [12]}
    x, y = rings(np.random.default_rng(3), 1500, 3, classes=3)
    tables, mask = horizontal_split(session, x, y, parameters["seed"])
    names = ["a", "b", "c", "y"]
    status, result = session.run(Task("model.mlp", "horizontal", tables, [names] * 2, parameters), timeout=600)
    assert status == "ok", result
    assert result["layer.2.weight"][0].shape == (3, 12) and "auc" not in result
    assert_like_twin(result, twin(x[~mask], y[~mask], x[mask], y[mask], parameters))


def test_keep_shared_reveals_metrics_only_and_the_shares_add_up_to_the_model(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough for the shares")
    x, y = rings(np.random.default_rng(4), 400, 3)
    tables, _ = horizontal_split(session, x, y, PARAMETERS["seed"])
    names = ["a", "b", "c", "y"]
    parameters = {**PARAMETERS, "epochs": 1}
    status, revealed = session.run(Task("model.mlp", "horizontal", tables, [names] * 2, parameters), timeout=600)
    assert status == "ok", revealed
    status, shared = session.run(Task("model.mlp", "horizontal", tables, [names] * 2, {**parameters, "keep_shared": True}),
                                 timeout=600)
    assert status == "ok", shared
    assert sorted(shared) == ["accuracy", "auc", "brier", "gini", "ks", "lift", "loss", "train_accuracy"]
    def rebuilt(name: str) -> np.ndarray:
        parts = [session.shares[r][name] for r in range(2)]
        assert not np.allclose(parts[0][0] / parts[0][1], revealed[name][0], atol=1.0)  # a share alone is noise
        return (parts[0][0] + parts[1][0]) / parts[0][1]  # the ring's sum of the shares, decoded

    for name in ("layer.0.weight", "layer.0.bias", "layer.2.weight", "layer.2.bias"):
        assert np.allclose(rebuilt(name), revealed[name][0], atol=2e-3), name
    shift, scale = session.public[0]["frame_shift"], session.public[0]["frame_scale"]  # public to every party
    stds = revealed["feature_stds"][0]  # the means to 1e-3 of a deviation (16 bits of the frame)
    assert np.all(np.abs(shift + scale * rebuilt("input_shift") - revealed["feature_means"][0]) <= 1e-3 * stds)
    assert np.allclose(scale / rebuilt("input_scale"), revealed["feature_stds"][0], rtol=1e-2)


def test_labels_outside_the_classes_are_refused(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("one party count is enough")
    x, y = rings(np.random.default_rng(5), 200, 2)
    y[7] = 2.0
    tables, _ = horizontal_split(session, x, y, 0)
    status, message = session.run(Task("model.mlp", "horizontal", tables, [["a", "b", "y"]] * 2, PARAMETERS))
    assert status == "refused" and "must hold only 0 and 1" in message


def test_a_label_of_one_class_is_refused_not_fitted(session: Session) -> None:
    """The trial's MLP released AUC -0.0 on all-zero labels: refused now, as scikit-learn does."""
    if session.world_size != 2:
        pytest.skip("one party count is enough")
    x, y = rings(np.random.default_rng(5), 200, 2)
    tables, _ = horizontal_split(session, x, np.ones_like(y), 0)
    status, message = session.run(Task("model.mlp", "horizontal", tables, [["a", "b", "y"]] * 2, PARAMETERS))
    assert status == "refused" and "holds one class only" in message
