"""A job's worker process: one per job per party, started by the party's gateway.

It serves the exchange on a loopback port (its gateway relays peers' streams to
it), dials the peers' gateways with the party's certificate, runs the job program
under CrypTen with the gRPC communicator, and reports to its gateway over a pipe
in the messages of gateway.workers.plan.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from gateway.workers.plan import AskRelease, Audit, Failed, Finished, Listening, Progress, ReleaseAnswer, WorkerPlan


def warm(conn: Connection) -> None:
    """Entry point of a pre-started worker: torch and CrypTen imported ahead of
    time, it waits for one job's plan, runs that job and exits (no state carried
    from one job to the next). End of input: exits without a job."""
    import mpc.programs

    mpc.programs.preload()
    try:
        plan = conn.recv()
    except (EOFError, OSError):
        return
    main(plan, conn)


def main(plan: WorkerPlan, conn: Connection) -> None:
    """Process entry point (started with the spawn method)."""
    _die_with_gateway()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(name)s %(levelname)s %(message)s")
    try:
        _run(plan, conn)
    except BaseException as err:  # noqa: BLE001  (every failure is reported to the gateway, then exit non-zero)
        reason = getattr(err, "reason", type(err).__name__)
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        logging.getLogger(__name__).error("job %s failed: %s\n%s", plan.job_id, message, traceback.format_exc())
        try:
            conn.send(Failed(str(reason), message, dict(getattr(err, "metadata", {}))))
        except OSError:
            pass
        raise SystemExit(1) from None


def _die_with_gateway() -> None:
    """A worker is killed with its gateway, however the gateway ends (a SIGKILL
    included): without this it ran on until its peers' failure timeout, holding
    shares and ports (Linux: PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the gateway died before the call above
        os._exit(1)


def _run(plan: WorkerPlan, conn: Connection) -> None:
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)
    from mpc.runtime import communicator, ttp

    import crypten

    from gateway.exchange.node import ExchangeConfig, ExchangeNode
    from gateway.transport.pki import PartyFiles
    from gateway.transport.tls import TlsIdentity
    from mpc.catalogue.context import JobContext, Result
    from mpc.errors import FailedPrecondition, PolicyRefused
    from mpc.programs import run

    members = plan.members
    identity = TlsIdentity.load(PartyFiles(*(Path(p) for p in plan.tls)))
    node = ExchangeNode(
        identity,
        allowed_peers=set(members) - {plan.party_id},
        listen="127.0.0.1:0",
        config=ExchangeConfig(failure_timeout=plan.failure_timeout),
        accept_relayed=True,
        driven=True,  # this process's one program thread runs the exchange
    ).start()
    try:
        if node.port is None:  # (a node started with `listen` has one)
            raise FailedPrecondition("the worker's exchange is not listening")
        conn.send(Listening(node.port))
        addresses = {**plan.addresses, plan.party_id: f"127.0.0.1:{node.port}"}
        session = node.open_session(plan.session_id, {p: addresses[p] for p in members})
        communicator.install(lambda: communicator.GrpcCommunicator(session, plan.parties, plan.party_id, plan.dealer))
        ttp.use(plan.provider)
        if plan.party_id == plan.dealer:  # the dealer's worker: serve party 0, reveal nothing
            try:
                ttp.serve()
            finally:
                crypten.uninit()
            conn.send(Finished(None, {}, {}))
            return
        crypten.init()

        def progress(phase: str, percent: float) -> None:
            rounds = crypten.communicator.get().get_communication_stats()["exchanges"]
            conn.send(Progress(phase, float(percent), session.bytes_sent, session.bytes_received, int(rounds)))

        def before_release() -> None:
            conn.send(AskRelease())
            answer: ReleaseAnswer = conn.recv()
            if answer.refusal:
                raise PolicyRefused(answer.refusal)

        def audit(action: str, details: dict[str, str]) -> None:
            conn.send(Audit(action, details))

        rank = plan.parties.index(plan.party_id)
        table, keys = plan.source.read() if plan.source is not None else (np.zeros((0, 0)), None)
        context = JobContext(
            kind=plan.kind,
            partitioning=plan.partitioning,
            rank=rank,
            world_size=len(plan.parties),
            layout=plan.layout,
            receivers=plan.receivers,
            parameters=plan.parameters,
            table=table,
            keys=keys,
            categories=dict(plan.source.categories) if plan.source is not None else {},
            rules=plan.rules,
            progress=progress,
            before_release=before_release,
            audit=audit,
            model=plan.model,
        )
        progress("computing", 5.0)
        results = run(context)
        progress("done", 100.0)
        released = None if not results else {
            k: Result(np.asarray(r.values, dtype=np.float64), list(r.labels), list(r.column_labels), list(r.suppressed))
            for k, r in results.items()}
        conn.send(Finished(released, context.kept, context.public))
        crypten.uninit()
    finally:
        node.stop()
