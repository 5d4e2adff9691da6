"""Tensors between a session's members by rank: ordered point-to-point frames on
mpcgate's exchange, receives matched when posted, and the collective algorithms
over any group of ranks. CrypTen's communicator (mpc.runtime.communicator) and the
torch.distributed backend (mpc.runtime.distributed) both run on one `Wire`, so frames sent
through either API keep one order per pair of parties, as every party issues its
calls in the same order (MPI style). Sends never wait for the receiver.

Point-to-point frames and the collectives' frames travel as two streams (two tags
on the exchange), as gloo keeps them apart: a receive from any source takes the
next point-to-point frame, never a frame of a collective a peer has already
entered."""

from __future__ import annotations

import pickle
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from crypten.common import serial
from torch.distributed import ReduceOp

from mpc import transport
from mpc.errors import InvalidArgument
from mpc.transport import Session

P2P, COLLECTIVE = "crypten", "crypten.collective"

Combine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PostedRecv:
    """A posted receive. Like gloo's, it is matched when posted: the k-th receive
    posted for a sender gets that sender's k-th frame, whatever order the waits
    come in (a wait, or any later receive from that sender, first fills the
    receives posted before it)."""

    def __init__(self, wire: Wire, tensor: torch.Tensor, src: int) -> None:
        self.tensor, self._wire, self.src, self._done = tensor, wire, src, False

    def wait(self) -> None:
        while not self._done:
            self._wire._fill_next_posted(self.src)

    def fill(self, value: torch.Tensor) -> None:
        self.tensor.copy_(value)
        self._done = True

    def is_completed(self) -> bool:
        return self._done


class Wire:
    def __init__(self, session: Session, members: Sequence[str], me: str) -> None:
        """`members` lists the session's parties by rank (a dealer last)."""
        if me not in members:
            raise InvalidArgument(f"party {me!r} is not among the session's parties")
        self.session = session
        self.members = list(members)
        self.rank = self.members.index(me)
        self._posted: defaultdict[int, deque[PostedRecv]] = defaultdict(deque)  # by sender, in post order

    # -- point to point -------------------------------------------------------

    def send(self, dst: int, tensor: torch.Tensor, tag: str = P2P) -> None:
        self.session.send(self.members[dst], tag, _array(tensor), transport.TENSOR)

    def receive(self, senders: Sequence[int], like: torch.Tensor | None = None) -> tuple[int, torch.Tensor]:
        """The next frame from whichever of `senders` sends first (after the receives
        posted earlier for them), and its sender's rank."""
        for sender in senders:
            while self._posted[sender]:
                self._fill_next_posted(sender)
        party, frame = self.session.recv_any([self.members[r] for r in senders], P2P)
        src = self.members.index(party)
        return src, _checked(frame.array, like, src)

    def recv(self, src: int, like: torch.Tensor | None = None) -> torch.Tensor:
        return self.receive([src], like)[1]

    def _collect(self, src: int, like: torch.Tensor | None = None) -> torch.Tensor:
        """The next frame of a collective from rank `src`."""
        frame = self.session.recv(self.members[src], COLLECTIVE)
        return _checked(frame.array, like, src)

    def post(self, tensor: torch.Tensor, src: int) -> PostedRecv:
        posted = PostedRecv(self, tensor, src)
        self._posted[src].append(posted)
        return posted

    def _fill_next_posted(self, src: int) -> None:
        posted = self._posted[src].popleft()
        frame = self.session.recv(self.members[src], P2P)
        posted.fill(_checked(frame.array, posted.tensor, src))

    # -- objects: pickled out, CrypTen's restricted unpickler in --------------

    def send_object(self, obj: Any, dst: int) -> None:
        self.send_pickled(pickle.dumps(obj), dst)

    def recv_object(self, src: int) -> Any:
        return serial.restricted_loads(self.recv_pickled(src))

    def all_gather_objects(self, obj: Any, ranks: Sequence[int]) -> list[Any]:
        """Every rank's object, in one round (a broadcast per rank takes one each)."""
        data = pickle.dumps(obj)
        for r in ranks:
            if r != self.rank:
                self.send_pickled(data, r, COLLECTIVE)
        return [obj if r == self.rank else serial.restricted_loads(self.recv_pickled(r, COLLECTIVE)) for r in ranks]

    def send_pickled(self, data: bytes, dst: int, tag: str = P2P) -> None:
        self.session.send(self.members[dst], tag, np.frombuffer(data, dtype=np.uint8), transport.OBJECT)

    def recv_pickled(self, src: int, tag: str = P2P) -> bytes:
        """An object's bytes as sent, not yet unpickled."""
        frame = self.session.recv(self.members[src], tag)
        if frame.payload_type != transport.OBJECT:
            raise InvalidArgument(f"expected an object from rank {src}, got a tensor")
        return frame.array.tobytes()

    # -- collectives over a group's ranks (results are fresh tensors) ----------

    def scatter(self, parts: Sequence[torch.Tensor], src: int, ranks: Sequence[int],
                like: torch.Tensor | None = None) -> torch.Tensor:
        if self.rank == src:
            for r in ranks:
                if r != src:
                    self.send(r, parts[ranks.index(r)], COLLECTIVE)
            return parts[ranks.index(src)].clone()
        return self._collect(src, like)

    def reduce(self, tensor: torch.Tensor, dst: int, combine: Combine, ranks: Sequence[int]) -> torch.Tensor | None:
        if self.rank != dst:
            self.send(dst, tensor, COLLECTIVE)
            return None
        result = tensor.clone()
        for r in ranks:
            if r != dst:
                result = combine(result, self._collect(r, tensor))
        return result

    def all_reduce(self, tensor: torch.Tensor, combine: Combine, ranks: Sequence[int]) -> torch.Tensor:
        parts = self.all_gather(tensor, ranks)
        result = parts[0]
        for part in parts[1:]:  # the same order on every party
            result = combine(result, part)
        return result

    def gather(self, tensor: torch.Tensor, dst: int, ranks: Sequence[int]) -> list[torch.Tensor] | None:
        if self.rank != dst:
            self.send(dst, tensor, COLLECTIVE)
            return None
        return [tensor.clone() if r == dst else self._collect(r, tensor) for r in ranks]

    def all_gather(self, tensor: torch.Tensor, ranks: Sequence[int]) -> list[torch.Tensor]:
        for r in ranks:
            if r != self.rank:
                self.send(r, tensor, COLLECTIVE)
        return [tensor.clone() if r == self.rank else self._collect(r, tensor) for r in ranks]

    def broadcast(self, tensor: torch.Tensor, src: int, ranks: Sequence[int]) -> torch.Tensor | None:
        """The root sends `tensor` (and gets None); the others get the root's."""
        if self.rank == src:
            for r in ranks:
                if r != src:
                    self.send(r, tensor, COLLECTIVE)
            return None
        return self._collect(src, tensor)

    def barrier(self, ranks: Sequence[int]) -> None:
        empty = torch.empty(0, dtype=torch.int64)
        others = [r for r in ranks if r != self.rank]
        for r in others:
            self.send(r, empty, COLLECTIVE)
        for r in others:
            self._collect(r, empty)


_NUMPY_TYPES = {torch.int64: np.dtype("int64"), torch.int32: np.dtype("int32"), torch.int16: np.dtype("int16"),
                torch.int8: np.dtype("int8"), torch.float64: np.dtype("float64"), torch.float32: np.dtype("float32"),
                torch.float16: np.dtype("float16"), torch.bfloat16: transport.BFLOAT16,
                torch.complex64: np.dtype("complex64"), torch.complex128: np.dtype("complex128"),
                torch.uint8: np.dtype("uint8"), torch.bool: np.dtype("bool")}
"""Every type gloo moves (and complex, which it moves as pairs of floats)."""


def _array(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's data as numpy sees it, without a copy (frames.encode makes it
    contiguous): one torch call per frame, not three."""
    tensor = tensor.detach() if tensor.requires_grad else tensor
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: its bytes, marked as such
        return tensor.view(torch.int16).numpy().view(transport.BFLOAT16)
    if tensor.dtype not in _NUMPY_TYPES:
        raise InvalidArgument(f"cannot send tensors of type {tensor.dtype}")
    return tensor.numpy()


def _checked(received: np.ndarray, like: torch.Tensor | None, src: int) -> torch.Tensor:
    """A received frame as a tensor shaped like `like`, checked in numpy first and
    wrapped without a copy (the frame's buffer is the receiver's own)."""
    if like is not None:
        # like gloo, only the element count and type must agree (CrypTen sends a 0-d
        # seed into a 1-element buffer)
        if received.size != like.numel() or received.dtype != _NUMPY_TYPES.get(like.dtype):
            raise InvalidArgument(
                f"expected {like.dtype} {tuple(like.shape)} from rank {src}, got {received.dtype} {received.shape}")
        received = received.reshape(tuple(like.shape))
    if received.dtype == transport.BFLOAT16:
        return torch.from_numpy(received.view("<i2")).view(torch.bfloat16)
    return torch.from_numpy(received)


_COMBINERS: dict[Any, Combine] = {ReduceOp.SUM: torch.add, ReduceOp.PRODUCT: torch.mul, ReduceOp.MIN: torch.minimum,
              ReduceOp.MAX: torch.maximum, ReduceOp.BAND: torch.bitwise_and, ReduceOp.BOR: torch.bitwise_or,
              ReduceOp.BXOR: torch.bitwise_xor}


def combiner(op: Any) -> Combine:
    """How to reduce two tensors by `op` (a ReduceOp's type, or a ReduceOp as
    torch.distributed passes it in a collective's options)."""
    combine = _COMBINERS.get(getattr(op, "op", op))
    if combine is None:
        raise InvalidArgument(f"reduce op {op} is not supported")
    return combine
