"""A job's worker process: one per job per party, started by the party's gateway.

It serves the exchange on a loopback port (its gateway relays peers' streams to
it), dials the peers' gateways with the party's certificate, runs the job program
under CrypTen with the gRPC communicator, and reports to its gateway over a pipe:
("listening", port), ("progress", phase, percent, bytes_sent, bytes_received, rounds),
("release",) (answered ("release", refusal or "") by the gateway, which rechecks
its policies right before anything is revealed), ("audit", action, {key: text})
(an event of the job at this party for the gateway's audit log, such as an
intersection's set sizes), ("result", {name: (values,
labels, column labels, suppressed)} or None, {name: (share, scale)} of values kept
secret-shared, {name: array} of public values kept with them), or ("error", reason, message, metadata) (a failed peer is metadata's party_id).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WorkerPlan:
    job_id: str
    session_id: str
    party_id: str
    parties: list[str]  # by rank
    addresses: dict[str, str]  # peers' gateway addresses
    tls: tuple[str, str, str]  # ca, cert, key paths of this party
    kind: str
    partitioning: str  # "horizontal" | "vertical"
    receivers: list[int]  # ranks
    layout: list[dict[str, Any]]  # by rank: party_id, columns, rows
    parameters: dict[str, Any]
    source: Any  # gateway.ingest.Source: the input's columnar cache (read here, not sent through the pipe); None without input
    failure_timeout: float = 20.0
    provider: str = "TFP"
    dealer: str | None = None  # the session's dealer (TTP), if any; may be this process's party
    rules: Any = None  # this party's ReleaseRules (mpc.programs.context)
    model: dict[str, Any] | None = None  # what this party holds of the job's model (JobContext.model)

    @property
    def members(self) -> list[str]:
        """Everyone in the session: the parties by rank, then the dealer if any."""
        return [*self.parties, *([self.dealer] if self.dealer else [])]


def warm(conn: Connection) -> None:
    """Entry point of a pre-started worker: torch and CrypTen imported ahead of
    time, it waits for one job's plan, runs that job and exits (no state carried
    from one job to the next). End of input: exits without a job."""
    import mpc  # noqa: F401  (CrypTen compatibility, torch)
    import crypten  # noqa: F401

    import mpc.programs  # noqa: F401

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
            conn.send(("error", str(reason), message, dict(getattr(err, "metadata", {}))))
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
    import mpc  # noqa: F401  (CrypTen compatibility)
    import crypten

    from gateway.auth.pki import PartyFiles
    from gateway.auth.tls import TlsIdentity
    from gateway.exchange.node import ExchangeConfig, ExchangeNode
    from mpc import communicator, ttp
    from mpc.programs import run
    from mpc.programs.context import JobContext, PartyLayout, ReleaseRules
    from gateway.errors import PolicyRefused

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
        conn.send(("listening", node.port))
        addresses = {**plan.addresses, plan.party_id: f"127.0.0.1:{node.port}"}
        session = node.open_session(plan.session_id, {p: addresses[p] for p in members})
        communicator.install(lambda: communicator.GrpcCommunicator(session, plan.parties, plan.party_id, plan.dealer))
        ttp.use(plan.provider)
        if plan.party_id == plan.dealer:  # the dealer's worker: serve party 0, reveal nothing
            try:
                ttp.serve()
            finally:
                crypten.uninit()
            conn.send(("result", None, {}, {}))
            return
        crypten.init()

        def progress(phase: str, percent: float) -> None:
            rounds = crypten.communicator.get().get_communication_stats()["exchanges"]
            conn.send(("progress", phase, float(percent), session.bytes_sent, session.bytes_received, int(rounds)))

        def before_release() -> None:
            conn.send(("release",))
            _, refusal = conn.recv()
            if refusal:
                raise PolicyRefused(refusal)

        def audit(action: str, details: dict[str, str]) -> None:
            conn.send(("audit", action, details))

        rank = plan.parties.index(plan.party_id)
        table, keys = plan.source.read() if plan.source is not None else (np.zeros((0, 0)), None)
        context = JobContext(
            kind=plan.kind,
            partitioning=plan.partitioning,
            rank=rank,
            world_size=len(plan.parties),
            layout=[PartyLayout(**entry) for entry in plan.layout],
            receivers=plan.receivers,
            parameters=plan.parameters,
            table=table,
            keys=keys,
            rules=plan.rules or ReleaseRules(),
            progress=progress,
            before_release=before_release,
            audit=audit,
            model=plan.model,
        )
        progress("computing", 5.0)
        results = run(context)
        progress("done", 100.0)
        payload = None if not results else {
            k: (np.asarray(r.values, dtype=np.float64), list(r.labels), list(r.column_labels), list(r.suppressed))
            for k, r in results.items()}
        conn.send(("result", payload, context.kept, context.public))
        crypten.uninit()
    finally:
        node.stop()
