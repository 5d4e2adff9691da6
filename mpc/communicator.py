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
frames_sent.
"""

from __future__ import annotations

import functools
import pickle
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from crypten.common import serial
from crypten.communicator import Communicator
from crypten.communicator.communicator import _logging
from torch.distributed import ReduceOp

from gateway.errors import FailedPrecondition, InvalidArgument
from gateway.exchange import frames
from gateway.exchange.node import Session
from mpc import compat

TAG = "crypten"


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    """One exchange per call, and CrypTen's own accounting (its `_logging`
    decorator) when it would count: with cfg.communicator.verbose, or for its
    one-party shortcuts. Party 0 takes the dealer's answers due after an exchange."""

    @functools.wraps(method)
    def exchange(self: "GrpcCommunicator", *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
            self.settle_dealer()
            return result
        finally:
            self.exchanges += 1

    logged = _logging(exchange)

    @functools.wraps(method)
    def wrapper(self: "GrpcCommunicator", *args: Any, **kwargs: Any) -> Any:
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


class _PendingRecv:
    """What irecv returns. Like gloo's, it is matched when posted: the k-th receive
    posted for a sender gets that sender's k-th frame, whatever order the waits
    come in (a wait, or any later receive from that sender, first fills the
    receives posted before it)."""

    def __init__(self, comm: "GrpcCommunicator", tensor: torch.Tensor, src: int) -> None:
        self.tensor, self._comm, self._src, self._done = tensor, comm, src, False

    def wait(self) -> None:
        while not self._done:
            self._comm._fill_next_posted(self._src)

    def fill(self, value: torch.Tensor) -> None:
        self.tensor.copy_(value)
        self._done = True

    def is_completed(self) -> bool:
        return self._done


class GrpcCommunicator(Communicator):
    BYTES_PER_ELEMENT = 8
    instance: ClassVar["GrpcCommunicator | None"] = None

    def __init__(self, session: Session, parties: Sequence[str], party_id: str, dealer: str | None = None) -> None:
        """`parties` lists the session's parties by rank. With `dealer`, the session
        also has CrypTen's trusted third party (TTP provider) at rank world_size;
        `party_id` may then be the dealer itself."""
        members = [*parties, *([dealer] if dealer else [])]
        if party_id not in members:
            raise InvalidArgument(f"party {party_id!r} is not among the session's parties")
        self.session = session
        self.parties = list(parties)
        self.dealer = dealer
        self._members = members
        self.rank = members.index(party_id)
        self.world_size = len(self.parties)
        self._name = f"rank{self.rank}"
        # CrypTen's process groups, by the ranks they hold
        self.main_group = None
        self.ttp_group = "ttp"
        self.ttp_comm_group = "ttp_comm"
        self.ttp_initialized = dealer is not None
        self._dealer_answers: deque[torch.Tensor] = deque()
        self._posted: defaultdict[int, deque[_PendingRecv]] = defaultdict(deque)  # irecvs by sender, in post order
        self.reset_communication_stats()

    # -- CrypTen's class-level protocol --------------------------------------

    @classmethod
    def is_initialized(cls) -> bool:
        return cls.instance is not None

    @classmethod
    def get(cls) -> "GrpcCommunicator | None":
        return cls.instance

    @classmethod
    def shutdown(cls) -> None:
        instance = cls.instance
        if instance is None:
            return
        try:
            if instance.ttp_initialized and instance.rank == 0 and instance.dealer not in instance.session.failed_peers():
                instance._send_object("terminate", instance.get_ttp_rank())  # ends the dealer's loop
        finally:
            try:
                instance.session.close()  # a clean close, so peers blame the real failure, not us
            finally:
                cls.instance = None

    # -- point to point -------------------------------------------------------

    def _send_to(self, dst: int, tensor: torch.Tensor, payload_type: int = frames.TENSOR) -> None:
        self.session.send(self._members[dst], TAG, tensor.detach().contiguous().numpy(), payload_type)

    def _recv_from(self, src: int | None, like: torch.Tensor | None = None) -> torch.Tensor:
        """The next frame from rank `src` (None: from whichever party sends first),
        after the receives posted earlier for it."""
        senders = self._others() if src is None else [src]
        for sender in senders:
            while self._posted[sender]:
                self._fill_next_posted(sender)
        party, frame = self.session.recv_any([self._members[r] for r in senders], TAG)
        return self._checked(torch.from_numpy(frame.array), like, self._members.index(party))

    def _fill_next_posted(self, src: int) -> None:
        posted = self._posted[src].popleft()
        frame = self.session.recv(self._members[src], TAG)
        posted.fill(self._checked(torch.from_numpy(frame.array), posted.tensor, src))

    @staticmethod
    def _checked(received: torch.Tensor, like: torch.Tensor | None, src: int) -> torch.Tensor:
        if like is None:
            return received
        # like gloo, only the element count and type must agree (CrypTen sends a
        # 0-d seed into a 1-element buffer)
        if received.numel() != like.numel() or received.dtype != like.dtype:
            raise InvalidArgument(
                f"expected {like.dtype} {tuple(like.shape)} from rank {src}, got {received.dtype} {tuple(received.shape)}"
            )
        return received.reshape(like.shape)

    def _others(self) -> list[int]:
        return [r for r in range(self.world_size) if r != self.rank]

    def _group(self, group: Any) -> list[int]:
        """The ranks of one of CrypTen's groups (None: the parties)."""
        if group == self.ttp_group:
            return list(range(self.world_size + 1))
        if group == self.ttp_comm_group:
            return [0, self.world_size]
        return list(range(self.world_size))

    @_counted
    def send(self, tensor: torch.Tensor, dst: int) -> None:
        self._send_to(dst, tensor)

    @_counted
    def recv(self, tensor: torch.Tensor, src: int | None = None) -> torch.Tensor:
        return self._recv_from(src, tensor).clone()  # type: ignore[arg-type]

    @_counted
    def isend(self, tensor: torch.Tensor, dst: int) -> _Completed:
        self._send_to(dst, tensor)
        return _Completed()

    @_counted
    def irecv(self, tensor: torch.Tensor, src: int | None = None) -> _PendingRecv:
        if src is None:
            raise InvalidArgument("a posted receive needs its source rank (recv takes any)")
        posted = _PendingRecv(self, tensor, src)
        self._posted[src].append(posted)
        return posted

    # -- collectives ------------------------------------------------------------

    @_counted
    def scatter(self, scatter_list: list[torch.Tensor], src: int, size: Any = None, device: Any = None) -> torch.Tensor:
        if self.rank == src:
            for r in self._others():
                self._send_to(r, scatter_list[r])
            return scatter_list[src]
        return self._recv_from(src)

    @_counted
    def reduce(self, input: Any, dst: int, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        if self.rank != dst:
            self._send_to(dst, tensor)
            return None
        combine = _combiner(op)
        result = tensor.clone()
        for r in self._others():
            result = combine(result, self._recv_from(r, tensor))
        return split(result)

    @_counted
    def all_reduce(self, input: Any, op: Any = ReduceOp.SUM, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        for r in self._others():
            self._send_to(r, tensor)
        combine = _combiner(op)
        parts = {self.rank: tensor}
        for r in self._others():
            parts[r] = self._recv_from(r, tensor)
        result = parts[0].clone()
        for r in range(1, self.world_size):  # the same order on every party
            result = combine(result, parts[r])
        return split(result)

    @_counted
    def gather(self, tensor: torch.Tensor, dst: int) -> list[torch.Tensor | None]:
        if self.rank != dst:
            self._send_to(dst, tensor)
            return [None]
        return [tensor.clone() if r == dst else self._recv_from(r, tensor) for r in range(self.world_size)]

    @_counted
    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        for r in self._others():
            self._send_to(r, tensor)
        return [tensor.clone() if r == self.rank else self._recv_from(r, tensor) for r in range(self.world_size)]

    @_counted
    def broadcast(self, input: Any, src: int, group: Any = None, batched: bool = False) -> Any:
        tensor, split = _pack(input, batched)
        if self.rank == src:
            for r in self._group(group):
                if r != src:
                    self._send_to(r, tensor)
            return input
        received = self._recv_from(src, tensor)
        targets = input if batched else [input]
        for target, value in zip(targets, split(received) if batched else [received]):
            target.data.copy_(value)
        return input

    @_counted
    def barrier(self) -> None:
        empty = torch.empty(0, dtype=torch.int64)
        for r in self._others():
            self._send_to(r, empty)
        for r in self._others():
            self._recv_from(r, empty)

    # -- the TTP dealer's answers, off the critical path -----------------------

    def ask_dealer(self, request: Any, answer: torch.Tensor) -> None:
        """Party 0 sends `request` to the TTP dealer; the dealer's answer is written
        into `answer` at the end of this party's next operation with the parties.
        CrypTen uses a correction term only after opening a value masked by its
        triple, so the dealer's round trip overlaps that opening (see mpc.ttp)."""
        self._send_object(request, self.get_ttp_rank())
        self.exchanges += 1
        self._dealer_answers.append(answer)

    def settle_dealer(self) -> None:
        """Takes every answer the dealer still owes (into its placeholder)."""
        while self._dealer_answers:
            answer = self._dealer_answers.popleft()
            answer.copy_(self._recv_from(self.get_ttp_rank(), answer))

    # -- objects: pickled out, CrypTen's restricted unpickler in --------------

    def _send_object(self, obj: Any, dst: int) -> None:
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        self.session.send(self._members[dst], TAG, data, frames.OBJECT)

    def _recv_object(self, src: int) -> Any:
        frame = self.session.recv(self._members[src], TAG)
        if frame.payload_type != frames.OBJECT:
            raise InvalidArgument(f"expected an object from rank {src}, got a tensor")
        return serial.restricted_loads(frame.array.tobytes())

    @_counted
    def send_obj(self, obj: Any, dst: int, group: Any = None) -> None:
        self._send_object(obj, dst)

    @_counted
    def recv_obj(self, src: int, group: Any = None) -> Any:
        return self._recv_object(src)

    @_counted
    def broadcast_obj(self, obj: Any, src: int, group: Any = None) -> Any:
        if self.rank == src:
            for r in self._others():
                self._send_object(obj, r)
            return obj
        return self._recv_object(src)

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
        return "mpcgate"

    def reset_communication_stats(self) -> None:
        super().reset_communication_stats()
        self.exchanges = 0
        self._wire_baseline = (self.session.bytes_sent, self.session.bytes_received, self.session.frames_sent)

    def get_communication_stats(self) -> dict[str, float]:
        sent, received, frames_sent = self._wire_baseline
        return {**super().get_communication_stats(), "exchanges": self.exchanges,
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


_COMBINERS = {ReduceOp.SUM: torch.add, ReduceOp.PRODUCT: torch.mul, ReduceOp.MIN: torch.minimum,
              ReduceOp.MAX: torch.maximum, ReduceOp.BAND: torch.bitwise_and, ReduceOp.BOR: torch.bitwise_or,
              ReduceOp.BXOR: torch.bitwise_xor}


def _combiner(op: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    combine = _COMBINERS.get(op)
    if combine is None:
        raise InvalidArgument(f"reduce op {op} is not supported")
    return combine


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
