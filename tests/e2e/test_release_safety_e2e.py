"""Releases cannot be turned into row lookups (issue 25: a curious partner bank's
attacks, each with only jobs every party's policy allowed). Real gateway
processes on loopback with mutual TLS, a dealer and CrypTen workers; each test
is a regression for one attack, named in its docstring."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.federation import LocalFederation

pytestmark = pytest.mark.multiprocess

BANKS = demo_data.INSTITUTIONS
ROWS = 240
TARGETS = 20
MODELS = ["model.linear_regression", "model.logistic_regression", "model.mlp", "psi.intersect", "features.woe_iv",
          "stats.stability", "features.select", "model.scorecard"]


def policy(columns: list[str], **extra: object) -> dpb.Policy:
    fields: dict[str, object] = {"min_rows": 20, **extra}
    return dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=MODELS, allowed_columns=columns,
                      allowed_result_receivers=BANKS, **fields)  # type: ignore[arg-type]


def customers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(25)
    keys = np.array([f"c{i:05d}" for i in range(ROWS)])
    income = rng.normal(60, 15, ROWS)
    target = (rng.random(ROWS) < 0.4).astype(float)
    return keys, income, target


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    """bank-c holds the label `target`; bank-b a feature; bank-a, the attacker,
    registers at its own gateway one indicator column per targeted customer."""
    keys, income, target = customers()
    indicators = np.zeros((ROWS, TARGETS))
    indicators[np.arange(TARGETS), np.arange(TARGETS)] = 1.0
    names = [f"is_{k}" for k in keys[:TARGETS]]
    quotas = {"bank-a": "quotas = { job_cost = 1e9, operator_cost_per_day = 2e9 }",
              "bank-b": 'quotas = { job_cost = 1e9, over = "manual" }'}
    with LocalFederation(tmp_path_factory.mktemp("release-safety"), BANKS, dealer=True,
                         party_config=quotas) as federation:
        demo_data.write_csv(federation.data_dir("bank-a") / "probe.csv", indicators, names, key=keys)
        demo_data.write_csv(federation.data_dir("bank-b") / "income.csv", income[:, None], ["income"], key=keys)
        demo_data.write_csv(federation.data_dir("bank-c") / "outcomes.csv", target[:, None], ["target"], key=keys)
        federation.start()
        for bank, name, columns in (("bank-a", "probe", names), ("bank-b", "income", ["income"]),
                                    ("bank-c", "outcomes", ["target"])):
            with federation.client(bank) as client:
                client.register_dataset(name, f"{name}.csv", policy(columns, min_rows=1 if bank == "bank-a" else 20),
                                        key_column="customer_id")
        yield federation


def _inputs(probe: list[str] | None = None) -> list[tuple[str, str, list[str]]]:
    names = [f"is_{k}" for k in customers()[0][:TARGETS]] if probe is None else probe
    return [("bank-a", "probe", names), ("bank-c", "outcomes", ["target"])]


def _set_policy(fed: LocalFederation, bank: str, dataset: str, changed: dpb.Policy) -> None:
    with fed.client(bank) as owner:
        owner.update_policy(dataset, changed)


@pytest.mark.parametrize("kind, parameters", [
    ("model.linear_regression", {}),
    ("model.linear_regression", {"alpha": 10.0, "own_coefficients": True}),
    ("model.logistic_regression", {"holdout": 0.0}),
    ("model.mlp", {"holdout": 0.0, "hidden": [4], "epochs": 1}),
])
def test_indicator_columns_do_not_read_another_banks_labels(fed: LocalFederation, kind: str, parameters: dict) -> None:
    """Attack 1: bank-a's indicator columns against bank-c's label, receiver
    bank-a, gave 20 of 20 labels (coefficient plus intercept, or its sign). Now
    every party refuses to release: each row's leverage is bounded under MPC."""
    receivers = ["bank-a", "bank-c"] if parameters.get("own_coefficients") else ["bank-a"]
    with fed.client("bank-a") as client:
        job = client.submit(kind, _inputs(), receivers=receivers, partitioning="vertical",
                            parameters={"label": "target", **parameters}).wait(timeout=300)
        assert job.state == "FAILED", job.record
        assert "leverage" in job.record.error.message and job.record.error.reason == "POLICY_REFUSED", job.record.error
        with pytest.raises(Exception, match="no result"):
            job.result()


def test_indicator_columns_give_no_weights_of_evidence(fed: LocalFederation) -> None:
    """The attack on binning: bank-a cuts each indicator column between 0 and 1, so
    one bin holds its targeted customer alone, and would read the label off that
    bin's WOE (or its events), a stability index's bins, or whether the column
    passes a selection's IV floor, or a scorecard's points. Every bin of fewer than
    k events or non-events is merged (k bank-c's min_group_size, 20): each column is
    one bin, WOE 0, IV 0, and a scorecard has no column to fit."""
    names = [f"is_{k}" for k in customers()[0][:3]]
    with fed.client("bank-a") as client:
        job = client.submit("features.woe_iv", _inputs(names), receivers=["bank-a"], partitioning="vertical",
                            parameters={"label": "target", "splits": {n: [0.5] for n in names}}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record.error
        result = job.result()
    target = customers()[2]
    for name in names:
        table = result[f"woe.{name}"]
        assert table.shape == (1, 3) and abs(table[0, 0]) < 1e-3, table  # one group: every row
        assert table[0, 1] == ROWS and table[0, 2] == target.sum()
    assert np.all(np.abs(result["iv"]) < 1e-3)
    with fed.client("bank-a") as client:  # the label as a stability index's period: the same bins, merged alike
        job = client.submit("stats.stability", _inputs(names), receivers=["bank-a"], partitioning="vertical",
                            parameters={"period": "target", "splits": {n: [0.5] for n in names}}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record.error
        result = job.result()
    for name in names:
        assert result[f"bins.{name}"].tolist() == [[ROWS - target.sum(), target.sum()]]
    assert np.all(np.abs(result["stability"]) < 1e-3)
    with fed.client("bank-a") as client:  # a selection at the smallest IV: a one-row bin would pass it
        job = client.submit("features.select", _inputs(names), receivers=["bank-a"], partitioning="vertical",
                            parameters={"label": "target", "splits": {n: [0.5] for n in names},
                                        "iv_min": 1e-6}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record.error
        assert job.result()["selected"].tolist() == [0.0] * len(names)  # one bin each: IV 0, whatever the labels
    with fed.client("bank-a") as client:  # a scorecard on them: no column keeps two bins, so no model and no points
        job = client.submit("model.scorecard", _inputs(names), receivers=["bank-a"], partitioning="vertical",
                            parameters={"label": "target", "splits": {n: [0.5] for n in names}, "min_share": 0,
                                        "holdout": 0}).wait(timeout=300)
        assert job.state == "FAILED" and "two bins" in job.record.error.message, job.record.error


def test_an_honest_vertical_model_is_still_released(fed: LocalFederation) -> None:
    """The same banks, an ordinary feature: the model is released, and it matches
    scikit-learn on the intersected rows."""
    from sklearn.linear_model import LogisticRegression

    _, income, target = customers()
    with fed.client("bank-b") as client:
        job = client.submit("model.logistic_regression", [("bank-b", "income", ["income"]),
                                                          ("bank-c", "outcomes", ["target"])],
                            receivers=["bank-b"], partitioning="vertical",
                            parameters={"label": "target", "holdout": 0.0}).wait(timeout=300)
        assert job.state == "SUCCEEDED", job.record
        result = job.result()
    reference = LogisticRegression(C=1.0).fit(income[:, None], target)
    assert abs(result["coefficients"][0] - reference.coef_[0, 0]) < 0.01 + 0.05 * abs(reference.coef_[0, 0])


def test_the_label_holder_decides_how_its_label_leaves(fed: LocalFederation) -> None:
    """Attack 1, the rules: bank-c's own_coefficients_only did not stop bank-a
    (the indicator columns were bank-a's own). Now bank-c's label_release and
    own_coefficients_only are checked at bank-c, at review."""
    honest = [("bank-b", "income", ["income"]), ("bank-c", "outcomes", ["target"])]
    try:
        _set_policy(fed, "bank-c", "outcomes", policy(["target"], label_release=dpb.LABEL_RELEASE_SHARED_ONLY))
        with fed.client("bank-b") as client:
            job = client.submit("model.linear_regression", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target"})
            assert job.state == "REJECTED" and "only as secret shares" in job.record.error.message, job.record
            assert job.record.error.party_id == "bank-c"
            shared = client.submit("model.linear_regression", honest, receivers=["bank-b"], partitioning="vertical",
                                   parameters={"label": "target", "keep_shared": True}).wait(timeout=300)
            assert shared.state == "SUCCEEDED", shared.record
            assert set(shared.result().values) == {"r2"}
        _set_policy(fed, "bank-c", "outcomes", policy(["target"], label_release=dpb.LABEL_RELEASE_DP))
        with fed.client("bank-b") as client:
            job = client.submit("model.logistic_regression", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target"})
            assert job.state == "REJECTED" and "differential privacy" in job.record.error.message, job.record
            job = client.submit("features.woe_iv", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target"})
            assert job.state == "REJECTED" and "woe: false" in job.record.error.message, job.record
            ivs = client.submit("features.woe_iv", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target", "woe": False}).wait(timeout=300)
            assert ivs.state == "SUCCEEDED", ivs.record
            assert set(ivs.result().values) == {"count", "iv"}
            job = client.submit("stats.stability", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"period": "target"})  # (the label as a period: its bins' counts)
            assert job.state == "REJECTED" and "table: false" in job.record.error.message, job.record
            job = client.submit("model.scorecard", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target"})  # (its points: each bin's events, through the WOE)
            assert job.state == "REJECTED" and "woe: false" in job.record.error.message, job.record
        _set_policy(fed, "bank-c", "outcomes", policy(["target"], own_coefficients_only=True))
        with fed.client("bank-b") as client:
            job = client.submit("model.linear_regression", honest, receivers=["bank-b", "bank-c"],
                                partitioning="vertical", parameters={"label": "target", "own_coefficients": True})
            assert job.state == "REJECTED" and "rest on its labels" in job.record.error.message, job.record
            job = client.submit("model.scorecard", honest, receivers=["bank-b", "bank-c"],
                                partitioning="vertical", parameters={"label": "target"})
            assert job.state == "REJECTED" and "scorecard points rest on its labels" in job.record.error.message, \
                job.record
    finally:
        _set_policy(fed, "bank-c", "outcomes", policy(["target"]))


def test_max_leverage_is_the_owners_to_set(fed: LocalFederation) -> None:
    """A policy may tighten the bound (and a bad value is refused by name): at
    max_leverage 0.01 an ordinary model on 240 rows is refused at bank-b's word
    too, though bank-c's policy keeps the default."""
    from gateway.contract import policies
    from mpc.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="max_leverage"):
        policies.parse({"max_leverage": 1.5})
    assert policies.describe(policies.parse({}))["max_leverage"] == policies.DEFAULT_MAX_LEVERAGE
    honest = [("bank-b", "income", ["income"]), ("bank-c", "outcomes", ["target"])]
    try:
        _set_policy(fed, "bank-b", "income", policy(["income"], max_leverage=0.01))
        with fed.client("bank-b") as client:
            job = client.submit("model.linear_regression", honest, receivers=["bank-b"], partitioning="vertical",
                                parameters={"label": "target"}).wait(timeout=300)
            error = job.record.error  # (each party's own columns are checked first: at 0.01 they reach it already)
            assert job.state == "FAILED" and error.reason == "POLICY_REFUSED" and "leverage" in error.message, error
            assert "reaches 0.01" in error.message or "exceeds 0.01" in error.message, error
    finally:
        _set_policy(fed, "bank-b", "income", policy(["income"]))


def _dp_policy(columns: list[str], bounds: dict[str, tuple[float, float]], **extra: object) -> dpb.Policy:
    changed = policy(columns, **extra)
    changed.allowed_job_kinds.append("stats.describe")
    changed.dp_budget.CopyFrom(dpb.PrivacyBudget(epsilon=1.0))
    for column, (low, high) in bounds.items():
        changed.dp_bounds[column].lower, changed.dp_bounds[column].upper = low, high
    return changed


def _dp_describe(fed: LocalFederation, dataset: str) -> object:
    with fed.client("bank-b") as client:
        return client.submit("stats.describe", [("bank-b", dataset, ["income"]), ("bank-c", "outcomes", ["target"])],
                             receivers=["bank-b"], partitioning="vertical",
                             parameters={"dp": {"epsilon": 1.0}}).wait(timeout=300)


def test_a_budget_belongs_to_the_rows_not_to_a_name(fed: LocalFederation) -> None:
    """Attack 3: the same file registered twice under two names got two budgets
    (two epsilon-1 jobs on the same rows against a budget of 1), and a subset of
    the rows in another file a third. Now the file's content, or the owner's
    declared privacy unit, carries one budget; and deleting the charges from the
    budget table is reported by `mpcgate audit verify`."""
    from click.testing import CliRunner

    from gateway.cli import main

    bounds = {"income": (0.0, 150.0)}
    keys, income, _ = customers()
    demo_data.write_csv(fed.data_dir("bank-b") / "income_subset.csv", income[:150, None], ["income"], key=keys[:150])
    outcomes = _dp_policy(["target"], {"target": (0.0, 1.0)})
    outcomes.dp_budget.epsilon = 100.0  # bank-c's budget is not the subject here
    _set_policy(fed, "bank-c", "outcomes", outcomes)
    try:
        with fed.client("bank-b") as owner:
            owner.update_policy("income", _dp_policy(["income"], bounds))
            owner.register_dataset("income_again", "income.csv", _dp_policy(["income"], bounds), key_column="customer_id")
            owner.register_dataset("income_subset", "income_subset.csv", _dp_policy(["income"], bounds),
                                   key_column="customer_id")
        first = _dp_describe(fed, "income")
        assert first.state == "SUCCEEDED", first.record
        again = _dp_describe(fed, "income_again")
        assert again.state == "REJECTED" and "privacy budget" in again.record.error.message, again.record
        assert again.record.error.party_id == "bank-b"
        with fed.client("bank-b") as owner:  # the owner declares that both files hold the same customers
            owner.update_policy("income", _dp_policy(["income"], bounds, privacy_unit="customer"))
            owner.update_policy("income_subset", _dp_policy(["income"], bounds, privacy_unit="customer"))
        subset = _dp_describe(fed, "income_subset")
        assert subset.state == "REJECTED" and "privacy budget" in subset.record.error.message, subset.record
        database = fed.root / "bank-b" / "gateway.db"
        assert CliRunner().invoke(main, ["audit", "verify", "--db", str(database)]).exit_code == 0
        import sqlite3

        with sqlite3.connect(database) as db:  # an administrator "resets" the budget
            db.execute("DELETE FROM dp_charges WHERE job_id = ?", (first.id,))
        refused = CliRunner().invoke(main, ["audit", "verify", "--db", str(database)])
        assert refused.exit_code != 0 and "budgets do NOT match" in refused.output and first.id in refused.output
    finally:
        with fed.client("bank-b") as owner:
            owner.update_policy("income", policy(["income"]))
        _set_policy(fed, "bank-c", "outcomes", policy(["target"]))


def test_intersection_probes_are_bounded_at_the_probed_party(fed: LocalFederation) -> None:
    """Attack 2: bank-a registered 540 guessed customer ids and learnt from
    psi.intersect which of them bank-b holds; padded with ids learnt before, the
    probe passed min_intersection_size, whose refusal stated the size. Now
    bank-b's max_key_ratio refuses a probe with few hits without telling a size,
    intersections_per_day bounds the padded probes, and bank-b audits each
    intersection with its set sizes."""
    keys, _, _ = customers()
    guesses = np.concatenate([keys[:40], [f"c{i:05d}" for i in range(90_000, 90_500)]])  # 40 hits in 540
    padded = np.concatenate([keys[40:240], keys[:20], [f"c{i:05d}" for i in range(91_000, 91_020)]])
    for name, ids in (("guesses", guesses), ("padded", padded)):
        demo_data.write_csv(fed.data_dir("bank-a") / f"{name}.csv", np.zeros((len(ids), 1)), ["x"], key=ids)
        with fed.client("bank-a") as owner:
            owner.register_dataset(name, f"{name}.csv", policy(["x"], min_rows=1), key_column="customer_id",
                                   replace=True)
    _set_policy(fed, "bank-b", "income", policy(["income"], max_key_ratio=2.0, intersections_per_day=2))
    try:
        def probe(name: str) -> object:
            with fed.client("bank-a") as client:
                return client.submit("psi.intersect", [("bank-a", name, ["x"]), ("bank-b", "income", ["income"])],
                                     receivers=["bank-a"], partitioning="vertical").wait(timeout=300)

        refused = probe("guesses")
        assert refused.state == "FAILED" and "bank-b refused" in refused.record.error.message, refused.record
        assert "40" not in refused.record.error.message and "540" not in refused.record.error.message
        assert probe("padded").state == "SUCCEEDED"  # one padded probe passes the ratio: it is counted
        third = probe("padded")
        assert third.state == "REJECTED" and "intersections (vertical jobs) per counterparty" in third.record.error.message
        assert third.record.error.party_id == "bank-b"
        import json
        import sqlite3

        with sqlite3.connect(fed.root / "bank-b" / "gateway.db") as db:
            audited = [json.loads(d) for (d,) in db.execute(
                "SELECT details FROM audit_log WHERE action = 'psi.intersection' AND subject = ?", (refused.id,))]
        assert audited == [{"dataset_keys": str(ROWS), "common": "40", "others_keys": "bank-a:540"}]
    finally:
        _set_policy(fed, "bank-b", "income", policy(["income"]))


def test_a_model_is_no_oracle_for_one_row_queries_or_unbounded_probing(fed: LocalFederation) -> None:
    """Attack 4: with crafted rows (its own policy: min_rows 1) a party ran 31
    one-row predicts to trace a network's local linear map, and 1000 crafted rows
    distilled a surrogate. Now the model's holder refuses a job on fewer rows than
    its policy's min_rows_per_job (default 20) and counts each data party's rows
    against max_rows_per_party; every query is audited at the holder."""
    import torch

    rng = np.random.default_rng(4)
    for name, rows in (("one_row", 1), ("crafted", 150)):
        demo_data.write_csv(fed.data_dir("bank-b") / f"{name}.csv", rng.normal(size=(rows, 1)), ["x"])
        with fed.client("bank-b") as owner:
            crafted = policy(["x"], min_rows=1)
            crafted.allowed_job_kinds.append("model.predict")
            owner.register_dataset(name, f"{name}.csv", crafted)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    model_policy = {"allowed_parties": ["bank-b"], "allowed_datasets": ["bank-b/*"],
                    "allowed_result_receivers": ["bank-b"], "allowed_job_kinds": ["model.predict"]}
    with fed.client("bank-a") as holder:
        holder.register_model("scorer", net, [1], model_policy, output="sigmoid")

    def query(dataset: str) -> object:
        with fed.client("bank-b") as client:
            return client.submit("model.predict", [("bank-b", dataset, ["x"])], receivers=["bank-b"],
                                 model=("scorer", ["bank-a"])).wait(timeout=300)

    one = query("one_row")
    assert one.state == "FAILED" and "bank-a refused" in one.record.error.message, one.record
    assert "min_rows_per_job" in one.record.error.message
    with fed.client("bank-a") as holder:
        holder.set_model_policy("scorer", {**model_policy, "max_rows_per_party": 200})
    assert query("crafted").state == "SUCCEEDED"
    again = query("crafted")
    assert again.state == "FAILED" and "50 are left (max_rows_per_party)" in again.record.error.message, again.record
    import json
    import sqlite3

    with sqlite3.connect(fed.root / "bank-a" / "gateway.db") as db:
        queries = [json.loads(d) for (d,) in db.execute("SELECT details FROM audit_log WHERE action = 'model.query'")]
    assert queries == [{"model": "scorer", "rows": "150", "parties": "bank-b"}]


def test_a_job_s_cost_is_weighed_before_it_runs(fed: LocalFederation) -> None:
    """Attack 5: one operator held a job slot at every party for an hour with a
    4 x 1024 MLP over 200 epochs on 569 rows. Now its estimate (rows x parameters
    x epochs) meets each gateway's quotas: RESOURCE_EXHAUSTED at submit where the
    coordinator's quota refuses, a wait for approval where a party's says so,
    and an operator's daily total at its own gateway."""
    from mpc.errors import ResourceExhausted

    huge = {"label": "target", "hidden": [1024] * 4, "epochs": 200, "holdout": 0.0}
    with fed.client("bank-a") as client, pytest.raises(ResourceExhausted, match=r"quotas.job_cost") as refused:
        client.submit("model.mlp", _inputs(), receivers=["bank-a"], partitioning="vertical", parameters=huge)
    assert "240 rows x 3171329 parameters x 200 epochs" in str(refused.value) and "1e+09" in str(refused.value)
    with fed.client("bank-c") as client:  # bank-c sets no quota; bank-b holds costly jobs for its approval
        held = client.submit("model.mlp", [("bank-b", "income", ["income"]), ("bank-c", "outcomes", ["target"])],
                             receivers=["bank-c"], partitioning="vertical", parameters=huge)
        assert held.state == "AWAITING_APPROVAL", held.record
        assert {p.party_id: p.state for p in held.record.parties}["bank-b"] == jobs_state("AWAITING_APPROVAL")
        held.cancel()
        refused = client.submit("model.mlp", _inputs(), receivers=["bank-c"], partitioning="vertical", parameters=huge)
        assert refused.state == "REJECTED" and refused.record.error.party_id == "bank-a", refused.record  # a participant
        assert "quotas.job_cost" in refused.record.error.message
    daily = {"label": "target", "hidden": [256, 256], "epochs": 50, "holdout": 0.0}  # 8.6e8 units on 240 rows
    mallory = fed.client("bank-a", fed.token("bank-a", subject="mallory"))
    with mallory:
        for _ in range(2):
            job = mallory.submit("model.mlp", _inputs(), receivers=["bank-a"], partitioning="vertical", parameters=daily)
            job.cancel()
        with pytest.raises(ResourceExhausted, match="operator_cost_per_day"):
            mallory.submit("model.mlp", _inputs(), receivers=["bank-a"], partitioning="vertical", parameters=daily)
    with fed.client("bank-a") as client:  # another operator is not charged mallory's jobs
        job = client.submit("model.mlp", _inputs(), receivers=["bank-a"], partitioning="vertical", parameters=daily)
        job.cancel()


def jobs_state(name: str) -> int:
    from gateway.api.gateway.v1 import jobs_pb2

    return jobs_pb2.JobState.Value(f"JOB_STATE_{name}")
