"""A job record's view of its parties: each party's status, the job's traffic, and
which failure caused the others. Pure functions on `pb.Job`, used by the scheduler
as coordinator and as participant."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states


def end_parties(job: pb.Job, state: states.State) -> None:
    """The coordinator's record: every party not yet ended ends with the job."""
    for party in job.parties:
        if party.state not in states.TERMINAL:
            party.state = state


def status_of(job: pb.Job, party_id: str) -> pb.PartyStatus | None:
    return next((p for p in job.parties if p.party_id == party_id), None)


def set_party(job: pb.Job, status: pb.PartyStatus) -> None:
    entry = status_of(job, status.party_id)
    if entry is None or entry.state in states.TERMINAL:
        return
    entry.state = status.state
    if status.error.message:
        entry.error.CopyFrom(status.error)


def adopt_final_view(job: pb.Job, parties: Sequence[pb.PartyStatus], progress: pb.Progress | None) -> None:
    """A participant takes the coordinator's final view of the parties and the
    job's traffic, which it would otherwise never see (it only reports its own)."""
    for status in parties:
        entry = status_of(job, status.party_id)
        if entry is not None:
            entry.state = status.state
            entry.error.CopyFrom(status.error)
    if progress is not None and progress.ByteSize():
        job.progress.CopyFrom(progress)


def merge_progress(job: pb.Job, party: str, progress: pb.Progress) -> None:
    if party == job.coordinator or not job.progress.phase:
        job.progress.phase = progress.phase
        job.progress.percent = progress.percent
    job.progress.bytes_sent = max(job.progress.bytes_sent, progress.bytes_sent)
    job.progress.bytes_received = max(job.progress.bytes_received, progress.bytes_received)
    job.progress.rounds = max(job.progress.rounds, progress.rounds)


def nearest_cause(parties: Sequence[pb.PartyStatus]) -> pb.PartyStatus | None:
    """Of the parties' failures (each naming the peer it saw fail), one naming a
    peer that did not report a failure of its own (cut off, or dead): that peer is
    the cause. A party that only saw another reporting party go (which cancelled
    its streams on seeing the cause) names a symptom. Else the first failure."""
    failures = [p for p in parties if p.state in (states.FAILED, states.CANCELLED)]
    reporters = {p.party_id for p in failures}
    silent = [p for p in failures if p.error.metadata.get("party_id", "") not in reporters | {""}]
    return silent[0] if silent else next(iter(failures), None)
