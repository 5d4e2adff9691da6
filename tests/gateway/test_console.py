"""The console's pieces without a browser: the policy editor's TOML (it must read
back to the very policy shown, or an owner saving an untouched page would change
it), its list of changes, and a result turned into tables and pictures (a
withheld value is never drawn as a number). The pages themselves are tested in
a browser against real gateways: tests/e2e/test_console_e2e.py."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.client.results import Result
from gateway.console import charts
from gateway.contract import policies

NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)  # quotes, controls, emoji


@st.composite
def policies_(draw: st.DrawFn) -> dpb.Policy:
    raw = {key: draw(st.lists(NAMES, max_size=3)) for key in policies.LISTS}
    raw |= {key: draw(st.integers(0, 10**6)) for key in ("min_rows", "min_group_size", "min_intersection_size")}
    raw |= {key: draw(st.booleans()) for key in ("allow_extremes", "require_dp", "require_purpose")}
    raw["max_leverage"] = draw(st.floats(1e-6, 1.0))
    raw["approval"] = draw(st.sampled_from(sorted(policies.APPROVAL)))
    raw["privacy_unit"] = draw(st.sampled_from(["", "customer", "household id"]))
    if draw(st.booleans()):
        raw["dp_budget"] = {"epsilon": draw(st.floats(1e-3, 1e3)), "delta": draw(st.floats(0, 0.5))}
    lower = draw(st.floats(-1e12, 1e12))
    raw["dp_bounds"] = {name: [lower, lower + draw(st.floats(1e-3, 1e12))] for name in draw(st.lists(NAMES, max_size=2))}
    return policies.parse(raw)


@settings(max_examples=200, deadline=None)
@given(policies_())
def test_the_editor_s_toml_reads_back_to_the_same_policy(policy: dpb.Policy) -> None:
    assert policies.parse(tomllib.loads(policies.to_toml(policy))) == policy


def test_the_changes_are_the_fields_that_differ_before_and_after() -> None:
    old = policies.parse({"allowed_parties": ["bank-a"], "min_rows": 10, "dp_bounds": {"age": [18, 100]}})
    new = policies.parse({"allowed_parties": ["bank-a", "bank-b"], "min_rows": 10, "approval": "manual",
                          "dp_budget": {"epsilon": 2.0}})
    assert policies.changes(old, new) == [
        ("allowed_parties", '["bank-a"]', '["bank-a", "bank-b"]'), ("dp_bounds", "{ age = [18.0, 100.0] }", "{  }"),
        ("dp_budget", "(none)", "{ epsilon = 2.0, delta = 0.0 }"), ("approval", '"automatic"', '"manual"')]
    assert policies.changes(new, new) == []


def _result(**values: tuple[np.ndarray, list[str], list[str]]) -> Result:
    return Result("j1", {k: v[0] for k, v in values.items()}, {k: v[1] for k, v in values.items()}, "TTP",
                  {k: v[2] for k, v in values.items() if v[2]})


def test_results_become_tables_and_pictures_and_withheld_cells_stay_withheld() -> None:
    result = _result(
        mean=(np.array([1234.5, math.nan]), ["income", "age"], []),
        histogram=(np.array([[3.0, math.nan, 7.0], [1.0, 2.0, 3.0]]), ["income", "age"], ["[0, 1)", "[1, 2)", "[2, 3]"]),
        correlation=(np.array([[1.0, -0.5], [-0.5, 1.0]]), ["income", "age"], []),
        loss=(np.array([0.69, 0.5, 0.45]), ["training"], []),
        lift=(np.array([[50, 30, 0.6, 0.8, 30, 0.6, 2.0, 2.0], [50, 20, 0.4, 0.2, 50, 1.0, 1.3, 1.0]]),
              ["decile 1", "deciles 2-10"], ["rows", "events", "event rate", "mean score", "cumulative events", "gain",
                                             "lift", "cumulative lift"]),
    )
    tables = {t["name"]: t for t in charts.tables(result)}
    assert tables["mean"]["columns"] == ["income", "age"] and tables["mean"]["rows"] == [["mean", "1,234.5", "withheld"]]
    assert tables["histogram"]["rows"][0] == ["income", "3", "withheld", "7"]
    drawn = charts.of(result)
    bars = [c for c in drawn if c["type"] == "bar"]
    assert [c["title"] for c in bars] == ["histogram of income", "histogram of age"]
    assert bars[0]["series"][0]["values"] == [3.0, None, 7.0]  # a gap, not a zero
    heat = next(c for c in drawn if c["type"] == "heatmap")
    assert [[cell["heat"] for cell in row] for row in heat["cells"]] == [["heat-10", "heat-2"], ["heat-2", "heat-10"]]
    loss, gains, ks = (c for c in drawn if c["type"] == "line")
    assert loss["labels"] == ["1", "2", "3"] and loss["series"][0]["values"] == [0.69, 0.5, 0.45]
    assert gains["labels"] == ["0%", "50%", "100%"]
    assert [s["values"] for s in gains["series"]] == [[0.0, 0.6, 1.0], [0.0, 0.5, 1.0]]
    assert [s["values"] for s in ks["series"]] == [[0.0, 0.6, 1.0], [0.0, 0.4, 1.0]] and "gap 0.200 at 50%" in ks["title"]
    roc = next(c for c in drawn if c["type"] == "xy")
    assert roc["series"][0]["points"] == [[0.0, 0.0], [0.4, 0.6], [1.0, 1.0]]


def test_the_deciles_curves_agree_with_numpy_s_on_the_same_cut_offs() -> None:
    """The ROC curve from a lift table is the exact ROC at the deciles' score cut-offs."""
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    labels = rng.random(1000) < scores
    order = np.argsort(-scores)
    groups = np.array_split(order, 10)
    lift = np.array([[len(g), labels[g].sum(), 0, 0, 0, 0, 0, 0] for g in groups], dtype=float)
    roc = next(c for c in charts.of(_result(lift=(lift, [str(i) for i in range(10)], []))) if c["type"] == "xy")
    for (fpr, tpr), group in zip(roc["series"][0]["points"][1:], np.cumsum([len(g) for g in groups])):
        chosen = np.zeros(1000, bool)
        chosen[order[:group]] = True
        assert tpr == pytest.approx((chosen & labels).sum() / labels.sum())
        assert fpr == pytest.approx((chosen & ~labels).sum() / (~labels).sum())
