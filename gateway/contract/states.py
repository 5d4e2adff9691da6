"""Job states and the only transitions allowed between them; terminal states never change."""

from __future__ import annotations

from typing import TypeAlias

from gateway.api.gateway.v1 import jobs_pb2 as pb

State: TypeAlias = pb.JobState.ValueType
"""A job's (or a party's) state: one of the JobState values below."""

PENDING = pb.JOB_STATE_PENDING
AWAITING_APPROVAL = pb.JOB_STATE_AWAITING_APPROVAL
QUEUED = pb.JOB_STATE_QUEUED
RUNNING = pb.JOB_STATE_RUNNING
SUCCEEDED = pb.JOB_STATE_SUCCEEDED
FAILED = pb.JOB_STATE_FAILED
CANCELLED = pb.JOB_STATE_CANCELLED
REJECTED = pb.JOB_STATE_REJECTED

TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, REJECTED})

TRANSITIONS: dict[State, frozenset[State]] = {
    PENDING: frozenset({AWAITING_APPROVAL, QUEUED, REJECTED, FAILED, CANCELLED}),
    AWAITING_APPROVAL: frozenset({QUEUED, REJECTED, FAILED, CANCELLED}),
    # a party that approved learns that another refused: the job ends REJECTED here too
    QUEUED: frozenset({RUNNING, REJECTED, FAILED, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
}


def name(state: State) -> str:
    return pb.JobState.Name(state).removeprefix("JOB_STATE_")


def allowed(current: State, target: State) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
