"""A pipeline file is checked before anything runs: every mistake named with the
stage it is in (gateway/client/pipelines.py; running one: tests/e2e/test_models_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.client.pipelines import load
from mpc.errors import InvalidArgument

GOOD = """
name = "credit"
partitioning = "vertical"
receivers = ["bank-a"]
[inputs]
bank-a = { dataset = "customers", columns = ["income", "defaulted"] }
bank-b = { dataset = "bureau", columns = ["debt"] }
[[stages]]
name = "screen"
kind = "features.select"
parameters = { label = "defaulted" }
[[stages]]
name = "card"
kind = "model.scorecard"
columns = "screen"
parameters = { label = "defaulted" }
receivers = ["bank-a", "bank-b"]
"""


def test_a_pipeline_file_declares_its_stages_and_their_releases(tmp_path: Path) -> None:
    spec = tmp_path / "credit.toml"
    spec.write_text(GOOD)
    pipeline = load(spec)
    assert [s.name for s in pipeline.stages] == ["screen", "card"] and pipeline.partitioning == "vertical"
    assert pipeline.inputs["bank-b"] == ("bureau", ["debt"])
    assert pipeline.stages[0].receivers == ["bank-a"] and pipeline.stages[1].receivers == ["bank-a", "bank-b"]
    described = pipeline.describe()
    assert described[1]["columns from"] == "screen" and "points" in described[1]["released"]
    assert "selected" in described[0]["released"]


@pytest.mark.parametrize("change, message", [
    (('kind = "model.scorecard"', 'kind = "model.scorecards"'), "stage 'card': unknown kind 'model.scorecards'"),
    (('columns = "screen"', 'columns = "card"'), "stage 'card': columns = 'card' must name an earlier features.select"),
    (('name = "card"', 'name = "screen"'), "two stages are named 'screen'"),
    (('partitioning = "vertical"', 'partitioning = "diagonal"'), "partitioning must be horizontal or vertical"),
    (('bank-b = { dataset = "bureau", columns = ["debt"] }', 'bank-b = { dataset = "bureau" }'), "input 'bank-b' needs"),
    (('receivers = ["bank-a"]\n', ''), "stage 'screen' has no receivers"),
    (('parameters = { label = "defaulted" }\nreceivers', 'parameters = 3\nreceivers'), "parameters must be a table"),
    (('[[stages]]', '[[stages]'), "cannot read the pipeline"),
])
def test_a_mistake_is_named_before_anything_runs(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    spec = tmp_path / "credit.toml"
    assert change[0] in GOOD
    spec.write_text(GOOD.replace(*change))
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("[", r"\[")):
        load(spec)
