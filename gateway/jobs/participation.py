"""This party's part in a job it takes part in (coordinator or not): the checks it
makes right before reading its data and right before releasing anything, the
worker it runs, and what it reports back. A mixin of the Scheduler, which owns
the state (store, registry, runner, audit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from gateway.api.common.v1 import tensor_pb2
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.jobs.contracts import (
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
)
from gateway.jobs.party_states import set_party
from gateway.jobs.records import JobRecords
from gateway.jobs.store import JobStore, now
from gateway.workers.plan import Finished, Progress, WorkerPlan
from gateway.workers.runner import WorkerRunner
from mpc.catalogue.context import PartyLayout, ReleaseRules, Result
from mpc.catalogue.kinds import KINDS
from mpc.errors import Cancelled, FailedPrecondition, MpcgateError, PolicyRefused

log = logging.getLogger(__name__)


class Participation:
    """Methods of the Scheduler that run this party's side of a job (they use the
    Scheduler's store, registry, runner, peers, models and audit)."""

    config: SchedulerConfig
    me: str
    _store: JobStore
    _datasets: Datasets
    _peers: Peers
    _runner: WorkerRunner
    _records: JobRecords
    _audit: Audit
    _audit_head: AuditHead
    _models: Models | None
    _review: Callable[[pb.Job], Review]
    on_report: Callable[[str, pb.PartyStatus, pb.Progress, str, tuple[int, str] | None, cpb.SignedRecord | None],
                        Awaitable[None]]

    async def _run_worker(self, job_id: str, session_id: str, ranks: list[pb.PartyStatus]) -> None:
        job = self._store.get(job_id)
        self._runner.expect(session_id, [p.party_id for p in ranks] + ([job.dealer] if job.dealer else []))
        try:
            await self._run_job(job, session_id, ranks)
        finally:
            self._runner.forget(session_id)  # (the worker's run ends it too; this covers a failure before)

    async def _run_job(self, job: pb.Job, session_id: str, ranks: list[pb.PartyStatus]) -> None:
        job_id = job.job_id
        status = pb.PartyStatus(party_id=self.me, state=states.RUNNING)
        await self._report_own(job, status, pb.Progress(phase="loading inputs", percent=1))
        try:
            plan = await asyncio.to_thread(self._plan, job, session_id, ranks)  # file checks: off the event loop
            if self._store.get(job_id).state in states.TERMINAL:  # cancelled while planning: runner.cancel found no worker
                raise Cancelled(f"job {job_id} was cancelled before its worker started")
            finished = await self._runner.run(
                plan, lambda p: self._report_own(job, status, _progress(p)), lambda: self._release_refusal(job_id),
                lambda action, details: self._worker_event(job_id, action, details))
            self._keep(job, finished)
        except MpcgateError as err:
            if job.coordinator == self.me and self._store.get(job_id).state in states.TERMINAL:
                return
            failed = pb.PartyStatus(party_id=self.me, state=states.FAILED,
                                    error=error_info(err.reason, err.message, self.me, err.metadata))
            if job.coordinator != self.me:
                self._store.transition(job_id, states.FAILED, err.message, failed.error)
            await self._report_own(job, failed, pb.Progress(), final=True)
            return
        done = pb.PartyStatus(party_id=self.me, state=states.SUCCEEDED)
        if job.coordinator != self.me:
            self._store.transition(job_id, states.SUCCEEDED, "finished")
        await self._report_own(job, done, pb.Progress(phase="done", percent=100), final=True)

    def _keep(self, job: pb.Job, finished: Finished) -> None:
        """Stores what the job left at this party: its revealed result, the model it
        trained. A failure here fails the job at this party (Internal), never leaves
        it running."""
        try:
            released = _to_result(job, finished.results) if finished.results is not None else None
            if released is not None:
                self._store.save_result(released)
                self._audit("result.release", job.job_id, "ok", {"receiver": self.me})
            if self._models is not None and KINDS[job.spec.kind].trains_model and (released is not None or finished.kept):
                self._models.save(job, released, finished.kept, finished.public)
                self._audit("model.store", job.job_id, "ok", {"shared": str(bool(finished.kept)).lower(),
                                                              "revealed": str(released is not None).lower()})
        except MpcgateError:
            raise
        except Exception as err:  # noqa: BLE001  (a bug or a full disk here must end the job, reported)
            log.exception("job=%s: storing its outcome failed", job.job_id)
            raise MpcgateError(f"party {self.me} could not store the job's outcome: {type(err).__name__}") from err

    def _worker_event(self, job_id: str, action: str, details: dict[str, str]) -> None:
        """An event the worker reports (an intersection's sizes, a model query):
        audited; a query is counted against its model's policy here."""
        self._audit(action, job_id, "ok", details)
        if action == "model.query" and self._models is not None:
            self._models.record_query(job_id, details["model"], details["parties"].split(","), int(details["rows"]))

    def _start_checks(self, job: pb.Job) -> None:
        """Right before this party reads data: its own config and its datasets'
        current policies must still allow the job (they may have changed since
        review), and the files must still be the ones registered (checked by the review)."""
        review = self._review(job)
        if review.decision == "reject":
            self._audit("job.recheck", job.job_id, "refused", {"reasons": "; ".join(review.reasons)})
            raise PolicyRefused(f"party {self.me} refused at start: {'; '.join(review.reasons)}")

    def _release_refusal(self, job_id: str) -> str:
        """Right before a result leaves this party: '' if its policies still allow
        releasing to the job's receivers, else why not (audited either way)."""
        job = self._store.get(job_id)
        try:
            review = self._review(job)
        except MpcgateError as err:
            review = Review("reject", [err.message])
        ok = review.decision != "reject"
        self._audit("result.release_check", job_id, "ok" if ok else "refused",
                    {"receivers": ",".join(job.spec.result_receivers), "reasons": "; ".join(review.reasons)})
        if ok and has_input(job.spec, self.me):
            self._datasets.released(job_id)
        return "" if ok else f"party {self.me} refused to release: {'; '.join(review.reasons)}"

    def _plan(self, job: pb.Job, session_id: str, ranks: list[pb.PartyStatus]) -> WorkerPlan:
        order = [p.party_id for p in sorted(ranks, key=lambda p: p.rank)]
        spec = job.spec
        inputs = {i.party_id: i for i in spec.inputs}
        self._start_checks(job)
        loaded = None
        if self.me in inputs:
            loaded = self._datasets.load(job, inputs[self.me])
            self._audit("data.read", job.job_id, "ok", {"dataset": inputs[self.me].dataset,
                                                       "columns": ",".join(inputs[self.me].columns)})
            if spec.partitioning == pb.PARTITIONING_VERTICAL:
                self._datasets.intersected(job.job_id, inputs[self.me].dataset, [p for p in order if p != self.me])
        model = None
        if self.me in spec.model.holders:
            if self._models is None:
                raise FailedPrecondition(f"party {self.me} keeps no models")
            model = self._models.holding(job)
            self._audit("model.use", job.job_id, "ok", {"model": spec.model.model_id, "kind": spec.kind})
        layout = [PartyLayout(rank=r, party_id=p, columns=list(inputs[p].columns) if p in inputs else [],
                              rows=(loaded.rows if loaded else 0) if p == self.me else -1)
                  for r, p in enumerate(order)]
        addresses = {p: self.config.peer_addresses[p] for p in order if p != self.me}
        dealer = None
        if spec.provider == pb.PROVIDER_TTP:
            assert self.config.dealer is not None  # _start_checks
            dealer, addresses[dealer] = self.config.dealer
        return WorkerPlan(
            job_id=job.job_id, session_id=session_id, party_id=self.me, parties=order, addresses=addresses,
            dealer=dealer,
            tls=self.config.tls_files, kind=spec.kind,
            partitioning="vertical" if spec.partitioning == pb.PARTITIONING_VERTICAL else "horizontal",
            receivers=[order.index(r) for r in spec.result_receivers],
            layout=layout, parameters=parameters_of(spec),
            source=loaded.source if loaded else None, failure_timeout=self.config.failure_timeout,
            provider=pb.Provider.Name(spec.provider).removeprefix("PROVIDER_"),
            rules=self._datasets.rules(job, self.me) if loaded else ReleaseRules(), model=model,
        )

    async def _report_own(self, job: pb.Job, status: pb.PartyStatus, progress: pb.Progress, final: bool = False) -> None:
        if job.coordinator == self.me:
            await self.on_report(job.job_id, status, progress, self.me, None, None)
        else:
            def own(j: pb.Job) -> None:
                set_party(j, status)
                if progress.ByteSize():
                    j.progress.CopyFrom(progress)
            self._store.update(job.job_id, own)
            head = self._audit_head() if final else None
            record = self._sign(job, status.state, status.error.reason, head) if head is not None else None
            try:
                await self._peers.report(job.coordinator, job.job_id, status, progress, head, record)
            except MpcgateError as err:
                log.warning("could not report job=%s to coordinator=%s: %s", job.job_id, job.coordinator, err.message)


    def _sign(self, job: pb.Job, state: states.State, reason: str, head: tuple[int, str]) -> Any:
        """This party's signed record of the job (gateway.jobs.records), kept here too;
        `head` is the audit head it also sends beside it."""
        return self._records.sign(job, state, reason, head, self._datasets.ledger(job, self.me),
                                  self._store.result(job.job_id))


def _progress(p: Progress) -> pb.Progress:
    return pb.Progress(phase=p.phase, percent=p.percent, bytes_sent=p.bytes_sent, bytes_received=p.bytes_received,
                       rounds=p.rounds)


def _to_result(job: pb.Job, values: dict[str, Result]) -> pb.JobResult:
    result = pb.JobResult(job_id=job.job_id, provider=job.spec.provider, produced_at=now())
    for name, value in values.items():
        array = np.ascontiguousarray(value.values, dtype="<f8")
        result.values.append(pb.ResultValue(
            name=name, labels=value.labels, column_labels=value.column_labels, suppressed=value.suppressed,
            tensor=tensor_pb2.Tensor(element_type=tensor_pb2.ELEMENT_TYPE_FLOAT64, shape=array.shape,
                                     byte_order=tensor_pb2.BYTE_ORDER_LITTLE_ENDIAN, data=array.tobytes()),
        ))
    return result
