"""Private inference (model.predict, model.evaluate) against plaintext PyTorch: an
ONNX asset of one party (an MLP and a LeNet-style convolutional network) applied
to another party's rows, a model.mlp kept secret-shared applied by the parties
that hold its shares, metrics against scikit-learn's; nothing of the model's
weights or the rows on the wire; assets refused at registration with a clear
error. Real CrypTen, one process per party (the gateways' checks:
tests/e2e/test_models_e2e.py)."""

from __future__ import annotations

import io

import mpc.runtime

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from statskit import Session, Task, capture_sends, encodings_sent
from test_models_mlp import rings

from mpc.errors import InvalidArgument
from mpc.programs.models import assets

pytestmark = pytest.mark.multiprocess


def exported(module: torch.nn.Module, shape: list[int]) -> bytes:
    f = io.BytesIO()
    mpc.runtime.compat.export_onnx(f, module.eval(), torch.zeros(1, *shape))
    return f.getvalue()


class LeNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 5), torch.nn.Conv2d(4, 8, 5)
        self.fc1, self.fc2 = torch.nn.Linear(8 * 4 * 4, 32), torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def asset(module: torch.nn.Module, shape: list[int], output: str) -> dict:
    data = exported(module, shape)
    outputs = assets.inspect(data, shape, output)
    return {"kind": "asset", "onnx": data, "architecture": {"input_shape": shape, "output": output, "outputs": outputs}}


def data_then_owner(x: np.ndarray, names: list[str], model: dict) -> dict:
    """Rank 0 holds the rows and receives; rank 1 holds the model and no rows."""
    return {"tables": [x, np.zeros((0, 0))], "columns": [names, []], "models": [None, model]}


def test_an_asset_predicts_like_plaintext_pytorch(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties: the data owner and the model owner")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    x = np.random.default_rng(0).normal(size=(50, 5)) * 3
    status, result = session.run(Task("model.predict", "horizontal", **data_then_owner(
        x, list("abcde"), asset(net, [5], "sigmoid"))))
    assert status == "ok", result
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(x).float())).numpy()
    assert result["predictions"][0].shape == (50, 1)
    assert np.abs(result["predictions"][0] - expected).max() < 1e-2


def test_an_asset_with_a_declared_standardization_takes_rows_in_raw_units(session: Session) -> None:
    """Incomes of 1e5 and ages of 40 would overflow the fixed-point range: the
    asset declares its input standardization, which the rows' owner applies first."""
    if session.world_size != 2:
        pytest.skip("two parties: the data owner and the model owner")
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = np.column_stack([np.random.default_rng(4).normal(60_000, 20_000, 40), np.random.default_rng(5).uniform(18, 90, 40)])
    shift, scale = [60_000.0, 50.0], [20_000.0, 20.0]
    model = asset(net, [2], "sigmoid")
    model["architecture"].update(frame_shift=shift, frame_scale=scale)
    status, result = session.run(Task("model.predict", "horizontal", **data_then_owner(x, ["income", "age"], model)))
    assert status == "ok", result
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy((x - shift) / scale).float())).numpy()
    assert np.abs(result["predictions"][0] - expected).max() < 1e-2
    status, answer = session.run(Task("model.predict", "horizontal", **data_then_owner(x, ["income", "age"],
                                                                                        asset(net, [2], "sigmoid"))))
    assert status == "refused" and "input_shift and input_scale" in answer


def test_an_asset_is_applied_to_vertically_split_rows_its_owner_does_not_hold(session: Session) -> None:
    """Two banks hold different columns of partly the same customers; a third
    party owns the network and holds no rows: the intersection is the banks'."""
    if session.world_size != 3:
        pytest.skip("three parties: two data owners and the model owner")
    torch.manual_seed(6)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=60), rng.normal(size=60)
    keys = [np.array([f"c{i}" for i in range(0, 50)]), np.array([f"c{i}" for i in range(10, 60)]), None]
    tables = [a[:50, None], b[10:60, None], np.zeros((0, 0))]
    status, result = session.run(Task("model.predict", "vertical", tables, [["a"], ["b"], []], {}, {}, keys,
                                      models=[None, None, asset(net, [2], "sigmoid")]))
    assert status == "ok", result
    rows = [int(k[1:]) for k in result["predictions"][1]]
    assert sorted(rows) == list(range(10, 50))  # the banks' common customers, named by bank 0's keys
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(np.column_stack([a[rows], b[rows]])).float())).numpy()
    assert np.abs(result["predictions"][0] - expected).max() < 1e-2


def test_a_convolutional_asset_predicts_like_plaintext_pytorch(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties: the data owner and the model owner")
    torch.manual_seed(1)
    net = LeNet()
    images = np.random.default_rng(1).random((6, 28 * 28))
    status, result = session.run(Task("model.predict", "horizontal", **data_then_owner(
        images, [f"p{i}" for i in range(784)], asset(net, [1, 28, 28], "softmax"))), timeout=300)
    assert status == "ok", result
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(images).float().reshape(6, 1, 28, 28)), 1).numpy()
    assert np.abs(result["predictions"][0] - expected).max() < 1e-2
    assert result["predictions"][2] == [f"class {k}" for k in range(10)]


def test_a_shared_model_predicts_and_evaluates_at_the_parties_holding_its_shares(session: Session) -> None:
    """model.mlp kept shared, then applied by the same parties to a vertical split
    of new rows: the predictions match the model its shares add up to (applied in
    plaintext), and the metrics match scikit-learn's on that model's predictions."""
    d = session.world_size
    x_all, y_all = rings(np.random.default_rng(2), 1040, d)
    x, y, fresh, fresh_y = x_all[:1000], y_all[:1000], x_all[1000:], y_all[1000:]
    tables = [np.column_stack([x, y])[p] for p in np.array_split(np.arange(1000), d)]
    names = [f"x{j}" for j in range(d)] + ["y"]
    parameters = {"label": "y", "hidden": [6], "epochs": 3, "batch_size": 100, "learning_rate": 2.0, "seed": 1,
                  "keep_shared": True}
    status, _ = session.run(Task("model.mlp", "horizontal", tables, [names] * d, parameters), timeout=300)
    assert status == "ok"
    frame = session.public[0]
    architecture = {"input_shape": [d], "output": "sigmoid", "outputs": 1, "widths": [d, 6, 1],
                    "frame_shift": frame["frame_shift"].tolist(), "frame_scale": frame["frame_scale"].tolist()}
    held = [{"kind": "mlp", "architecture": architecture, "shares": session.shares[r]} for r in range(d)]
    model = rebuilt(session.shares, frame)
    keys = [np.array([f"k{i}" for i in range(40)])] * d
    columns = [[f"x{j}"] for j in range(d)]
    split = [fresh[:, [j]] for j in range(d)]
    status, result = session.run(Task("model.predict", "vertical", split, columns, {}, {}, keys, models=held),
                                 timeout=300)
    assert status == "ok", result
    order = [int(k[1:]) for k in result["predictions"][1]]  # rows in the intersection's order, named by key
    assert np.abs(result["predictions"][0][:, 0] - twin_probabilities(model, fresh[order])).max() < 1e-2
    split[-1], columns[-1] = np.column_stack([split[-1], fresh_y]), [*columns[-1], "y"]
    status, metrics = session.run(Task("model.evaluate", "vertical", split, columns, {"label": "y"}, {"min_group_size": 1},
                                       keys, models=held), timeout=300)
    assert status == "ok", metrics
    assert "predictions" not in metrics
    expected = twin_probabilities(model, fresh)
    assert abs(metrics["accuracy"][0][0] - accuracy_score(fresh_y, expected > 0.5)) <= 0.03
    assert abs(metrics["log_loss"][0][0] - log_loss(fresh_y, expected)) <= 0.02
    assert abs(metrics["auc"][0][0] - roc_auc_score(fresh_y, expected)) <= 0.02  # 40 rows: 2 per score group
    assert np.nansum(metrics["confusion"][0]) == 40


def rebuilt(shares: dict[int, dict], frame: dict) -> dict:
    """The model a model.mlp's kept shares add up to (the ring's sum, decoded), with
    the means and deviations its standardization amounts to."""
    def value(name: str) -> np.ndarray:
        parts = [shares[r][name] for r in sorted(shares)]
        return np.sum([share for share, _ in parts], axis=0) / parts[0][1]  # int64 sums wrap like the ring

    model = {name: value(name) for name in shares[0]}
    return {**{name: [v] for name, v in model.items()},
            "feature_means": [frame["frame_shift"] + frame["frame_scale"] * model["input_shift"]],
            "feature_stds": [frame["frame_scale"] / model["input_scale"]]}


def twin_probabilities(model: dict, x: np.ndarray) -> np.ndarray:
    """A model.mlp (revealed, or rebuilt from its shares) applied in plaintext, with
    its own standardization."""
    u = (x - model["feature_means"][0]) / model["feature_stds"][0]
    hidden = np.maximum(u @ model["layer.0.weight"][0].T + model["layer.0.bias"][0], 0)
    logits = hidden @ model["layer.2.weight"][0].T + model["layer.2.bias"][0]
    return 1 / (1 + np.exp(-logits[:, 0]))


def test_evaluate_suppresses_small_confusion_counts(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties: the data owner and the model owner")
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        net[0].bias.zero_()
    x = np.column_stack([np.r_[np.full(20, 2.0), np.full(3, -2.0)], np.zeros(23)])
    y = np.r_[np.ones(20), np.zeros(3)]  # 20 true positives, 3 true negatives, no errors
    task = data_then_owner(np.column_stack([x, y]), ["a", "b", "y"], asset(net, [2], "sigmoid"))
    status, metrics = session.run(Task("model.evaluate", "horizontal", parameters={"label": "y"},
                                       rules={"min_group_size": 5}, **task))
    assert status == "ok", metrics
    confusion, suppressed = metrics["confusion"][0], metrics["confusion"][3]
    assert confusion[1, 1] == 20 and confusion[0, 1] == 0 and confusion[1, 0] == 0
    assert np.isnan(confusion[0, 0]) and suppressed == [0]
    assert metrics["accuracy"][0][0] == pytest.approx(1.0, abs=1e-3)


def test_inputs_beyond_the_fixed_point_range_are_refused(session: Session) -> None:
    if session.world_size != 2:
        pytest.skip("two parties")
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    x = np.array([[1.0, 2.0], [1e6, 0.0]])
    status, answer = session.run(Task("model.predict", "horizontal", **data_then_owner(x, ["a", "b"], asset(net, [2], "sigmoid"))))
    assert status == "refused" and "outside +-64" in answer
    status, answer = session.run(Task("model.predict", "horizontal", **data_then_owner(
        np.ones((3, 3)), ["a", "b", "c"], asset(net, [2], "sigmoid"))))
    assert status == "refused" and "takes 2 input values per row; the job's inputs give 3" in answer


def _predict_capturing(rank: int, world_size: int, args: tuple) -> list[np.ndarray]:
    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    x, model = args
    captured = capture_sends()
    ctx = JobContext("model.predict", "horizontal", rank, world_size,
                     [PartyLayout(0, "party0", ["a", "b", "c", "d"], -1), PartyLayout(1, "party1", [], -1)], [0], parse("model.predict", {}),
                     x if rank == 0 else np.zeros((0, 0)), model=None if rank == 0 else model)
    program("model.predict")(ctx)
    return captured


def test_neither_the_weights_nor_the_rows_cross_the_wire() -> None:
    from gateway.exchange import local_parties as parties

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = np.random.default_rng(3).normal(size=(16, 4))
    sent = parties.run_parties(_predict_capturing, 2, (x, asset(net, [4], "sigmoid")), transport="grpc", timeout=180)
    weights = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])
    for values, who in ((weights, 1), (x.ravel(), 0)):
        assert sum(array.nbytes for array in sent[who]) > values.size * 8, "the capture must hold the party's real traffic"
        leaked = encodings_sent(sent[who], values, bits=(16, 24))
        assert not leaked, f"party {who} sent {leaked} encodings of its secret"


class Sine(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x).sum(1, keepdim=True)


@pytest.mark.parametrize("make, shape, output, message", [
    (lambda: b"not an onnx file", [4], "identity", "not an ONNX model"),
    (lambda: exported(Sine(), [4]), [4], "identity", "does not support the ONNX operator(s) Sin"),
    (lambda: exported(torch.nn.Linear(4, 2), [4]), [5], "identity", "not a batch of [5]"),
    (lambda: exported(torch.nn.Linear(4, 2), [4]), [4], "sigmoid", "needs one output per row"),
])
def test_an_asset_is_refused_at_registration_with_a_clear_error(make, shape, output, message) -> None:
    with pytest.raises(InvalidArgument) as refused:
        assets.inspect(make(), shape, output)
    assert message in refused.value.message


def test_the_skeleton_keeps_the_graph_and_drops_the_weights() -> None:
    net = torch.nn.Linear(3, 2)
    data = exported(net, [3])
    bare = assets.skeleton(data)
    assert assets.inspect(bare, [3], "identity") == 2
    weight = np.float32(net.weight.detach().numpy().ravel()[0]).tobytes()
    assert weight in data and weight not in bare
