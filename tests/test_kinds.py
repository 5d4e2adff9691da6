"""`mpcgate kinds` describes every job kind the gateway runs, with exactly the
parameters its program accepts, and each example is a valid submission."""

from __future__ import annotations

import json
import shlex

from click.testing import CliRunner

from gateway.cli import main
from mpc.programs import KINDS as PROGRAMS
from mpc.programs import Limits, validate_parameters
from mpc.programs.catalogue import KINDS, PARAMETERS


def test_the_catalogue_matches_the_programs_schemas() -> None:
    assert list(KINDS) == list(PROGRAMS)
    for name, entry in KINDS.items():
        schema = PROGRAMS[name].parameters
        assert set(entry.parameters) == set(schema), name
        assert set(entry.required) == {p for p, param in schema.items() if param.required}, name
        assert set(entry.parameters) <= set(PARAMETERS)


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
