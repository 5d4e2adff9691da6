"""A risk team's sequence of joint jobs, declared once in a TOML file and run
stage after stage from the operator's gateway (issue 27, step 6, first part):

    name = "credit scorecard"
    partitioning = "vertical"
    receivers = ["bank-a"]

    [inputs]
    bank-a = { dataset = "customers", columns = ["income", "age", "defaulted"] }
    bank-b = { dataset = "bureau", columns = ["debt", "inquiries"] }

    [[stages]]
    name = "screen"
    kind = "features.select"
    parameters = { label = "defaulted", iv_min = 0.02, max_vif = 5 }

    [[stages]]
    name = "card"
    kind = "model.scorecard"
    columns = "screen"             # the feature columns stage "screen" kept
    parameters = { label = "defaulted" }
    receivers = ["bank-a", "bank-b"]

Each stage is one job, reviewed by every party against its own policies at
submit, start and release as any job is; what it releases is its kind's release
(`describe` lists them all before anything runs). `columns` takes a
features.select stage's choice: the next stage reads only the kept feature
columns (the choice is what that stage releases to its receivers, and the
operator's gateway must be one of them). A stage that does not succeed stops the
pipeline, naming the stage; nothing after it is submitted. Not yet: one review
of the whole pipeline, and intermediate results that stay secret-shared between
stages (today a stage passes on only what it revealed).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.client.results import Result
from mpc.catalogue.kinds import KINDS
from mpc.catalogue.releases import RELEASES
from mpc.errors import FailedPrecondition, InvalidArgument

SELECTION_KIND = "features.select"


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    parameters: dict[str, Any]
    receivers: list[str]
    columns: str | None = None  # a features.select stage whose kept columns this stage reads


@dataclass(frozen=True)
class Pipeline:
    name: str
    partitioning: str
    inputs: dict[str, tuple[str, list[str]]]  # party -> (dataset, columns)
    stages: list[Stage]
    purpose: str = ""

    def describe(self) -> list[dict[str, Any]]:
        """Per stage, what it releases and to whom, and what every party learns:
        what each data owner weighs before the first stage runs."""
        return [{"stage": s.name, "kind": s.kind, "receivers": s.receivers, "columns from": s.columns,
                 "released": RELEASES[s.kind][0], "every party learns": RELEASES[s.kind][1]} for s in self.stages]


@dataclass
class StageRun:
    stage: Stage
    job_id: str
    state: str
    result: Result | None = None


@dataclass
class PipelineRun:
    pipeline: Pipeline
    stages: list[StageRun] = field(default_factory=list)

    def result(self, stage: str) -> Result:
        for run in self.stages:
            if run.stage.name == stage and run.result is not None:
                return run.result
        raise FailedPrecondition(f"stage {stage!r} has no result here (not run, or this gateway is not its receiver)")


def load(path: Path) -> Pipeline:
    """The pipeline a TOML file declares, checked before anything runs."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidArgument(f"cannot read the pipeline {path}: {err}") from None
    return parse(raw, str(path))


def parse(raw: Mapping[str, Any], where: str = "the pipeline") -> Pipeline:
    partitioning = raw.get("partitioning", "horizontal")
    if partitioning not in ("horizontal", "vertical"):
        raise InvalidArgument(f"{where}: partitioning must be horizontal or vertical")
    inputs = {}
    for party, spec in dict(raw.get("inputs", {})).items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("dataset"), str) or not _names(spec.get("columns")):
            raise InvalidArgument(f"{where}: input {party!r} needs dataset = \"...\" and columns = [\"...\", ...]")
        inputs[party] = (spec["dataset"], list(spec["columns"]))
    if not inputs:
        raise InvalidArgument(f"{where}: no [inputs]")
    receivers = raw.get("receivers", [])
    stages: list[Stage] = []
    for i, spec in enumerate(raw.get("stages", [])):
        name = spec.get("name") or f"stage {i + 1}"
        if any(s.name == name for s in stages):
            raise InvalidArgument(f"{where}: two stages are named {name!r}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise InvalidArgument(f"{where}: stage {name!r}: unknown kind {kind!r} (mpcgate kinds lists them)")
        source = spec.get("columns")
        if source is not None and not any(s.name == source and s.kind == SELECTION_KIND for s in stages):
            raise InvalidArgument(f"{where}: stage {name!r}: columns = {source!r} must name an earlier "
                                  f"{SELECTION_KIND} stage")
        stage_receivers = spec.get("receivers", receivers)
        if not _names(stage_receivers):
            raise InvalidArgument(f"{where}: stage {name!r} has no receivers (set receivers = [...])")
        parameters = spec.get("parameters", {})
        if not isinstance(parameters, Mapping):
            raise InvalidArgument(f"{where}: stage {name!r}: parameters must be a table")
        stages.append(Stage(name, kind, dict(parameters), list(stage_receivers), source))
    if not stages:
        raise InvalidArgument(f"{where}: no [[stages]]")
    return Pipeline(str(raw.get("name", "pipeline")), partitioning, inputs, stages, str(raw.get("purpose", "")))


def run(client: Any, pipeline: Pipeline, on_event: Callable[[Stage, Any], None] = lambda stage, event: None,
        timeout: float | None = None) -> PipelineRun:
    """Runs the stages in order through `client` (gateway.client.sdk.Client);
    `on_event(stage, event)` for each job event. Raises FailedPrecondition naming the
    stage that did not succeed; the run so far is on the error (`.run`)."""
    done = PipelineRun(pipeline)
    sources = {s.columns for s in pipeline.stages if s.columns}
    blind = [s.name for s in pipeline.stages if s.name in sources and client.party not in s.receivers]
    if blind:
        raise InvalidArgument(f"pipeline {pipeline.name!r}: stage {blind[0]!r} feeds a later stage its choice, so "
                              f"this gateway ({client.party}) must be among its receivers")
    for stage in pipeline.stages:
        inputs = _inputs(pipeline, stage, done)
        purpose = f"{pipeline.name}: stage {stage.name}" + (f" ({pipeline.purpose})" if pipeline.purpose else "")
        try:
            job = client.submit(stage.kind, inputs, stage.receivers, pipeline.partitioning, stage.parameters,
                                purpose=purpose)
        except InvalidArgument as err:
            raise _failed(done, stage, "was refused at submit", err.message) from None
        for event in job.watch(timeout=timeout):
            on_event(stage, event)
        job.refresh()
        done.stages.append(StageRun(stage, job.id, job.state))
        if job.state != "SUCCEEDED":
            raise _failed(done, stage, f"ended {job.state}", job.record.error.message)
        if client.party in stage.receivers:
            done.stages[-1].result = job.result()
    return done


def _inputs(pipeline: Pipeline, stage: Stage, done: PipelineRun) -> list[tuple[str, str, list[str]]]:
    """The pipeline's inputs; with `columns`, only the feature columns that stage kept
    (a column it did not screen, the label, stays)."""
    dropped: set[str] = set()
    if stage.columns is not None:
        choice = done.result(stage.columns)
        dropped = {c for c, kept in zip(choice.labels["selected"], choice["selected"]) if kept < 0.5}
    out = []
    for party, (dataset, columns) in pipeline.inputs.items():
        kept = [c for c in columns if c not in dropped]
        if kept:
            out.append((party, dataset, kept))
    return out


def _failed(done: PipelineRun, stage: Stage, what: str, why: str) -> FailedPrecondition:
    error = FailedPrecondition(f"pipeline {done.pipeline.name!r}: stage {stage.name!r} ({stage.kind}) {what}: {why}"
                               + ("" if stage is done.pipeline.stages[-1] else "; the stages after it did not run"))
    error.run = done  # type: ignore[attr-defined]
    return error


def _names(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
