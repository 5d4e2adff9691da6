"""Checks a job spec before any party sees it: what the coordinator refuses at
submit (every party parses and reviews the spec again on its own), and each
party's own refusal of a triple provider its config does not allow."""

from __future__ import annotations

import math

from google.protobuf import struct_pb2

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.jobs.contracts import MAX_PURPOSE, SchedulerConfig, parameters_of, participants
from mpc.catalogue.kinds import validate_inputs
from mpc.errors import FailedPrecondition, InvalidArgument


def validate(spec: pb.JobSpec, config: SchedulerConfig) -> None:
    """INVALID_ARGUMENT (or FAILED_PRECONDITION for a provider this party refuses) for
    a spec the coordinator must not propose, naming what is wrong."""
    finite(spec.parameters)
    parameters = parameters_of(spec, config.limits)
    if not spec.inputs:
        raise InvalidArgument("a job needs at least one input")
    listed = [i.party_id for i in spec.inputs]
    twice = sorted({p for p in listed if listed.count(p) > 1})
    if twice:
        raise InvalidArgument(f"party {twice[0]!r} has more than one input: give each party exactly one")
    validate_inputs(spec.kind, parameters, spec.partitioning == pb.PARTITIONING_VERTICAL,
                    [(i.party_id, list(i.columns)) for i in spec.inputs], list(spec.result_receivers))
    columns = sum(len(i.columns) for i in spec.inputs)
    if columns > config.limits.max_columns:
        raise InvalidArgument(f"the job reads {columns} columns; this gateway allows at most "
                              f"{config.limits.max_columns} (config max_columns)")
    if len(spec.purpose) > MAX_PURPOSE:
        raise InvalidArgument(f"purpose has {len(spec.purpose)} characters; at most {MAX_PURPOSE}")
    if spec.deadline.ToTimedelta().total_seconds() < 0:
        raise InvalidArgument("deadline must not be negative")
    if spec.partitioning == pb.PARTITIONING_UNSPECIFIED:
        raise InvalidArgument("partitioning must be HORIZONTAL or VERTICAL")
    known = {config.party_id, *config.peer_addresses}
    _validate_model(spec, known)
    for job_input in spec.inputs:
        if job_input.party_id not in known:
            raise InvalidArgument(f"unknown party {job_input.party_id!r}")
        if not job_input.dataset or not (job_input.columns or spec.kind == "psi.intersect"):
            raise InvalidArgument(f"input of party {job_input.party_id!r} needs a dataset and columns")
    parties = participants(spec)
    if len(parties) < 2:
        raise InvalidArgument("a joint job needs at least two parties")
    if not spec.result_receivers:
        raise InvalidArgument("name at least one result receiver")
    for receiver in spec.result_receivers:
        if receiver not in parties:
            raise InvalidArgument(f"result receiver {receiver!r} is not a participant")
    refusal = provider_refusal(config, spec.provider, config.dealer[0] if config.dealer else "")
    if refusal:
        raise FailedPrecondition(refusal)


def provider_refusal(config: SchedulerConfig, provider: int, dealer: str) -> str:
    """Why this party's own config refuses the job's triple provider, or ''."""
    if provider == pb.PROVIDER_TFP and not config.allow_insecure_providers:
        return (f"party {config.party_id} refuses provider TFP (party 0 sees every Beaver triple): "
                "its config does not allow insecure providers")
    if provider == pb.PROVIDER_TTP:
        if config.dealer is None:
            return f"party {config.party_id} has no dealer in its config, so it cannot take part in TTP jobs"
        if dealer != config.dealer[0]:
            return f"party {config.party_id} uses dealer {config.dealer[0]!r}, not {dealer or 'none'!r}"
    if provider not in (pb.PROVIDER_TFP, pb.PROVIDER_TTP):
        return f"party {config.party_id} does not know triple provider {provider}"
    return ""


def _validate_model(spec: pb.JobSpec, known: set[str]) -> None:
    """model.predict and model.evaluate name the model and its holders; no other kind does."""
    uses_model = spec.kind in ("model.predict", "model.evaluate")
    if not uses_model:
        if spec.HasField("model"):
            raise InvalidArgument(f"{spec.kind} takes no model (only model.predict and model.evaluate do)")
        return
    if not spec.model.model_id or not spec.model.holders:
        raise InvalidArgument(f"{spec.kind} needs a model: its id and the parties that hold it")
    for holder in spec.model.holders:
        if holder not in known:
            raise InvalidArgument(f"unknown party {holder!r} holding the model")
    if len(set(spec.model.holders)) != len(spec.model.holders):
        raise InvalidArgument("a model's holders are listed once each")


def finite(parameters: struct_pb2.Struct | struct_pb2.ListValue, path: str = "") -> None:
    """INVALID_ARGUMENT for a NaN or infinity anywhere in a job's parameters (a raw
    Struct can carry them; JSON cannot, so no parameter means one)."""
    items = parameters.fields.items() if isinstance(parameters, struct_pb2.Struct) else enumerate(parameters.values)
    for key, value in items:
        where = f"{path}.{key}" if path and isinstance(key, str) else f"{path}[{key}]" if path else str(key)
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            raise InvalidArgument(f"parameter {where} is {value.number_value}: parameters must be finite numbers")
        if kind == "struct_value":
            finite(value.struct_value, where)
        elif kind == "list_value":
            finite(value.list_value, where)
