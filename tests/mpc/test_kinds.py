"""`mpcgate kinds` describes every job kind the gateway runs, with exactly the
parameters its program accepts, and each example is a valid submission."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from gateway.cli import main
from mpc.catalogue.kinds import KINDS, parse, validate_inputs, validate_parameters
from mpc.catalogue.parameters import DESCRIPTIONS, Limits
from mpc.catalogue.schemas import missing_choice
from mpc.errors import InvalidArgument


def test_every_kind_names_a_program_and_describes_its_parameters() -> None:
    from mpc.programs import program

    for name, entry in KINDS.items():
        assert callable(program(name)), name
        assert set(entry.parameters) <= set(DESCRIPTIONS), name


def test_each_example_parses_and_its_parameters_validate() -> None:
    for name, entry in KINDS.items():
        words = shlex.split(entry.example)
        params = {}
        for word in (w for w, flag in zip(words[1:], words) if flag == "--param"):
            key, _, value = word.partition("=")
            try:  # as `jobs submit` reads a --param
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
        validate_parameters(name, params, Limits())
        inputs = [w for w, flag in zip(words[1:], words) if flag == "--input"]
        assert inputs and all(w.count(":") == 2 for w in inputs), name


def test_mpcgate_kinds_lists_every_kind_and_one_on_request() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["kinds"])
    assert listed.exit_code == 0
    for name in KINDS:
        assert f"{name}: " in listed.output and f"--kind {name} " in listed.output
    one = runner.invoke(main, ["kinds", "psi.intersect"])
    assert one.exit_code == 0 and "PARTY:DATASET:" in one.output and "stats.describe" not in one.output
    unknown = runner.invoke(main, ["kinds", "stats.median"])
    assert unknown.exit_code != 0 and "unknown job kind" in unknown.output


def test_every_parameter_of_a_kind_is_a_field_of_its_typed_schema() -> None:
    import dataclasses

    for name, entry in KINDS.items():
        fields = {f.name for f in dataclasses.fields(entry.schema)}
        assert set(entry.parameters) <= fields, (name, set(entry.parameters) - fields)


def test_parameters_are_parsed_once_into_their_kinds_types() -> None:
    import pytest

    from mpc.catalogue.kinds import parse
    from mpc.catalogue.schemas import DP, LogisticParameters, MlpParameters, private
    from mpc.errors import InvalidArgument

    mlp = parse("model.mlp", {"label": "y", "hidden": [8.0, 4.0], "seed": 3.0})  # numbers as JSON carries them
    assert isinstance(mlp, MlpParameters) and mlp.hidden == (8, 4) and mlp.seed == 3 and mlp.epochs == 5
    logistic = parse("model.logistic_regression", {"label": "y", "dp": {"epsilon": 1, "delta": 1e-6,
                                                                        "mechanism": "gaussian"}})
    assert isinstance(logistic, LogisticParameters) and logistic.alpha == 1.0 and logistic.holdout is None
    assert private(logistic) == DP(1.0, "gaussian", 1e-6) and private(mlp) is None
    with pytest.raises(InvalidArgument, match="needs parameter 'label'"):
        parse("model.mlp", {})


def test_every_kind_declares_what_it_reveals_as_the_readme_says() -> None:
    import re
    from pathlib import Path

    from mpc.catalogue.releases import RELEASES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = {m[0]: (m[1], m[3]) for m in re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| (.*) \| (.*) \| (.*) \|$",
                                                     readme, re.MULTILINE)}
    assert set(RELEASES) == set(KINDS) == set(table)
    assert RELEASES == table
    one = CliRunner().invoke(main, ["kinds", "stats.histogram"])
    assert "the receivers get: count, rows per bin" in one.output and "every party learns: which bins" in one.output


def test_the_missing_parameter_is_checked_and_typed() -> None:
    inputs = [("bank-a", ["income", "debt", "defaulted"]), ("bank-b", ["income", "debt", "defaulted"])]
    assert parse("stats.describe", {"missing": "median"}).missing == (("*", "median"),)
    typed = parse("model.logistic_regression", {"label": "defaulted", "missing": {"income": "mean", "*": "drop"}})
    assert typed.missing == (("*", "drop"), ("income", "mean"))
    assert missing_choice(typed, "income") == "mean" and missing_choice(typed, "debt") == "drop"
    assert missing_choice(parse("stats.describe", {}), "income") is None
    validate_inputs("model.logistic_regression", typed, False, inputs, ["bank-a"])
    for raw, message in [("zero", "must be one of drop, mean, median, indicator"),
                         ({"income": "max"}, "missing.income must be one of"), ({}, "non-empty object")]:
        with pytest.raises(InvalidArgument, match=message):
            parse("stats.describe", {"missing": raw})
    with pytest.raises(InvalidArgument, match="psi.intersect has no parameter 'missing'"):
        parse("psi.intersect", {"missing": "drop"})
    for raw, vertical, message in [
            ({"salary": "mean"}, False, "names column 'salary', which no input reads"),
            ("drop", True, "a vertical job cannot drop rows"),
            ({"defaulted": "mean"}, False, "the label 'defaulted' is never imputed")]:
        with pytest.raises(InvalidArgument, match=message):
            validate_inputs("model.logistic_regression", parse("model.logistic_regression", {
                "label": "defaulted", "missing": raw}), vertical, inputs if not vertical else
                [("bank-a", ["income", "debt"]), ("bank-b", ["defaulted"])], ["bank-a"])
