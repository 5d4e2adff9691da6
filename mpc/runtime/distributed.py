"""torch.distributed over mpcgate's exchange: a process-group backend named
"mpcgate", so code that asks torch.distributed itself (CrypTen's TTP set-up, its
tests' helpers, a program calling `dist.broadcast`) finds it initialized and moves
its tensors over the same mutual-TLS wire, in the same order, as CrypTen's
communicator. `join` starts it with CrypTen's process groups; CrypTen's own
`DistributedCommunicator` also runs on it unchanged once a wire is `bind`-ed
(`init_process_group(backend="mpcgate", ...)`; the store is not used).

Each call completes before it returns (sends are queued, receives block), except
a posted receive (irecv), which is matched when posted and filled at its wait.
One ordered stream per pair of parties: tags other than 0 are refused."""

from __future__ import annotations

from typing import Any

from mpc.runtime.wire import PostedRecv, Wire, combiner

import torch
import torch.distributed as dist

from mpc.errors import FailedPrecondition, InvalidArgument

BACKEND = "mpcgate"

_bound: Wire | None = None


class _Done(dist.Work):
    def __init__(self, tensors: list[torch.Tensor], source: int = -1) -> None:
        super().__init__()
        self._tensors, self._source = tensors, source

    def wait(self, timeout: Any = None) -> bool:
        return True

    def is_completed(self) -> bool:
        return True

    def is_success(self) -> bool:
        return True

    def _source_rank(self) -> int:
        return self._source

    def result(self) -> list[torch.Tensor]:
        return self._tensors

    def get_future(self) -> torch.futures.Future:
        future: torch.futures.Future = torch.futures.Future()
        future.set_result(self._tensors)
        return future


class _Posted(_Done):
    def __init__(self, posted: PostedRecv, source: int) -> None:
        super().__init__([posted.tensor], source)
        self._posted = posted

    def wait(self, timeout: Any = None) -> bool:
        self._posted.wait()
        return True

    def is_completed(self) -> bool:
        return self._posted.is_completed()


class ExchangeGroup(dist.ProcessGroup):
    """One process group: `ranks` are its members' ranks on the wire, in group order."""

    def __init__(self, wire: Wire, ranks: list[int]) -> None:
        super().__init__(ranks.index(wire.rank), len(ranks))
        self._wire, self._ranks = wire, ranks
        self._group_name = ""

    def getBackendName(self) -> str:
        return BACKEND

    # torch reads a group's name from its registered backend, which a Python process
    # group has none of: without these, destroy_process_group(group) raised
    # "ProcessGroup name not set" (CrypTen's uninit does that to its main group)
    def _set_group_name(self, name: str) -> None:
        self._group_name = name

    @property
    def group_name(self) -> str:
        return self._group_name

    def _root(self, group_rank: int) -> int:
        return self._ranks[group_rank]

    def broadcast(self, tensors: list[torch.Tensor], opts: Any) -> dist.Work:
        for tensor in tensors:
            received = self._wire.broadcast(tensor, self._root(opts.rootRank), self._ranks)
            if received is not None:
                tensor.copy_(received)
        return _Done(tensors)

    def allreduce(self, tensors: list[torch.Tensor], opts: Any) -> dist.Work:
        combine = combiner(opts.reduceOp)
        for tensor in tensors:
            tensor.copy_(self._wire.all_reduce(tensor, combine, self._ranks))
        return _Done(tensors)

    def reduce(self, tensors: list[torch.Tensor], opts: Any) -> dist.Work:
        combine = combiner(opts.reduceOp)
        for tensor in tensors:
            result = self._wire.reduce(tensor, self._root(opts.rootRank), combine, self._ranks)
            if result is not None:
                tensor.copy_(result)
        return _Done(tensors)

    def allgather(self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: Any) -> dist.Work:
        for slots, tensor in zip(outputs, inputs):
            for slot, part in zip(slots, self._wire.all_gather(tensor, self._ranks)):
                slot.copy_(part)
        return _Done(inputs)

    def _allgather_base(self, output: torch.Tensor, input: torch.Tensor, opts: Any) -> dist.Work:
        parts = self._wire.all_gather(input, self._ranks)
        output.copy_(torch.cat([p.reshape(-1) for p in parts]).reshape(output.shape))
        return _Done([output])

    def gather(self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: Any) -> dist.Work:
        parts = self._wire.gather(inputs[0], self._root(opts.rootRank), self._ranks)
        for slot, part in zip(outputs[0] if parts else [], parts or []):
            slot.copy_(part)
        return _Done(inputs)

    def scatter(self, outputs: list[torch.Tensor], inputs: list[list[torch.Tensor]], opts: Any) -> dist.Work:
        root = self._root(opts.rootRank)
        parts = inputs[0] if self._wire.rank == root else []
        outputs[0].copy_(self._wire.scatter(parts, root, self._ranks, like=outputs[0]))
        return _Done(outputs)

    def send(self, tensors: list[torch.Tensor], dst: int, tag: int) -> dist.Work:
        _untagged(tag)
        for tensor in tensors:
            self._wire.send(self._root(dst), tensor)
        return _Done(tensors)

    def recv(self, tensors: list[torch.Tensor], src: int, tag: int) -> dist.Work:
        _untagged(tag)
        return _Posted(self._wire.post(tensors[0], self._root(src)), src)

    def recv_anysource(self, tensors: list[torch.Tensor], tag: int) -> dist.Work:
        _untagged(tag)
        others = [r for r in self._ranks if r != self._wire.rank]
        source, value = self._wire.receive(others, tensors[0])
        tensors[0].copy_(value)
        return _Done(tensors, self._ranks.index(source))

    def barrier(self, opts: Any) -> dist.Work:
        self._wire.barrier(self._ranks)
        return _Done([])


def _untagged(tag: int) -> None:
    if tag != 0:
        raise InvalidArgument(f"the exchange keeps one ordered stream per pair of parties: tag {tag} is not supported")


def _create(options: Any, _backend_options: Any) -> ExchangeGroup:
    if _bound is None:
        raise FailedPrecondition("no exchange session is bound in this process (mpc.runtime.distributed.bind)")
    ranks = list(options.global_ranks_in_group) or list(range(options.group_size))
    if options.group_size != len(ranks) or max(ranks) >= len(_bound.members):
        raise InvalidArgument(f"a process group of ranks {ranks} does not fit the session's {len(_bound.members)} members")
    return ExchangeGroup(_bound, ranks)


def bind(wire: Wire) -> None:
    """Makes the "mpcgate" backend available and points the process groups made in
    this process at `wire` (rank = its rank, world = its members)."""
    global _bound
    if BACKEND not in dist.Backend.backend_list:
        dist.Backend.register_backend(BACKEND, _create, extended_api=True, devices=["cpu"])
    _bound = wire


def join(wire: Wire, parties: int) -> tuple[Any, Any, Any]:
    """Starts torch.distributed over `wire` and makes CrypTen's process groups as its
    DistributedCommunicator does (same order, same ranks): the TTP group (every
    member), party 0 with the last member (the dealer, if any), the parties."""
    if dist.is_initialized():
        raise FailedPrecondition("torch.distributed is already initialized in this process")
    bind(wire)
    size = len(wire.members)
    dist.init_process_group(BACKEND, store=dist.HashStore(), rank=wire.rank, world_size=size)
    ttp_group = dist.new_group(list(range(size)))
    ttp_comm_group = dist.new_group([0, size - 1]) if size > 1 else None
    main_group = dist.new_group(list(range(parties)))
    return ttp_group, ttp_comm_group, main_group


def ranks(group: Any) -> list[int]:
    """A process group's members' ranks on the wire."""
    return dist.get_process_group_ranks(group)


def leave() -> None:
    global _bound
    if dist.is_initialized():
        dist.destroy_process_group()
    _bound = None
