"""Models as first-class jobs on real gateways (three banks and the dealer, one
process each, mutual TLS): a revealed model reaches only the receiver and matches
scikit-learn; a shared model leaves only shares at every gateway, which rebuild
it; the models CLI lists, shows and exports (ONNX) what a gateway holds."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation
from gateway.registry.model_store import ModelStore
from mpc.errors import InvalidArgument, NotFound
from mpc.programs.models.holdout import entity_draws

pytestmark = pytest.mark.multiprocess

BANKS = demo_data.INSTITUTIONS
COLUMNS = demo_data.COLUMNS
FEATURES = ["income", "debt", "age"]
ROWS = 300


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path_factory.mktemp("models"), BANKS, dealer=True, failure_timeout=5.0) as federation:
        policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["model.linear_regression", "model.logistic_regression"],
                            allowed_columns=[*COLUMNS, "late"], allowed_result_receivers=["bank-a"], min_rows=50,
                            approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
        for bank in BANKS:
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv", demo_data.loans(bank, ROWS))
        x, late = customers()
        keys = np.array([f"c{i:05d}" for i in range(len(late))])
        for bank, (columns, table) in {"bank-a": (["income", "late"], np.column_stack([x[:, 0], late])),
                                       "bank-b": (["debt"], x[:, 1:2]), "bank-c": (["age"], x[:, 2:3])}.items():
            demo_data.write_csv(federation.data_dir(bank) / "customers.csv", table, columns, key=keys)
        federation.start()
        for bank in BANKS:
            write_holey(federation.data_dir(bank) / "holey.csv", bank)
        for bank in BANKS:
            with federation.client(bank) as client:
                client.register_dataset("loans", "loans.csv", policy)
                client.register_dataset("customers", "customers.csv", policy, key_column="customer_id")
                open_policy = dpb.Policy()
                open_policy.CopyFrom(policy)
                open_policy.allowed_result_receivers[:] = BANKS  # (a pooled fill reaches every party)
                open_policy.allowed_columns.extend(["region", "product"])
                client.register_dataset("holey", "holey.csv", open_policy)
        yield federation


def customers(rows: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """One bank's customers split by column across the banks; 'late' (0/1) at bank-a."""
    x = demo_data.loans("bank-a", rows)[:, :3]
    rng = np.random.default_rng(3)
    odds = (x[:, 1] / x[:, 0] - 0.3) * 8 - (x[:, 2] - 42) / 20
    return x, (rng.random(rows) < 1 / (1 + np.exp(-odds))).astype(np.float64)


REGIONS, PRODUCTS = ["east", "north", "south", "west"], ["card", "loan", "mortgage"]


def holey(bank: str) -> dict[str, np.ndarray]:
    """A bank's loans with a fifth of the numeric cells, a tenth of two text
    columns (region, product) and a few labels missing; late = a low credit score
    made likelier in the south and for mortgages."""
    table = demo_data.loans(bank, ROWS)
    rng = np.random.default_rng(BANKS.index(bank) + 40)
    region, product = rng.choice(REGIONS, ROWS), rng.choice(PRODUCTS, ROWS)
    score = table[:, 3] - 25 * (region == "south") - 15 * (product == "mortgage")
    columns: dict[str, np.ndarray] = {name: table[:, j].copy() for j, name in enumerate(FEATURES)}
    columns |= {"region": region.astype(object), "product": product.astype(object),
                "late": (score < 640).astype(np.float64)}
    for name, share in [*((f, 0.2) for f in FEATURES), ("region", 0.1), ("product", 0.1), ("late", 0.03)]:
        gaps = rng.random(ROWS) < share
        columns[name][gaps] = np.nan if columns[name].dtype == np.float64 else None
    return columns


def write_holey(path: Path, bank: str) -> None:
    columns = holey(bank)
    lines = [",".join(columns)]
    for i in range(ROWS):
        cells = [columns[c][i] for c in columns]
        lines.append(",".join("" if v is None or (isinstance(v, float) and np.isnan(v)) else
                              (f"{v:.6f}" if isinstance(v, float) else str(v)) for v in cells))
    path.write_text("\n".join(lines) + "\n")


def holey_design(columns: dict[str, np.ndarray], features: list[str]) -> np.ndarray:
    """The design a job with missing: indicator builds: numeric gaps take the pooled
    mean (of labelled rows), categorical gaps no category, each gap its indicator."""
    named: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        absent = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
        named[f"{name}_missing"] = absent.astype(float)
        if values.dtype == object:
            named |= {f"{name}={level}": (values == level).astype(float) for level in sorted(set(values[~absent]))}
        else:
            named[name] = np.where(absent, np.nanmean(values.astype(float)), values)
    return np.column_stack([named[f] for f in features])


def _inputs() -> list[tuple[str, str, list[str]]]:
    return [(b, "loans", [*FEATURES, "credit_score"]) for b in BANKS]


def _pooled() -> tuple[np.ndarray, np.ndarray]:
    pooled = np.vstack([demo_data.loans(b, ROWS) for b in BANKS])
    return pooled[:, :3], pooled[:, 3]


def test_a_revealed_model_reaches_only_the_receiver_and_matches_scikit_learn(fed: LocalFederation, tmp_path: Path) -> None:
    with fed.client("bank-a") as client:
        job = client.submit("model.linear_regression", _inputs(), receivers=["bank-a"],
                            parameters={"label": "credit_score", "alpha": 1.0}).wait(timeout=180)
        assert job.state == "SUCCEEDED", job.record
        model = client.model(job.id)
    x, y = _pooled()
    reference = Ridge(alpha=1.0).fit(x, y)
    assert model.features == FEATURES and model.label == "credit_score" and not model.shared
    # the documented accuracy: within 1e-3 of max(|b_j|, s_y / s_j / 10)
    floor = y.std() / x.std(axis=0) / 10
    assert np.all(np.abs(model.coefficients - reference.coef_) <= 1e-3 * np.maximum(np.abs(reference.coef_), floor))
    assert abs(model.metrics["r2"] - reference.score(x, y)) < 1e-3
    np.testing.assert_allclose(model.predict(x[:5]), reference.predict(x[:5]), rtol=1e-3)
    for bank in ("bank-b", "bank-c"):
        with fed.client(bank) as client, pytest.raises(NotFound):
            client.model(job.id)
    from click.testing import CliRunner

    from gateway.cli import main

    env = {"MPCGATE_GATEWAY": fed.addresses["bank-a"], "MPCGATE_PARTY": "bank-a", "MPCGATE_TLS_DIR": str(fed.pki_dir),
           "MPCGATE_CLIENT": "operator", "MPCGATE_TOKEN": fed.token("bank-a")}
    listed = CliRunner().invoke(main, ["models", "list"], env=env)
    assert listed.exit_code == 0 and job.id in listed.output and "r2=" in listed.output, listed.output
    shown = CliRunner().invoke(main, ["models", "show", job.id], env=env)
    assert shown.exit_code == 0 and "income" in shown.output and "(intercept)" in shown.output
    out = tmp_path / "model.onnx"
    exported = CliRunner().invoke(main, ["models", "export", job.id, "--out", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    weights = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    assert any(np.allclose(w.ravel(), model.coefficients, rtol=1e-6) for w in weights.values())


def test_a_shared_model_leaves_only_shares_which_rebuild_it(fed: LocalFederation) -> None:
    with fed.client("bank-a") as client:
        job = client.submit("model.linear_regression", _inputs(), receivers=["bank-a"],
                            parameters={"label": "credit_score", "keep_shared": True}).wait(timeout=180)
        assert job.state == "SUCCEEDED", job.record
        assert set(job.result().values) == {"r2"}  # metrics only
        model = client.model(job.id)
        assert model.shared and not model.values
        with pytest.raises(Exception, match="secret-shared"):
            model.coefficients  # noqa: B018
    shares = []
    for bank in BANKS:
        with fed.client(bank) as client:
            assert client.model(job.id).shared  # every party holds its share
        store = ModelStore(fed.root / bank / "gateway.db")
        shares.append(store.shares(job.id)["coefficients_z"])
        store.close()
        with sqlite3.connect(fed.root / bank / "gateway.db") as db:
            results = db.execute("SELECT result FROM job_results WHERE job_id = ?", (job.id,)).fetchall()
        assert bank == "bank-a" or not results
    gamma = sum(s for s, _ in shares) / shares[0][1]
    x, y = _pooled()
    reference = Ridge(alpha=0.0).fit(x, y)
    rebuilt = gamma * np.exp2(np.round(np.log2(reference.coef_ / gamma)))  # z units -> data units (powers of two)
    floor = y.std() / x.std(axis=0) / 10
    assert np.all(np.abs(rebuilt - reference.coef_) <= 1e-3 * np.maximum(np.abs(reference.coef_), floor))
    assert not np.allclose(shares[0][0] / shares[0][1], gamma, rtol=0.1), "one share alone is not the model"


def test_model_inputs_are_checked_at_submit(fed: LocalFederation) -> None:
    with fed.client("bank-a") as client:
        with pytest.raises(InvalidArgument, match="label"):
            client.submit("model.linear_regression", _inputs(), receivers=["bank-a"], parameters={"alpha": 1.0})
        with pytest.raises(InvalidArgument, match="missing from the inputs of bank-c"):
            client.submit("model.linear_regression", [*_inputs()[:2], ("bank-c", "loans", FEATURES)],
                          receivers=["bank-a"], parameters={"label": "credit_score"})
        with pytest.raises(InvalidArgument, match="exactly one party"):
            client.submit("model.linear_regression", _inputs(), receivers=["bank-a"], partitioning="vertical",
                          parameters={"label": "credit_score"})


def test_a_vertical_logistic_model_with_the_dealer_streams_its_epochs(fed: LocalFederation) -> None:
    """Labels at bank-a, features at all three, TTP: loss per epoch in WatchJob,
    accuracy and AUC near scikit-learn's, the model at the receiver."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    inputs = [("bank-a", "customers", ["income", "late"]), ("bank-b", "customers", ["debt"]),
              ("bank-c", "customers", ["age"])]
    with fed.client("bank-a") as client:
        job = client.submit("model.logistic_regression", inputs, receivers=["bank-a"], partitioning="vertical",
                            parameters={"label": "late", "epochs": 8, "seed": 1})
        events = list(job.watch(timeout=300))
        assert job.state == "SUCCEEDED", job.record
        # (an epoch's loss comes first, then, at the Hessian's refresh steps, "epoch k/8: the Hessian")
        epochs = [e.progress.phase for e in events if e.progress.phase.startswith("epoch") and "loss" in e.progress.phase]
        assert len(epochs) >= 2, [e.progress.phase for e in events]
        result = job.result()
        model = client.model(job.id)
    x, late = customers()
    test = entity_draws(np.array([f"c{i:05d}" for i in range(len(late))]), 1, "mpcgate") < 0.2
    center = x[~test].mean(axis=0)
    reference = LogisticRegression(max_iter=5000).fit(x[~test] - center, late[~test])
    assert abs(result["auc"][0] - roc_auc_score(late[test], reference.decision_function(x[test] - center))) <= 0.01
    # within 0.01 rounded up to whole rows (282 held out: 3 rows), plus the fixed point's rounding of the count
    rows = math.ceil(0.01 * test.sum())
    assert abs(result["accuracy"][0] - reference.score(x[test] - center, late[test])) <= rows / test.sum() + 1e-4
    assert model.features == ["income", "debt", "age"] and result.provider == "TTP"
    assert len(result["loss"]) == len(epochs) or len(result["loss"]) >= 2


def test_a_table_with_missing_cells_and_categories_trains_once_the_job_says_what_to_do_with_them(
        fed: LocalFederation) -> None:
    """A fifth of the numeric cells and a tenth of two text columns missing at
    every bank: the schema counts the gaps and lists the categories, a job that
    does not say what to do with the gaps is refused at review, and with
    `missing: indicator` (labels missing: rows dropped) it trains as
    scikit-learn's LogisticRegression() on the same imputed, one-hot design."""
    from sklearn.linear_model import LogisticRegression

    parts = [holey(b) for b in BANKS]
    pooled = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    inputs = [(b, "holey", [*FEATURES, "region", "product", "late"]) for b in BANKS]
    with fed.client("bank-b") as owner:
        schema = {c.name: (c.missing_count, list(c.categories)) for c in owner.get_dataset("holey").columns}
    assert schema["region"] == (int(np.sum(parts[1]["region"] == None)), REGIONS)  # noqa: E711
    assert schema["income"] == (int(np.isnan(parts[1]["income"]).sum()), [])
    with fed.client("bank-a") as client:
        with pytest.raises(InvalidArgument, match="missing cells .* parameter missing"):
            client.submit("model.logistic_regression", inputs, receivers=["bank-a"], parameters={"label": "late"})
        job = client.submit("model.logistic_regression", inputs, receivers=["bank-a"],
                            parameters={"label": "late", "missing": "indicator", "holdout": 0}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record
        model = client.model(job.id)
    labelled = ~np.isnan(pooled["late"])
    y = pooled["late"][labelled]
    features = {c: v[labelled] for c, v in pooled.items() if c != "late"}
    assert model.features == [*FEATURES, *(f"region={r}" for r in REGIONS), *(f"product={p}" for p in PRODUCTS),
                              *(f"{c}_missing" for c in features)]
    design = holey_design(features, list(model.features))
    reference = LogisticRegression(max_iter=5000).fit(design, y)
    mine = design @ model.coefficients + model.intercept > 0
    assert abs((mine == y).mean() - reference.score(design, y)) <= 0.02
    assert (mine == reference.predict(design)).mean() >= 0.97


def test_a_policy_can_require_shared_models(fed: LocalFederation) -> None:
    with fed.client("bank-b") as owner:
        strict = owner.get_dataset("loans").policy
        strict.shared_models_only = True
        owner.update_policy("loans", strict)
    try:
        with fed.client("bank-a") as client:
            job = client.submit("model.linear_regression", _inputs(), receivers=["bank-a"],
                                parameters={"label": "credit_score"})
            assert job.state == "REJECTED" and "keep_shared" in job.record.error.message
            shared = client.submit("model.linear_regression", _inputs(), receivers=["bank-a"],
                                   parameters={"label": "credit_score", "keep_shared": True})
            assert shared.wait(timeout=180).state == "SUCCEEDED"
    finally:
        with fed.client("bank-b") as owner:
            strict.shared_models_only = False
            owner.update_policy("loans", strict)


def test_own_coefficients_leave_each_bank_only_its_part(fed: LocalFederation) -> None:
    """A vertical model whose every bank receives only its own features'
    coefficients: stored as a partial model at each bank, the parts summing to
    scikit-learn's model; a dataset whose policy demands this refuses the rest."""
    from sklearn.linear_model import LinearRegression

    inputs = [("bank-a", "customers", ["income", "late"]), ("bank-b", "customers", ["debt"]),
              ("bank-c", "customers", ["age"])]
    with _wider(fed, own_coefficients_only="bank-b"), fed.client("bank-a") as client:
        whole = client.submit("model.linear_regression", inputs, receivers=["bank-a"], partitioning="vertical",
                              parameters={"label": "late"})
        assert whole.state == "REJECTED" and "own_coefficients" in whole.record.error.message
        job = client.submit("model.linear_regression", inputs, receivers=BANKS, partitioning="vertical",
                            parameters={"label": "late", "own_coefficients": True})
        assert job.wait(timeout=180).state == "SUCCEEDED", job.record
    x, late = customers()
    reference = LinearRegression().fit(x, late)
    intercept = 0.0
    for bank, features in (("bank-a", ["income"]), ("bank-b", ["debt"]), ("bank-c", ["age"])):
        with fed.client(bank) as client:
            model = client.model(job.id)
        assert model.partial and model.features == features
        j = FEATURES.index(features[0])
        assert abs(model.coefficients[0] - reference.coef_[j]) <= 1e-3 * abs(reference.coef_[j])
        intercept += model.intercept
    assert abs(intercept - reference.intercept_) <= 1e-3 * (abs(reference.intercept_)
                                                             + np.abs(reference.coef_ * x.mean(axis=0)).sum())


@contextlib.contextmanager
def _wider(fed: LocalFederation, own_coefficients_only: str = "") -> Iterator[None]:
    """Every bank's `customers` released to every bank, and scorecards allowed
    (`own_coefficients_only` at the bank named), for the block; then as before."""
    policies = {}
    for bank in BANKS:
        with fed.client(bank) as owner:
            policies[bank] = owner.get_dataset("customers").policy
            wider = dpb.Policy()
            wider.CopyFrom(policies[bank])
            wider.ClearField("allowed_result_receivers")
            wider.allowed_result_receivers.extend(BANKS)
            wider.allowed_job_kinds.extend(["model.scorecard", "features.select"])
            wider.own_coefficients_only = bank == own_coefficients_only
            owner.update_policy("customers", wider)
    try:
        yield
    finally:
        for bank in BANKS:
            with fed.client(bank) as owner:
                owner.update_policy("customers", policies[bank])


def test_a_scorecard_is_filed_and_applied_by_each_bank_to_its_own_columns(fed: LocalFederation, tmp_path: Path) -> None:
    """Issue 27: a vertical card reaches each bank as its own columns' points; each
    files it (CSV, JSON) and scores its own rows with it (`mpcgate jobs scorecard`).
    The bins a bank reads off the labels regroup its rows into exactly the
    released counts, and the banks' partial scores add up to the card's score,
    which ranks the customers as scikit-learn's logistic regression on the rows'
    weights of evidence does."""
    from click.testing import CliRunner
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from gateway.cli import main
    from gateway.client.results import Result
    from gateway.client.scorecards import Scorecard
    from mpc.errors import FailedPrecondition

    inputs = [("bank-a", "customers", ["income", "late"]), ("bank-b", "customers", ["debt"]),
              ("bank-c", "customers", ["age"])]
    with _wider(fed), fed.client("bank-a") as client:
        job = client.submit("model.scorecard", inputs, receivers=BANKS, partitioning="vertical",
                            parameters={"label": "late", "holdout": 0}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record
    x, late = customers()
    total, woe = np.zeros(len(late)), []
    for j, bank in enumerate(BANKS):  # income at bank-a, debt at bank-b, age at bank-c
        with fed.client(bank) as client:
            card = Scorecard.from_result(client.job(job.id).result())
        assert [c.name for c in card.columns] == [FEATURES[j]]
        bins = card.columns[0]
        located = bins.located(x[:, j])
        np.testing.assert_array_equal(np.bincount(located, minlength=len(bins.labels)), bins.table[:, 2])
        np.testing.assert_array_equal(np.bincount(located, weights=late, minlength=len(bins.labels)), bins.table[:, 3])
        total += card.score({FEATURES[j]: x[:, j]})
        woe.append(bins.table[located, 1])
    reference = LogisticRegression().fit(np.column_stack(woe), late)
    assert abs(roc_auc_score(late, -total) - roc_auc_score(late, reference.decision_function(np.column_stack(woe)))) < 1e-3
    env = {"MPCGATE_GATEWAY": fed.addresses["bank-b"], "MPCGATE_PARTY": "bank-b", "MPCGATE_TLS_DIR": str(fed.pki_dir),
           "MPCGATE_CLIENT": "operator", "MPCGATE_TOKEN": fed.token("bank-b")}
    shown = CliRunner().invoke(main, ["jobs", "scorecard", job.id], env=env)
    assert shown.exit_code == 0 and "debt" in shown.output and "(-inf, " in shown.output, shown.output
    for name in ("card.csv", "card.json"):
        written = CliRunner().invoke(main, ["jobs", "scorecard", job.id, "--out", str(tmp_path / name)], env=env)
        assert written.exit_code == 0, written.output
    import csv
    import json

    with fed.client("bank-b") as client:
        card = Scorecard.from_result(client.job(job.id).result())
    filed = list(csv.DictReader((tmp_path / "card.csv").open()))
    assert [float(r["points"]) for r in filed] == pytest.approx(card.columns[0].table[:, 0].tolist(), abs=1e-9)
    as_json = json.loads((tmp_path / "card.json").read_text())
    bins_json = as_json["columns"][0]["bins"]
    assert as_json["columns"][0]["name"] == "debt" and bins_json[0]["lower"] is None and bins_json[-1]["upper"] is None
    assert [b["upper"] for b in bins_json[:-1]] == pytest.approx(card.columns[0].cuts.tolist())
    rows = tmp_path / "new.csv"
    demo_data.write_csv(rows, x[:100, 1:2], ["debt"], key=np.array([f"n{i}" for i in range(100)]))
    applied = CliRunner().invoke(main, ["jobs", "scorecard", job.id, "--apply", str(rows), "--scores",
                                        str(tmp_path / "scores.csv")], env=env)
    assert applied.exit_code == 0, applied.output
    scores = [float(r["score"]) for r in csv.DictReader((tmp_path / "scores.csv").open())]
    assert scores == pytest.approx(card.score({"debt": x[:100, 1]}).tolist(), abs=1e-9)
    demo_data.write_csv(rows, x[:10, :1], ["income"], key=np.array([f"n{i}" for i in range(10)]))
    refused = CliRunner().invoke(main, ["jobs", "scorecard", job.id, "--apply", str(rows)], env=env)
    assert refused.exit_code != 0 and "lack the card's columns ['debt']" in refused.output, refused.output
    with pytest.raises(FailedPrecondition, match="no scorecard tables"):
        Scorecard.from_result(Result("j", {"r2": np.array([0.5])}, {"r2": ["r2"]}, "TTP"))


PIPELINE = """
name = "credit scorecard"
partitioning = "vertical"
receivers = ["bank-a"]
purpose = "a scorecard with the partner banks"

[inputs]
bank-a = { dataset = "customers", columns = ["income", "late"] }
bank-b = { dataset = "customers", columns = ["debt"] }
bank-c = { dataset = "customers", columns = ["age"] }

[[stages]]
name = "screen"
kind = "features.select"
parameters = { label = "late", iv_min = 0.1, max_vif = 5 }

[[stages]]
name = "card"
kind = "model.scorecard"
columns = "screen"
parameters = { label = "late", pdo = PDO }
receivers = ["bank-a", "bank-b", "bank-c"]
"""


def test_a_pipeline_screens_then_fits_the_card_on_the_columns_kept(fed: LocalFederation, tmp_path: Path) -> None:
    """Issue 27's pipeline, first part: one TOML file, `mpcgate pipelines show`
    lists each stage's releases, `run` submits the stages in order from bank-a,
    the scorecard reading only the columns the screen kept (income's IV, ~0.04,
    is below iv_min; debt's ~0.5 and age's ~0.17 pass); a stage refused stops the
    pipeline by name, and nothing after it is submitted."""
    import json

    from click.testing import CliRunner

    from gateway.cli import main

    spec = tmp_path / "credit.toml"
    spec.write_text(PIPELINE.replace("PDO", "20"))
    env = {"MPCGATE_GATEWAY": fed.addresses["bank-a"], "MPCGATE_PARTY": "bank-a", "MPCGATE_TLS_DIR": str(fed.pki_dir),
           "MPCGATE_CLIENT": "operator", "MPCGATE_TOKEN": fed.token("bank-a")}
    shown = CliRunner().invoke(main, ["pipelines", "show", str(spec)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "stage screen: features.select to bank-a\n" in shown.output, shown.output
    assert "stage card: model.scorecard to bank-a, bank-b, bank-c, columns from stage screen" in shown.output
    assert "`selected`" in shown.output and "points" in shown.output, shown.output
    with _wider(fed):
        ran = CliRunner().invoke(main, ["pipelines", "run", str(spec), "--out", str(tmp_path / "out")], env=env)
    assert ran.exit_code == 0, ran.output
    assert json.loads((tmp_path / "out" / "screen.json").read_text())["selected"] == {"income": 0, "debt": 1, "age": 1}
    card = json.loads((tmp_path / "out" / "card.json").read_text())  # bank-a holds the label and no card column
    assert "auc" in card and not any(name.startswith("points.") for name in card), card.keys()
    with fed.client("bank-a") as client:
        job = client.list_jobs(kind="model.scorecard")[0]
        assert {i.party_id: list(i.columns) for i in job.record.spec.inputs} == {
            "bank-a": ["late"], "bank-b": ["debt"], "bank-c": ["age"]}
        assert "stage card" in job.record.spec.purpose
        before = len(client.list_jobs(kind="stats.describe"))
    spec.write_text(PIPELINE.replace("PDO", "-1") + """
[[stages]]
name = "after"
kind = "stats.describe"
""")
    with _wider(fed):
        failed = CliRunner().invoke(main, ["pipelines", "run", str(spec)], env=env)
    assert failed.exit_code != 0, failed.output
    assert "stage 'card' (model.scorecard) was refused at submit" in failed.output and "pdo" in failed.output
    assert "the stages after it did not run" in failed.output, failed.output
    with fed.client("bank-a") as client:
        assert len(client.list_jobs(kind="stats.describe")) == before  # nothing after the card was submitted
