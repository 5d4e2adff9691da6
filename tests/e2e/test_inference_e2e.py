"""Neural networks and private inference as jobs on real gateways (two banks and
the dealer, one process each, mutual TLS, TTP): a model.mlp streams its epochs
and reaches its receiver, which then applies it privately to the other bank's
rows; a model asset is checked at registration, its policy and input width are
enforced by its owner at review, and evaluate reveals metrics only."""

from __future__ import annotations

import io
from collections.abc import Iterator

import mpc.runtime

import numpy as np
import pytest
import torch

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation
from mpc.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.multiprocess

BANKS = ["bank-a", "bank-b"]
FEATURES = ["income", "debt", "age"]
ROWS = 240
KEYS = [f"c{i:04d}" for i in range(ROWS)]  # bank-b's customer ids
ASSET_POLICY = {"allowed_parties": ["bank-c"], "allowed_datasets": ["bank-b/*"],
                "allowed_result_receivers": ["bank-b"], "allowed_job_kinds": ["model.predict", "model.evaluate"]}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path_factory.mktemp("inference"), BANKS, dealer=True, failure_timeout=5.0) as federation:
        policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["model.mlp", "model.predict", "model.evaluate"],
                            allowed_columns=[*demo_data.COLUMNS, "good", "decades"], allowed_result_receivers=BANKS, min_rows=20,
                            min_group_size=5, approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
        for bank in BANKS:
            rows = demo_data.loans(bank, ROWS)
            good = (rows[:, 3] > np.median(rows[:, 3])).astype(np.float64)
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv",
                                np.column_stack([rows[:, :3], good, rows[:, 2] / 10]), [*FEATURES, "good", "decades"],
                                key=np.array(KEYS) if bank == "bank-b" else None)
        federation.start()
        for bank in BANKS:
            with federation.client(bank) as client:
                client.register_dataset("loans", "loans.csv", policy, key_column="customer_id" if bank == "bank-b" else "")
        yield federation


def loans(bank: str) -> np.ndarray:
    return demo_data.loans(bank, ROWS)[:, :3]


def test_an_mlp_trained_with_the_dealer_is_applied_privately_to_the_other_banks_rows(fed: LocalFederation) -> None:
    inputs = [(b, "loans", [*FEATURES, "good"]) for b in BANKS]
    with fed.client("bank-a") as client:
        job = client.submit("model.mlp", inputs, receivers=["bank-a"],
                            parameters={"label": "good", "hidden": [8], "epochs": 2, "batch_size": 48, "seed": 2,
                                        "learning_rate": 0.3})
        events = list(job.watch(timeout=300))
        assert job.state == "SUCCEEDED", job.record.error
        epochs = list(dict.fromkeys(e.progress.phase for e in events if e.progress.phase.startswith("epoch")))
        assert len(epochs) == 2 and "accuracy" in epochs[-1], epochs  # (each party reports each epoch)
        model = client.model(job.id)
        assert model.kind == "model.mlp" and model.features == FEATURES and "layer.0.weight" in model.values
        predict = client.submit("model.predict", [("bank-b", "loans", FEATURES)], receivers=["bank-b"],
                                model=(job.id, ["bank-a"])).wait(timeout=300)
        assert predict.state == "SUCCEEDED", predict.record.error
        with pytest.raises(Exception, match="no result"):
            predict.result()  # bank-a holds the model, but only bank-b receives
    with fed.client("bank-b") as client:
        found = client.job(predict.id).result()
        predictions = found["predictions"][:, 0]
    assert found.labels["predictions"] == KEYS  # the rows' owner sees them by its own key column
    with fed.client("bank-a") as client:  # a curious model holder that also receives: positions, never bank-b's keys
        both = client.submit("model.predict", [("bank-b", "loans", FEATURES)], receivers=["bank-a", "bank-b"],
                             model=(job.id, ["bank-a"])).wait(timeout=300)
        assert both.state == "SUCCEEDED", both.record.error
        seen = both.result()
    assert seen.labels["predictions"] == [f"row {i}" for i in range(ROWS)]
    assert not set(KEYS) & {label for labels in seen.labels.values() for label in labels}
    v = model.values
    u = (loans("bank-b") - v["feature_means"]) / v["feature_stds"]
    logits = np.maximum(u @ v["layer.0.weight"].T + v["layer.0.bias"], 0) @ v["layer.2.weight"].T + v["layer.2.bias"]
    assert np.abs(predictions - 1 / (1 + np.exp(-logits[:, 0]))).max() < 1e-2
    assert np.allclose(model.predict(loans("bank-b")), logits)  # the SDK's plaintext twin of the revealed network
    assert model.architecture["widths"] == [3, 8, 1] and model.architecture["output"] == "sigmoid"


def onnx_of(module: torch.nn.Module, width: int) -> bytes:
    f = io.BytesIO()
    mpc.runtime.compat.export_onnx(f, module.eval(), torch.zeros(1, width))
    return f.getvalue()


def test_an_asset_is_checked_at_registration_and_its_owner_enforces_its_policy(fed: LocalFederation) -> None:
    inputs = [("bank-b", "loans", ["decades", "good"])]  # an asset's inputs lie within +-64
    net = torch.nn.Sequential(torch.nn.Linear(1, 1))
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[0].bias.fill_(-8.0)
    with fed.client("bank-a") as client:
        with pytest.raises(InvalidArgument, match="not an ONNX model"):
            client.register_model("broken", b"\x00not onnx", [1], ASSET_POLICY)
        with pytest.raises(InvalidArgument, match="not a batch of"):
            client.register_model("wrong-shape", onnx_of(net, 1), [4], ASSET_POLICY)
        asset = client.register_model("age-score", net, [1], ASSET_POLICY, output="sigmoid")  # exported here
        assert asset.asset and asset.kind == "asset.onnx"
        refused = client.submit("model.evaluate", inputs, receivers=["bank-b"], parameters={"label": "good"},
                                model=("age-score", ["bank-a"])).wait(timeout=60)
        assert refused.state == "REJECTED" and "parties bank-b may not use model 'age-score'" in refused.record.error.message
        client.set_model_policy("age-score", {**ASSET_POLICY, "allowed_parties": ["bank-b"]})
        wide = client.submit("model.predict", [("bank-b", "loans", ["decades", "debt"])], receivers=["bank-b"],
                             model=("age-score", ["bank-a"])).wait(timeout=60)
        assert wide.state == "REJECTED" and "takes 1 input values per row; the job's inputs give 2" in wide.record.error.message
        job = client.submit("model.evaluate", inputs, receivers=["bank-b"], parameters={"label": "good"},
                            model=("age-score", ["bank-a"])).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record.error
    with fed.client("bank-b") as client:
        metrics = client.job(job.id).result()
    assert "predictions" not in metrics.values
    assert {"accuracy", "auc", "gini", "ks", "brier", "log_loss", "confusion", "lift"} <= set(metrics.values)
    assert metrics["gini"][0] == pytest.approx(2 * metrics["auc"][0] - 1)
    rows = demo_data.loans("bank-b", ROWS)
    good, guess = rows[:, 3] > np.median(rows[:, 3]), rows[:, 2] / 10 * 2.0 - 8 > 0
    assert metrics["accuracy"][0] == pytest.approx((guess == good).mean(), abs=0.02)
    expected = np.array([[(~guess & ~good).sum(), (guess & ~good).sum()], [(~guess & good).sum(), (guess & good).sum()]])
    for cell, count in zip(metrics["confusion"].ravel(), expected.ravel()):
        assert np.isnan(cell) if 0 < count < 5 else abs(cell - count) <= 3, (metrics["confusion"], expected)


def test_a_model_owner_can_require_approving_each_use(fed: LocalFederation) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(1, 1))
    with fed.client("bank-a") as owner:
        owner.register_model("approved-score", net, [1], {**ASSET_POLICY, "allowed_parties": ["bank-b"],
                                                          "approval": "manual"}, output="sigmoid")
        job = owner.submit("model.predict", [("bank-b", "loans", ["decades"])], receivers=["bank-b"],
                           model=("approved-score", ["bank-a"]))
        assert job.state == "AWAITING_APPROVAL"
        with fed.client("bank-b") as data_owner:
            with pytest.raises(FailedPrecondition):
                data_owner.approve(job.id)  # bank-b's dataset policy approves automatically: nothing to approve
        assert owner.approve(job.id).state != "AWAITING_APPROVAL"
        assert job.wait(timeout=300).state == "SUCCEEDED", job.record.error
