"""CrypTen's `Communicator` over mpcgate's exchange: unmodified CrypTen programs run
with one OS process per party and every byte on mutual-TLS gRPC.

CrypTen picks its communicator through module functions in `crypten.communicator`
(`_init`, `get`, `is_initialized`, `uninit`); `install` rebinds them, so
`crypten.init()` uses this class, and `uninstall` restores gloo. Collectives are
built from ordered point-to-point frames: every party issues them in the same order
(MPI style), and sends never wait for the receiver.

Statistics: CrypTen's keys (rounds, bytes, time) are CrypTen's own accounting, by
its `_logging` decorator, counted only with `cfg.communicator.verbose`, as over gloo.
What really crossed the wire is under keys of its own, always counted: exchanges
(communicator calls), wire_bytes_sent (serialized frames), wire_bytes_received,
frames_sent; and dealer_misses, the TTP dealer's wrong guesses that party 0 dropped.
"""

from __future__ import annotations

import functools
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from mpc.runtime import compat, distributed, ttp
from mpc.runtime.wire import PostedRecv, Wire, combiner

import torch
from crypten.communicator import Communicator
from crypten.communicator.communicator import _logging
from torch.distributed import ReduceOp

from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.transport import Session


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    """One exchange per call, and CrypTen's own accounting (its `_logging`
    decorator) when it would count: with cfg.communicator.verbose, or for its
    one-party shortcuts. Party 0 takes the dealer's answers due after an exchange."""

    @functools.wraps(method)
    def exchange(self: GrpcCommunicator, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
            self.settle_dealer()
            return result
        finally:
            self.exchanges += 1

    logged = _logging(exchange)

    @functools.wraps(method)
    def wrapper(self: GrpcCommunicator, *args: Any, **kwargs: Any) -> Any:
        if self.world_size < 2 or compat.flag("communicator", "verbose"):
            return logged(self, *args, **kwargs)
        return exchange(self, *args, **kwargs)

    return wrapper


class _Completed:
    """What isend returns: the frame is already queued, so there is nothing to wait for."""

    def wait(self) -> None:
        return None

    def is_completed(self) -> bool:
        return True


class GrpcCommunicator(Communicator):
    BYTES_PER_ELEMENT = 8
    instance: ClassVar[GrpcCommunicator | None] = None

    def __init__(self, session: Session, parties: Sequence[str], party_id: str, dealer: str | None = None) -> None:
        """`parties` lists the session's parties by rank. With `dealer`, the session
        also has CrypTen's trusted third party (TTP provider) at rank world_size;
        `party_id` may then be the dealer itself. Joins torch.distributed over the
        same wire (mpc.runtime.distributed), with CrypTen's process groups."""
        self.wire = Wire(session, [*parties, *([dealer] if dealer else [])], party_id)
        self.session = session
        self.parties = list(parties)
        self.dealer = dealer
        self.rank = self.wire.rank
        self.world_size = len(self.parties)
        self._name = f"rank{self.rank}"
        self.ttp_group, self.ttp_comm_group, self.main_group = distributed.join(self.wire, self.world_size)
        self.ttp_initialized = dealer is not None
        self._dealer_answers: deque[tuple[torch.Tensor, torch.Tensor]] = deque()  # (request's digest, placeholder)
        self.reset_communication_stats()

    # -- CrypTen's class-level protocol --------------------------------------

    @classmethod
    def is_initialized(cls) -> bool:
        return cls.instance is not None

    @classmethod
    def get(cls) -> GrpcCommunicator | None:
        return cls.instance

    @classmethod
    def shutdown(cls) -> None:
        instance = cls.instance
        if instance is None:
            return
        try:
            if instance.ttp_initialized and instance.rank == 0 and instance.dealer not in instance.session.failed_peers():
                instance.wire.send_object("terminate", instance.get_ttp_rank())  # ends the dealer's loop
        finally:
            try:
                distributed.leave()
                instance.session.close()  # a clean close, so peers blame the real failure, not us
            finally:
                cls.instance = None

    def _ranks(self, group: Any = None) -> list[int]:
        """The ranks of one of CrypTen's process groups (None: the parties)."""
        return list(range(self.world_size)) if group is None else distributed.ranks(group)

    def _others(self) -> list[int]:
        return [r for r in range(self.world_size) if r != self.rank]

    # -- point to point -------------------------------------------------------

    @_counted
    def send(self, tensor: torch.Tensor, dst: int) -> None:
        self.wire.send(dst, tensor)

    @_counted
    def recv(self, tensor: torch.Tensor, src: int | None = None) -> torch.Tensor:
        return self.wire.receive(self._others() if src is None else [src], tensor)[1]

    @_counted
    def isend(self, tensor: torch.Tensor, dst: int) -> _Completed:
        self.wire.send(dst, tensor)
        return _Completed()

    @_counted
    def irecv(self, tensor: torch.Tensor, src: int | None = None) -> PostedRecv:
        if src is None:
            raise InvalidArgument("a posted receive needs its source rank (recv takes any)")
        return self.wire.post(tensor, src)

    # -- collectives ------------------------------------------------------------

    @_counted
    def scatter(self, scatter_list: list[torch.Tensor], src: int, size: Any = None, device: Any = None) -> torch.Tensor:
        return self.wire.scatter(scatter_list, src, self._ranks())

    @_counted
    def reduce(self, input: Any, dst: int, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        result = self.wire.reduce(tensor, dst, combiner(op), self._ranks())
        return None if result is None else split(result)

    @_counted
    def all_reduce(self, input: Any, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        return split(self.wire.all_reduce(tensor, combiner(op), self._ranks()))

    @_counted
    def gather(self, tensor: torch.Tensor, dst: int) -> list[torch.Tensor] | list[None]:
        return self.wire.gather(tensor, dst, self._ranks()) or [None]

    @_counted
    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        return self.wire.all_gather(tensor, self._ranks())

    @_counted
    def broadcast(self, input: Any, src: int, group: Any = None, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        received = self.wire.broadcast(tensor, src, self._ranks(group))
        if received is not None:
            targets = input if batched else [input]
            for target, value in zip(targets, split(received) if batched else [received]):
                target.data.copy_(value)
        return input

    @_counted
    def barrier(self) -> None:
        self.wire.barrier(self._ranks())

    # -- the TTP dealer's answers, off the critical path -----------------------

    def ask_dealer(self, request: Any, answer: torch.Tensor) -> None:
        """Party 0 sends `request` to the TTP dealer; the dealer's answer is written
        into `answer` at the end of this party's next operation with the parties.
        CrypTen uses a correction term only after opening a value masked by its
        triple, so the dealer's round trip overlaps that opening (see mpc.runtime.ttp)."""
        payload = pickle.dumps(request)
        self.wire.send_pickled(payload, self.get_ttp_rank())
        self.exchanges += 1
        self._dealer_answers.append((ttp.digest(payload), answer))

    def settle_dealer(self) -> None:
        """Takes every answer the dealer still owes (into its placeholder). An
        answer to another request is the dealer's wrong guess (mpc.runtime.ttp): dropped,
        and the next answer is the real one."""
        while self._dealer_answers:
            digest, answer = self._dealer_answers.popleft()
            for _ in range(2):
                received = self.wire.recv(self.get_ttp_rank())
                if torch.equal(received[: ttp.DIGEST_WORDS], digest):
                    break
                self.dealer_misses += 1
            else:
                raise InvalidArgument("the dealer answered other requests than party 0's, twice in a row")
            if received.numel() != ttp.DIGEST_WORDS + answer.numel():
                raise InvalidArgument(f"the dealer's answer has {received.numel() - ttp.DIGEST_WORDS} elements, "
                                      f"not {answer.numel()}")
            answer.copy_(received[ttp.DIGEST_WORDS :].view(answer.shape))

    # -- objects --------------------------------------------------------------------

    @_counted
    def send_obj(self, obj: Any, dst: int, group: Any = None) -> None:
        self.wire.send_object(obj, dst)

    @_counted
    def recv_obj(self, src: int, group: Any = None) -> Any:
        return self.wire.recv_object(src)

    @_counted
    def all_gather_obj(self, obj: Any) -> list[Any]:
        """Every party's object by rank, in one round (not one of CrypTen's calls)."""
        return self.wire.all_gather_objects(obj, self._ranks())

    @_counted
    def broadcast_obj(self, obj: Any, src: int, group: Any = None) -> Any:
        if self.rank == src:
            for r in self._ranks(group):
                if r != src:
                    self.wire.send_object(obj, r)
            return obj
        return self.wire.recv_object(src)

    # -- identity -----------------------------------------------------------------

    def get_world_size(self) -> int:
        return self.world_size

    def get_rank(self) -> int:
        return self.rank

    def get_ttp_rank(self) -> int:
        return self.world_size

    def set_name(self, name: str) -> None:
        if not isinstance(name, str):
            raise InvalidArgument("party name must be a string")
        self._name = name

    def get_name(self) -> str:
        return self._name

    def get_distributed_backend(self) -> str:
        return distributed.BACKEND

    def reset_communication_stats(self) -> None:
        super().reset_communication_stats()
        self.exchanges = 0
        self.dealer_misses = 0
        self._wire_baseline = (self.session.bytes_sent, self.session.bytes_received, self.session.frames_sent)

    def get_communication_stats(self) -> dict[str, float]:
        sent, received, frames_sent = self._wire_baseline
        return {**super().get_communication_stats(), "exchanges": self.exchanges, "dealer_misses": self.dealer_misses,
                "wire_bytes_sent": self.session.bytes_sent - sent,
                "wire_bytes_received": self.session.bytes_received - received,
                "frames_sent": self.session.frames_sent - frames_sent}


def _pack(input: Any, batched: bool) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """One tensor for a batched list (one frame instead of many), and how to undo it."""
    if not batched:
        return input, lambda t: t
    if not isinstance(input, list) or not input:
        raise InvalidArgument("batched input must be a non-empty list of tensors")
    if len({t.dtype for t in input}) != 1:
        raise InvalidArgument("batched tensors must share a dtype")
    shapes = [t.shape for t in input]
    sizes = [t.numel() for t in input]
    flat = torch.cat([t.reshape(-1) for t in input])
    return flat, lambda t: [part.reshape(shape) for part, shape in zip(torch.split(t, sizes), shapes)]


# -- plugging into CrypTen -------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}


def install(make: Callable[[], GrpcCommunicator]) -> None:
    """Makes `crypten.init()` use a communicator built by `make` (called once)."""
    import crypten.communicator as comm

    if not _ORIGINAL:
        _ORIGINAL.update({name: getattr(comm, name) for name in ("_init", "get", "is_initialized", "uninit")})

    def _init(use_threads: bool = False, rank: int = 0, world_size: int = 1, init_ttp: bool = False) -> None:
        if use_threads:
            raise FailedPrecondition("the gRPC communicator runs one process per party, not threads")
        if GrpcCommunicator.instance is None:
            GrpcCommunicator.instance = make()
        if init_ttp and not GrpcCommunicator.instance.ttp_initialized:
            raise FailedPrecondition("CrypTen's TTP provider needs a dealer in the session")

    def _get() -> GrpcCommunicator:
        if GrpcCommunicator.instance is None:
            raise RuntimeError("CrypTen not initialized. Please call crypten.init() first.")
        return GrpcCommunicator.instance

    comm._init = _init
    comm.get = _get
    comm.is_initialized = GrpcCommunicator.is_initialized
    comm.uninit = GrpcCommunicator.shutdown


def uninstall() -> None:
    """Restores CrypTen's own (gloo) communicator functions."""
    import crypten.communicator as comm

    for name, fn in _ORIGINAL.items():
        setattr(comm, name, fn)
    _ORIGINAL.clear()


__all__ = ["GrpcCommunicator", "install", "uninstall"]
