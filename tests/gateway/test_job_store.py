"""The job state machine and its SQLite store: only allowed transitions, terminal
states never change, every change is logged, concurrent writers cannot clobber."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.jobs.store import JobStore
from mpc.errors import FailedPrecondition, NotFound


@pytest.fixture()
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "gateway.db")


def _job(job_id: str = "j1") -> pb.Job:
    return pb.Job(job_id=job_id, coordinator="bank-a", state=states.PENDING, spec=pb.JobSpec(kind="stats.describe"))


def test_terminal_states_have_no_way_out() -> None:
    for terminal in states.TERMINAL:
        assert states.TRANSITIONS[terminal] == frozenset()
    assert set(states.TRANSITIONS) == {s for s in pb.JobState.values() if s != pb.JOB_STATE_UNSPECIFIED}


def test_happy_path_is_logged_in_order(store: JobStore) -> None:
    store.create(_job(), "submitted")
    for target in (states.QUEUED, states.RUNNING, states.SUCCEEDED):
        assert store.transition("j1", target) is not None
    job = store.get("j1")
    assert job.state == states.SUCCEEDED
    assert job.started_at.seconds > 0 and job.finished_at.seconds >= job.started_at.seconds
    events = store.events("j1")
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert [e.state for e in events] == [states.PENDING, states.QUEUED, states.RUNNING, states.SUCCEEDED]
    assert [e.sequence for e in store.events("j1", after=2)] == [3, 4]


def test_disallowed_transitions_change_nothing(store: JobStore) -> None:
    store.create(_job(), "submitted")
    assert store.transition("j1", states.SUCCEEDED) is None  # PENDING cannot succeed
    store.transition("j1", states.CANCELLED)
    assert store.transition("j1", states.RUNNING) is None  # terminal
    with pytest.raises(FailedPrecondition):
        store.update("j1", lambda j: setattr(j, "state", states.QUEUED))
    assert store.get("j1").state == states.CANCELLED
    assert len(store.events("j1")) == 2


def test_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        store.get("nope")
    assert store.find("nope") is None


def test_concurrent_transitions_admit_exactly_one_winner(store: JobStore) -> None:
    store.create(_job(), "submitted")
    store.transition("j1", states.QUEUED)
    store.transition("j1", states.RUNNING)
    outcomes: list[object] = []
    barrier = threading.Barrier(8)

    def race(target: int) -> None:
        barrier.wait()
        outcomes.append(store.transition("j1", target))

    threads = [threading.Thread(target=race, args=(t,)) for t in [states.SUCCEEDED, states.FAILED, states.CANCELLED] * 2 + [states.FAILED] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o is not None for o in outcomes) == 1
    assert store.get("j1").state in states.TERMINAL


def test_jobs_and_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    first = JobStore(path)
    first.create(_job("a"), "submitted")
    first.save_result(pb.JobResult(job_id="a", provider=pb.PROVIDER_TFP))
    first.close()
    again = JobStore(path)
    assert again.get("a").spec.kind == "stats.describe"
    assert again.result("a").provider == pb.PROVIDER_TFP
    assert [j.job_id for j in again.list([states.PENDING])] == ["a"]


def test_the_nearest_cause_is_the_failed_peer_that_never_reported() -> None:
    """bank-c was cut off: bank-b saw it go and cancelled its streams, so bank-a saw
    bank-b go. The job names bank-c (from bank-b's report), not the symptom."""
    from gateway.jobs.contracts import error_info
    from gateway.jobs.scheduler import nearest_cause

    def failed(party: str, blamed: str) -> pb.PartyStatus:
        error = error_info("PEER_FAILED", f"peer {blamed!r} failed", party, {"party_id": blamed})
        return pb.PartyStatus(party_id=party, state=states.FAILED, error=error)

    running = pb.PartyStatus(party_id="bank-c", state=states.RUNNING)
    cause = nearest_cause([failed("bank-a", "bank-b"), failed("bank-b", "bank-c"), running])
    assert cause is not None and cause.party_id == "bank-b" and "bank-c" in cause.error.message
    assert nearest_cause([failed("bank-a", "bank-b"), failed("bank-b", "bank-a")]).party_id == "bank-a"  # type: ignore[union-attr]
    assert nearest_cause([running]) is None
