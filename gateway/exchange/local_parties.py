"""Runs one CrypTen program in one OS process per party on this machine, over
CrypTen's gloo transport or over mpcgate's gRPC exchange with mutual TLS ("grpc":
mpcgate's communicator; "torch": CrypTen's own DistributedCommunicator on the
exchange's torch.distributed backend).

This is how tests, benchmarks and the smoke check run real multi-party CrypTen
locally. Processes are started with `spawn` (never fork: torch and gRPC state must
not be copied); each joins the session, initializes CrypTen, runs the program and
reports its result or its traceback. The first failure or a timeout ends every
party: nothing is left running. For gRPC, a throw-away federation CA and one
certificate per party are minted, and each party serves the exchange on its own
loopback port.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

Program = Callable[[int, int, Any], Any]
"""program(rank, world_size, args) -> a picklable result; runs after crypten.init()."""

Transport = Literal["gloo", "grpc", "torch"]
Provider = Literal["TFP", "TTP"]
DEALER = "dealer"
"""The dealer's party name in local sessions (and in a LocalFederation)."""
RUN_DIR_ENV = "MPCGATE_LOCAL_RUN_DIR"
"""Set in every party process: the run's scratch folder (the dealer's pid is in `dealer.pid`)."""


def party_name(rank: int) -> str:
    return f"party{rank}"


def _member(rank: int, world_size: int) -> str:
    """Ranks past the parties belong to the dealer (CrypTen's TTP rank)."""
    return party_name(rank) if rank < world_size else DEALER


class PartyFailed(RuntimeError):
    """A party's program raised, died or ran out of time."""

    def __init__(self, rank: int, detail: str) -> None:
        super().__init__(f"party {rank} failed: {detail}")
        self.rank = rank
        self.detail = detail


@dataclass(frozen=True)
class _Outcome:
    rank: int
    ok: bool
    value: Any


@dataclass
class _Rendezvous:
    """How a party finds the others: a gloo file, or a PKI folder and an address book."""

    transport: Transport
    directory: str
    exchange_config: Any = None
    provider: Provider = "TFP"
    ports: Any = None  # mp.Queue of (rank, port), child -> parent
    books: list[Any] = field(default_factory=list)  # one mp.Queue per rank, parent -> child


def _join_gloo(rank: int, world_size: int, rdv: _Rendezvous) -> Callable[[], None]:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), DISTRIBUTED_BACKEND="gloo",
        RENDEZVOUS=f"file://{Path(rdv.directory, 'rendezvous')}",
    )
    import crypten

    crypten.init()
    return crypten.uninit


def _join_grpc(rank: int, world_size: int, rdv: _Rendezvous) -> Callable[[], None]:
    from mpc.runtime import communicator, distributed, ttp
    from mpc.runtime.wire import Wire

    import crypten

    from gateway.exchange.node import ExchangeConfig, ExchangeNode
    from gateway.transport.tls import TlsIdentity

    names = [party_name(r) for r in range(world_size)]
    dealer = DEALER if rdv.provider == "TTP" else None
    me = _member(rank, world_size)
    node = ExchangeNode(
        TlsIdentity.from_dir(Path(rdv.directory), me),
        allowed_peers={*names, *([dealer] if dealer else [])} - {me},
        config=rdv.exchange_config or ExchangeConfig(),
        driven=True,  # this process's one program thread runs the exchange
    ).start()
    rdv.ports.put((rank, node.port))
    session_id, addresses = rdv.books[rank].get(timeout=120)
    session = node.open_session(session_id, addresses)

    def leave() -> None:
        try:
            crypten.uninit()
            session.close()  # (mpcgate's communicator closes it on uninit; CrypTen's does not)
        finally:
            node.stop()

    if rdv.transport == "torch":  # CrypTen's own communicator (and TTP), on torch.distributed over the exchange
        distributed.bind(Wire(session, [*names, *([dealer] if dealer else [])], me))
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), DISTRIBUTED_BACKEND=distributed.BACKEND,
                          RENDEZVOUS=f"file://{Path(rdv.directory, 'rendezvous')}")
        crypten.cfg.mpc.provider = rdv.provider  # CrypTen's own TTP client and server, unmodified
        if rank == world_size:
            from crypten.mpc.provider.ttp_provider import TTPServer

            try:
                TTPServer()  # serves party 0 until it says terminate
            finally:
                node.stop()
            return lambda: None
        crypten.init()
        return leave
    sessions = iter(range(1, 1 << 30))

    def fresh() -> communicator.GrpcCommunicator:
        """A communicator on the session; after crypten.uninit(), on a new one (every
        party re-initializes in the same order, so their ids agree)."""
        nonlocal session
        if session.closed:
            session = node.open_session(f"{session_id}.{next(sessions)}", addresses)
        return communicator.GrpcCommunicator(session, names, me, dealer=dealer)

    communicator.install(fresh)
    ttp.use(rdv.provider)
    if rank == world_size:  # the dealer: serve party 0 until it says terminate
        try:
            ttp.serve()
        finally:
            crypten.uninit()
            node.stop()
        return lambda: None
    crypten.init()
    return leave


def _run_party(rank: int, world_size: int, program: Program, args: Any, rdv: _Rendezvous, results: mp.Queue) -> None:
    os.environ[RUN_DIR_ENV] = rdv.directory
    try:
        import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

        join = _join_gloo if rdv.transport == "gloo" else _join_grpc
        leave = join(rank, world_size, rdv)
        value = program(rank, world_size, args)
    except BaseException:  # noqa: BLE001  (report every failure to the parent, then exit non-zero)
        # Report before tearing anything down, so the failing party is named
        # before its peers notice the broken connection and fail in turn.
        results.put(_Outcome(rank, False, traceback.format_exc()))
        raise SystemExit(1)
    results.put(_Outcome(rank, True, value))
    leave()


def run_parties(
    program: Program,
    world_size: int,
    args: Any = None,
    timeout: float = 300.0,
    transport: Transport = "gloo",
    exchange_config: Any = None,
    allow_failures: bool = False,
    provider: Provider = "TFP",
) -> list[Any]:
    """Runs `program` on `world_size` parties and returns their results by rank.

    With `provider="TTP"` (over the exchange), a dealer process with its own
    certificate joins the session and hands out the Beaver triples: mpcgate's dealer
    with transport "grpc", CrypTen's own TTPServer with transport "torch". With `allow_failures`, a
    failed party's entry is its `PartyFailed` instead of the whole run raising
    (tests of failure handling use this)."""
    if provider == "TTP" and transport == "gloo":
        raise ValueError("the TTP dealer runs over the exchange (transport grpc or torch)")
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="mpcgate-parties-") as scratch:
        rdv = _Rendezvous(transport, scratch, exchange_config, provider)
        members = world_size + (1 if provider == "TTP" else 0)
        if transport != "gloo":
            _mint_certificates(Path(scratch), world_size, provider == "TTP")
            rdv.ports = ctx.Queue()
            rdv.books = [ctx.Queue() for _ in range(members)]
        procs = [
            ctx.Process(target=_run_party, args=(r, world_size, program, args, rdv, results), daemon=True)
            for r in range(world_size)
        ]
        dealer = None
        if provider == "TTP":
            dealer = ctx.Process(target=_run_dealer, args=(world_size, rdv), daemon=True)
            dealer.start()
            Path(scratch, "dealer.pid").write_text(str(dealer.pid))
        for p in procs:
            p.start()
        try:
            if transport != "gloo":
                _exchange_addresses(rdv, procs + ([dealer] if dealer else []), timeout)
            return _collect(procs, results, timeout, allow_failures)
        finally:
            if dealer is not None:
                dealer.join(10)  # it ends when party 0 says terminate
                procs.append(dealer)
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()


def _run_dealer(world_size: int, rdv: _Rendezvous) -> None:
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

    _join_grpc(world_size, world_size, rdv)


def _mint_certificates(directory: Path, world_size: int, dealer: bool) -> None:
    from gateway.transport import pki

    pki.init_ca(directory)
    for r in range(world_size):
        pki.issue(directory, party_name(r))
    if dealer:
        pki.issue(directory, DEALER)


def _exchange_addresses(rdv: _Rendezvous, procs: Sequence[BaseProcess], timeout: float) -> None:
    """Collects each member's port, then tells every member where the others are."""
    parties = len(rdv.books) - (rdv.provider == "TTP")
    addresses: dict[str, str] = {}
    deadline = time.monotonic() + min(timeout, 120)
    while len(addresses) < len(procs):
        try:
            rank, port = rdv.ports.get(timeout=0.5)
        except queue.Empty:
            dead = _dead_without_result(procs, {})
            if dead is not None:
                raise PartyFailed(dead, f"process exited with code {procs[dead].exitcode}") from None
            if time.monotonic() > deadline:
                raise PartyFailed(-1, "parties did not start their exchange in time") from None
            continue
        addresses[_member(rank, parties)] = f"127.0.0.1:{port}"
    session = f"local-{uuid.uuid4().hex[:12]}"
    for book in rdv.books:
        book.put((session, addresses))


def _collect(procs: Sequence[BaseProcess], results: mp.Queue, timeout: float, allow_failures: bool) -> list[Any]:
    deadline = time.monotonic() + timeout
    values: dict[int, Any] = {}
    while len(values) < len(procs):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(set(range(len(procs))) - set(values))
            if not allow_failures:
                raise PartyFailed(missing[0], f"no result within {timeout:.0f} s")
            values.update({r: PartyFailed(r, f"no result within {timeout:.0f} s") for r in missing})
            break
        try:
            outcome: _Outcome = results.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            dead = _dead_without_result(procs, values)
            if dead is None:
                continue
            try:  # its report may still be in flight: give it a moment
                outcome = results.get(timeout=2.0)
            except queue.Empty:
                outcome = _Outcome(dead, False, f"process exited with code {procs[dead].exitcode}")
        if outcome.ok:
            values[outcome.rank] = outcome.value
        elif allow_failures:
            values[outcome.rank] = PartyFailed(outcome.rank, outcome.value)
        else:
            raise PartyFailed(outcome.rank, outcome.value)
    return [values[r] for r in range(len(procs))]


def _dead_without_result(procs: Sequence[BaseProcess], values: dict[int, Any]) -> int | None:
    for rank, p in enumerate(procs):
        if rank not in values and p.exitcode is not None and p.exitcode != 0:
            return rank
    return None
