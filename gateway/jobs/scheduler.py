"""Coordinates joint jobs across gateways.

The gateway an operator submits to coordinates: it proposes the job to every
participating gateway; each checks the job against its own datasets and policies
(the coordinator is not trusted with that) and approves at once, waits for its data
owner, or refuses. A refusal anywhere ends the job REJECTED everywhere, with no
data read. Once all approve, the coordinator queues the job (a limit on concurrent
jobs, first in first out), then fixes ranks and a session id and starts a worker at
every party. Participants report back; the first failure fails the job everywhere.

The coordinator's record holds the overall state and each party's status; a
participant's record holds its own state. Every decision goes to the audit log.
This party's own side of a job (its checks at start and release, its worker, its
reports) is in participation.py; what the scheduler needs from the gateway, in
contracts.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.api.common.v1 import error_pb2
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.jobs.contracts import (
    DRAIN_FLUSH_S,
    ROOT_CAUSE_WAIT_S,
    Audit,
    AuditHead,
    Datasets,
    Models,
    Peers,
    Review,
    SchedulerConfig,
    error_info,
    has_input,
    parameters_of,
    participants,
)
from gateway.jobs.cost import Estimate, OperatorLedger, estimate, over
from gateway.jobs.participation import Participation
from gateway.jobs.party_states import adopt_final_view, end_parties, merge_progress, nearest_cause, set_party, status_of
from gateway.jobs.records import JobRecords
from gateway.jobs.reveals import described
from gateway.jobs.store import JobStore, now
from gateway.jobs.validation import finite, provider_refusal, validate
from gateway.workers.runner import WorkerRunner
from mpc.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MpcgateError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger(__name__)


class Scheduler(Participation):
    def __init__(self, config: SchedulerConfig, store: JobStore, datasets: Datasets, peers: Peers,
                 runner: WorkerRunner, records: JobRecords, audit: Audit, audit_head: AuditHead = lambda: (0, ""),
                 models: Models | None = None, costs: OperatorLedger | None = None) -> None:
        self.config = config
        self.me = config.party_id
        self._store = store
        self._datasets = datasets
        self._peers = peers
        self._runner = runner
        self._audit = audit
        self._audit_head = audit_head
        self._models = models
        self._costs = costs
        self._records = records
        self._draining = False
        self._awaiting_cause: set[str] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self.notify: Callable[[str, pb.Job], None] = lambda event, job: None
        """Tells this party's people (gateway.notify): a job awaits its approval, or
        a job that read its data ended (set by the gateway's wiring)."""
        store.on_end = self._ended

    # -- operator API (JobService) ------------------------------------------------

    async def submit(self, spec: pb.JobSpec, submitted_by: str) -> pb.Job:
        if self._draining:
            raise Unavailable(f"gateway {self.me} is shutting down and accepts no new jobs")
        spec = _copy(spec)
        spec.provider = spec.provider or pb.PROVIDER_TTP
        validate(spec, self.config)
        if spec.request_id and (earlier := self._store.by_request(submitted_by, spec.request_id)) is not None:
            if earlier.spec.SerializeToString(deterministic=True) != spec.SerializeToString(deterministic=True):
                raise AlreadyExists(f"request_id {spec.request_id!r} was used for another job ({earlier.job_id}): "
                                    "a retry must send the same spec")
            return earlier  # a retry: the job it started, not a second one (nor a second privacy charge)
        job = pb.Job(
            job_id=uuid.uuid4().hex, spec=spec, state=states.PENDING, coordinator=self.me,
            submitted_by=submitted_by, created_at=now(),
            parties=[pb.PartyStatus(party_id=p, rank=-1, state=states.PENDING) for p in participants(spec)],
            dealer=self.config.dealer[0] if spec.provider == pb.PROVIDER_TTP and self.config.dealer else "",
        )
        self._admit_cost(job)
        self._store.create(job, f"submitted by {submitted_by}", spec.request_id)  # no await since the look-up
        self._audit("job.submit", job.job_id, "ok", {"kind": spec.kind, "by": submitted_by})
        review = self._spawn(self._propose_everywhere(job))
        # the answer waits for the reviews (so an unknown column at a peer is INVALID_ARGUMENT
        # here) only so long: under load the job is PENDING and its review goes on behind it
        done, _ = await asyncio.wait({review}, timeout=self.config.submit_wait_s)
        if review in done and not review.cancelled() and isinstance(review.result(), InvalidArgument):
            raise InvalidArgument(review.result().message)
        return self._store.get(job.job_id)

    async def _propose_everywhere(self, job: pb.Job) -> InvalidArgument | None:
        """Every party reviews the job; the first invalid input anywhere, if any (the
        job is then rejected with it)."""
        parties = participants(job.spec)
        statuses = await asyncio.gather(*(self._propose(p, job) for p in parties), return_exceptions=True)
        invalid = next((s for s in statuses if isinstance(s, InvalidArgument)), None)
        for party, status in zip(parties, statuses):
            if isinstance(status, MpcgateError):
                status = pb.PartyStatus(party_id=party, rank=-1, state=states.REJECTED,
                                        error=error_info(status.reason, status.message, party))
            elif isinstance(status, BaseException):
                raise status
            self._store.update(job.job_id, functools.partial(set_party, status=status))
        await self._reevaluate(job.job_id)
        return invalid

    async def _propose(self, party: str, job: pb.Job) -> pb.PartyStatus:
        if party == self.me:
            return await self.on_propose(job, self.me)
        return await self._peers.propose(party, job)

    async def approve(self, job_id: str, approve: bool, reason: str, caller: str) -> pb.Job:
        job = self._store.get(job_id)
        mine = status_of(job, self.me) if job.coordinator == self.me else None
        local_state = mine.state if mine is not None else job.state
        if local_state != states.AWAITING_APPROVAL:
            raise FailedPrecondition(f"job {job_id} is not awaiting this party's approval")
        target = states.QUEUED if approve else states.REJECTED
        error = None if approve else error_info("REJECTED_BY_DATA_OWNER", reason or "the data owner rejected the job", self.me)
        status = pb.PartyStatus(party_id=self.me, state=target, error=error)
        self._audit("job.approve" if approve else "job.reject", job_id, "ok", {"by": caller, "reason": reason})
        if job.coordinator == self.me:
            self._store.update(job_id, lambda j: set_party(j, status), "approved" if approve else "rejected by data owner")
            await self._reevaluate(job_id)
            return self._store.get(job_id)
        self._store.transition(job_id, target, f"{'approved' if approve else 'rejected'} by {caller}", error)
        # the answer is the job as this approval left it: once told, the coordinator may start it at once
        approved = self._store.get(job_id)
        await self._peers.report(job.coordinator, job_id, status, pb.Progress())
        return approved

    async def cancel(self, job_id: str, reason: str, caller: str) -> pb.Job:
        job = self._store.get(job_id)
        if job.coordinator != self.me:
            raise FailedPrecondition(f"cancel job {job_id} at its coordinator, {job.coordinator!r}")
        error = error_info("CANCELLED", reason or f"cancelled by {caller}")
        if not await self._end(job_id, states.CANCELLED, f"cancelled by {caller}", error, {"by": caller}):
            raise FailedPrecondition(f"job {job_id} already ended ({states.name(job.state)})")
        return self._store.get(job_id)

    def described(self, job: pb.Job) -> pb.Job:
        """`job` with what it reveals to whom and its privacy charges here (GetJob)."""
        return described(job, self._datasets.disclosure(job, self.me))

    def result(self, job_id: str) -> pb.JobResult:
        self._store.get(job_id)
        result = self._store.result(job_id)
        if result is None:
            raise NotFound(f"job {job_id} has no result at party {self.me!r} (not finished, or not a receiver here)")
        self._audit("result.read", job_id, "ok", {})
        return result

    # -- coordination API (from peers, and from this gateway for itself) ----------

    async def on_propose(self, job: pb.Job, caller: str) -> pb.PartyStatus:
        if caller != job.coordinator:
            raise PermissionDenied(f"party {caller!r} cannot propose on behalf of {job.coordinator!r}")
        if self._draining:
            raise Unavailable(f"gateway {self.me} is shutting down and accepts no new jobs")
        finite(job.spec.parameters)
        parameters_of(job.spec, self.config.limits)
        # off the event loop: a DP job's budget check composes every earlier charge (1.75 s at 1000 jobs)
        review = await asyncio.to_thread(self._review, job)
        state = {"approve": states.QUEUED, "manual": states.AWAITING_APPROVAL}.get(review.decision, states.REJECTED)
        error = None
        if state == states.REJECTED:
            error = error_info("POLICY_REFUSED", "; ".join(review.reasons) or "refused by policy", self.me)
        self._audit("job.review", job.job_id, states.name(state).lower(),
                    {"coordinator": job.coordinator, "reasons": "; ".join(review.reasons)})
        if job.coordinator != self.me:
            record = pb.Job()
            record.CopyFrom(job)
            record.state = states.PENDING
            if self._store.find(job.job_id) is None:
                self._store.create(record, f"proposed by {caller}")
            self._store.transition(job.job_id, state, "policy review", error)
        if state == states.AWAITING_APPROVAL:
            self.notify("job.awaiting_approval", job)
        return pb.PartyStatus(party_id=self.me, rank=-1, state=state, error=error)

    def _ended(self, job: pb.Job) -> None:
        if has_input(job.spec, self.me):
            self.notify("job.ended", job)

    def _review(self, job: pb.Job) -> Review:
        """This party's own decision: its config's provider rules, its datasets'
        policies (InvalidArgument for unknown datasets or columns) and, where it
        holds the job's model, the model's policy."""
        refusal = provider_refusal(self.config, job.spec.provider, job.dealer)
        reviews = [self._datasets.review(job, self.me)] if has_input(job.spec, self.me) else []
        if self.me in job.spec.model.holders:
            if self._models is None:
                raise FailedPrecondition(f"party {self.me} keeps no models")
            try:
                reviews.append(self._models.review(job, self.me))
            except NotFound as err:
                raise InvalidArgument(err.message) from None
        reasons = ([refusal] if refusal else []) + [r for review in reviews for r in review.reasons]
        costly = self._cost_refusal(estimate(job.spec, parameters_of(job.spec), self._datasets.rows(job, self.me)))
        if costly and self.config.quotas.over == "manual" and not reasons:
            return Review("manual", [costly])
        reasons += [costly] if costly else []
        if refusal or costly or any(r.decision == "reject" for r in reviews):
            return Review("reject", reasons)
        return Review("manual" if any(r.decision == "manual" for r in reviews) else "approve")

    def _cost_refusal(self, estimated: Estimate) -> str:
        """Why the job's estimate on this party's rows passes its quotas.job_cost ('' if not)."""
        if not over(self.config.quotas.job_cost, estimated.units):
            return ""
        return f"the job is {estimated} at {self.me}; its quota is {self.config.quotas.job_cost:.3g} (config quotas.job_cost)"

    def _admit_cost(self, job: pb.Job) -> None:
        """At submit: RESOURCE_EXHAUSTED, with the estimate and the quota, for a job over
        this gateway's quotas on the rows it knows, or past its operator's daily quota."""
        quotas = self.config.quotas
        estimated = estimate(job.spec, parameters_of(job.spec), self._datasets.rows(job, self.me))
        if quotas.over == "refuse" and (refusal := self._cost_refusal(estimated)):
            raise ResourceExhausted(refusal)
        if self._costs is not None and quotas.operator_cost_per_day > 0:
            if refusal := self._costs.admit(job.job_id, job.submitted_by, estimated.units, quotas.operator_cost_per_day):
                raise ResourceExhausted(refusal)

    async def on_report(self, job_id: str, status: pb.PartyStatus, progress: pb.Progress, caller: str,
                        head: tuple[int, str] | None = None, record: cpb.SignedRecord | None = None) -> None:
        job = self._store.get(job_id)
        if job.coordinator != self.me or status_of(job, caller) is None or status.party_id != caller:
            raise PermissionDenied(f"party {caller!r} cannot report on job {job_id}")
        if record is not None and record.party_id == caller:
            self._records.keep(job_id, [record])
        if head is not None and caller != self.me:
            self._audit("audit.peer_head", job_id, "recorded", {"party": caller, "sequence": str(head[0]), "hash": head[1]})
        def change(j: pb.Job) -> None:
            set_party(j, status)
            if progress.ByteSize():
                merge_progress(j, caller, progress)
        self._store.update(job_id, change, f"{caller}: {states.name(status.state).lower()}")
        await self._reevaluate(job_id)

    async def on_start(self, job_id: str, session_id: str, ranks: list[pb.PartyStatus], caller: str) -> None:
        job = self._store.get(job_id)
        if caller != job.coordinator:
            raise PermissionDenied(f"party {caller!r} does not coordinate job {job_id}")
        if self._draining:
            raise Unavailable(f"gateway {self.me} is shutting down and starts no new jobs")
        if job.coordinator != self.me and self._store.transition(job_id, states.RUNNING, "starting worker") is None:
            raise FailedPrecondition(f"job {job_id} cannot start from {states.name(job.state)}")
        self._spawn(self._run_worker(job_id, session_id, list(ranks)))

    async def on_stop(self, job_id: str, state: states.State, error: error_pb2.ErrorInfo, caller: str,
                      head: tuple[int, str] | None = None, records: list[cpb.SignedRecord] = (),  # type: ignore[assignment]
                      parties: list[pb.PartyStatus] = (), progress: pb.Progress | None = None) -> None:  # type: ignore[assignment]
        job = self._store.find(job_id)
        if job is None:
            return
        if caller != job.coordinator:
            raise PermissionDenied(f"party {caller!r} does not coordinate job {job_id}")
        # every party's signed record, checked by `mpcgate audit verify`
        self._records.keep(job_id, [r for r in records if status_of(job, r.party_id) is not None])
        if head is not None:
            self._audit("audit.peer_head", job_id, "recorded", {"party": caller, "sequence": str(head[0]), "hash": head[1]})
        if state != states.SUCCEEDED:  # a job this party finished itself has nothing to stop
            self._runner.cancel(job_id)
            self._store.transition(job_id, state, f"stopped by coordinator: {error.message}", error)
        self._store.update(job_id, lambda j: adopt_final_view(j, parties, progress))

    async def on_sync(self, job_id: str, caller: str) -> tuple[states.State, error_pb2.ErrorInfo]:
        """A participant asks where the job stands (after its restart)."""
        job = self._store.get(job_id)
        if job.coordinator != self.me or status_of(job, caller) is None:
            raise PermissionDenied(f"party {caller!r} is not a participant of job {job_id} coordinated here")
        return job.state, job.error

    # -- the coordinator's decisions -------------------------------------------------

    async def _reevaluate(self, job_id: str) -> None:
        async with self._lock:
            job = self._store.get(job_id)
            if job.state in states.TERMINAL:
                return
            party_states = [p.state for p in job.parties]
            refused = next((p for p in job.parties if p.state in (states.REJECTED,)), None)
            failures = [p for p in job.parties if p.state in (states.FAILED, states.CANCELLED)]
            # a party that saw a peer vanish is a symptom; the peer's own report names the cause
            failed = next((p for p in failures if p.error.reason != "PEER_FAILED"), None)
            if failures and failed is None:
                if job_id not in self._awaiting_cause:
                    self._awaiting_cause.add(job_id)
                    asyncio.get_running_loop().call_later(
                        ROOT_CAUSE_WAIT_S, lambda: self._spawn(self._end_with_symptom(job_id)))
                return
            if refused is not None and job.state in (states.PENDING, states.AWAITING_APPROVAL):
                await self._end(job_id, states.REJECTED, f"rejected by {refused.party_id}", refused.error,
                                {"party": refused.party_id})
                return
            if failed is not None:
                error = failed.error if failed.error.message else error_info("PARTY_FAILED", f"party {failed.party_id} failed", failed.party_id)
                await self._end(job_id, states.FAILED, f"failed at {failed.party_id}", error,
                                {"party": failed.party_id, "reason": error.reason})
                return
            if job.state == states.PENDING and states.AWAITING_APPROVAL in party_states and states.PENDING not in party_states:
                self._store.transition(job_id, states.AWAITING_APPROVAL, "waiting for data owners' approval")
            if job.state in (states.PENDING, states.AWAITING_APPROVAL) and all(s == states.QUEUED for s in party_states):
                self._store.transition(job_id, states.QUEUED, "approved by every party")
            if job.state == states.RUNNING and all(s == states.SUCCEEDED for s in party_states):
                self._store.transition(job_id, states.SUCCEEDED, "every party finished")
                self._audit("job.succeeded", job_id, "ok", {})
                # tells every party, with this log's head, which they record
                self._spawn(self._stop_everywhere(job, states.SUCCEEDED, error_pb2.ErrorInfo()))
        await self._start_queued()

    async def _end_with_symptom(self, job_id: str) -> None:
        """No party reported a cause in time: the job fails with what was seen."""
        failed = nearest_cause(self._store.get(job_id).parties)
        if failed is not None:
            await self._end(job_id, states.FAILED, f"failed at {failed.party_id}", failed.error,
                            {"party": failed.party_id, "reason": failed.error.reason})

    async def _start_queued(self) -> None:
        if self._draining:
            return
        async with self._lock:
            running = [j for j in self._store.list([states.RUNNING], limit=1000) if j.coordinator == self.me]
            queued = [j for j in self._store.list([states.QUEUED], limit=1000) if j.coordinator == self.me]
            queued.sort(key=lambda j: j.created_at.ToNanoseconds())
            free = self.config.max_concurrent_jobs - len(running)
            starting = queued[: max(0, free)]
            for job in starting:
                session = f"{job.job_id}-{uuid.uuid4().hex[:8]}"
                def assign(j: pb.Job, session: str = session) -> None:
                    j.state = states.RUNNING
                    j.session_id = session
                    for rank, p in enumerate(j.parties):
                        p.rank = rank
                self._store.update(job.job_id, assign, "starting")
        for job in starting:
            self._spawn(self._start_everywhere(self._store.get(job.job_id)))

    async def _start_everywhere(self, job: pb.Job) -> None:
        deadline = job.spec.deadline.ToTimedelta().total_seconds() or self.config.default_deadline_s
        self._deadlines[job.job_id] = asyncio.get_running_loop().call_later(
            deadline, lambda: self._spawn(self._expire(job.job_id, deadline)))
        self._audit("job.start", job.job_id, "ok", {"session": job.session_id})
        ranks = [pb.PartyStatus(party_id=p.party_id, rank=p.rank) for p in job.parties]
        try:
            if job.spec.provider == pb.PROVIDER_TTP:
                if self.config.dealer is None or self.config.dealer[0] != job.dealer:
                    raise FailedPrecondition(f"party {self.me}'s config no longer names dealer {job.dealer!r}")
                await self._peers.join_dealer(*self.config.dealer, job.session_id, ranks)
            await asyncio.gather(*(self._start_party(p.party_id, job, ranks) for p in job.parties))
        except MpcgateError as err:
            await self._fail(job.job_id, error_info("START_FAILED", err.message))

    async def _start_party(self, party: str, job: pb.Job, ranks: list[pb.PartyStatus]) -> None:
        if party == self.me:
            await self.on_start(job.job_id, job.session_id, ranks, self.me)
        else:
            await self._peers.start(party, job.job_id, job.session_id, ranks)

    async def _expire(self, job_id: str, deadline: float) -> None:
        await self._fail(job_id, error_info("DEADLINE_EXCEEDED", f"the job did not finish within {deadline:g} s"))

    async def _fail(self, job_id: str, error: error_pb2.ErrorInfo) -> None:
        await self._end(job_id, states.FAILED, error.message, error, {"reason": error.reason})

    async def _end(self, job_id: str, state: states.State, message: str, error: error_pb2.ErrorInfo,
                   details: dict[str, str]) -> bool:
        """Ends the job here (if it has not ended yet), audits it, and stops it at every
        other party; False if it had already ended."""
        job = self._store.transition(job_id, state, message, error)
        if job is None:
            return False
        if job.coordinator == self.me:  # every party's status ends too
            job = self._store.update(job_id, lambda j: end_parties(j, state))
        self._audit(f"job.{states.name(state).lower()}", job_id, states.name(state).lower(), details)
        await self._stop_everywhere(job, state, error)
        return True

    async def _stop_everywhere(self, job: pb.Job, state: states.State, error: error_pb2.ErrorInfo) -> None:
        timer = self._deadlines.pop(job.job_id, None)
        if timer is not None:
            timer.cancel()
        self._runner.cancel(job.job_id)
        others = [p.party_id for p in job.parties if p.party_id != self.me]
        head = self._audit_head()
        self._sign(job, state, error.reason, head)
        records = self._records.of(job.job_id)
        results = await asyncio.gather(*(self._peers.stop(p, job, state, error, head, records) for p in others),
                                       return_exceptions=True)
        for party, outcome in zip(others, results):
            if isinstance(outcome, BaseException):
                log.warning("could not stop job=%s at party=%s: %s", job.job_id, party, outcome)
        self._spawn(self._start_queued())  # a slot may have freed up

    # -- start-up -----------------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: what was running here died with the gateway; jobs this
        party coordinates and had queued resume; a participant's jobs that were
        waiting are reconciled with their coordinators (which may have ended them)."""
        for job in self._store.list([states.RUNNING, states.PENDING], limit=10_000):
            error = error_info("GATEWAY_RESTARTED", f"gateway {self.me} restarted while the job was {states.name(job.state).lower()}", self.me)
            if job.coordinator == self.me:
                await self._fail(job.job_id, error)
            else:
                self._store.transition(job.job_id, states.FAILED, error.message, error)
                await self._report_own(job, pb.PartyStatus(party_id=self.me, state=states.FAILED, error=error),
                                       pb.Progress(), final=True)
        await self.reconcile()
        await self._start_queued()

    async def reconcile(self) -> None:
        """Asks the coordinator of every job waiting here (as a participant) where it
        stands, and ends it here too if it ended there."""
        waiting = self._store.list([states.AWAITING_APPROVAL, states.QUEUED], limit=10_000)
        for job in (j for j in waiting if j.coordinator != self.me):
            try:
                state, error = await self._peers.sync(job.coordinator, job.job_id)
            except MpcgateError as err:
                log.warning("could not reconcile job=%s with coordinator=%s: %s", job.job_id, job.coordinator, err.message)
                continue
            if state in states.TERMINAL and state != states.SUCCEEDED:
                self._store.transition(job.job_id, state, f"reconciled with coordinator {job.coordinator}", error)
                self._audit("job.reconciled", job.job_id, states.name(state).lower(), {"coordinator": job.coordinator})

    async def drain(self) -> None:
        """Graceful shutdown: accept and start nothing new, let the jobs running here
        finish within `drain_grace_s`, then fail the rest (GATEWAY_SHUTDOWN)."""
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_grace_s
        while self._running_here() and loop.time() < deadline:
            await asyncio.sleep(0.2)
        for job in self._running_here():
            error = error_info("GATEWAY_SHUTDOWN", f"gateway {self.me} shut down before the job finished "
                           f"(drain grace {self.config.drain_grace_s:g} s)", self.me)
            if job.coordinator == self.me:
                await self._fail(job.job_id, error)
            else:
                self._runner.cancel(job.job_id)
                self._store.transition(job.job_id, states.FAILED, error.message, error)
                await self._report_own(job, pb.PartyStatus(party_id=self.me, state=states.FAILED, error=error),
                                       pb.Progress(), final=True)
        in_flight = [task for task in self._tasks if not task.done()]
        if in_flight:  # a job that just ended here may still be reporting it (close() would cut that short)
            await asyncio.wait(in_flight, timeout=DRAIN_FLUSH_S)

    def _running_here(self) -> list[pb.Job]:
        """Jobs running with this gateway: its worker's, or (as coordinator) anyone's."""
        return self._store.list([states.RUNNING], limit=10_000)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_crash)
        return task

    async def close(self) -> None:
        self._runner.kill_all()
        for task in list(self._tasks):
            task.cancel()


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("scheduler task failed: %r", task.exception())


def _copy(spec: pb.JobSpec) -> pb.JobSpec:
    out = pb.JobSpec()
    out.CopyFrom(spec)
    return out
