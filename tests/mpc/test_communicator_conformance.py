"""CrypTen's communicator over mpcgate's exchange behaves as over gloo: each case runs
on both transports, one OS process per party, and the outcomes must be identical.
(CrypTen's own test folder is not in its package; these are written from the
behaviours its tests rely on.)"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gateway.exchange import local_parties as parties

pytestmark = pytest.mark.multiprocess


def on_both(program: Any, world_size: int) -> list[Any]:
    outcomes = {t: parties.run_parties(program, world_size, transport=t, timeout=120) for t in ("gloo", "grpc")}
    assert outcomes["grpc"] == outcomes["gloo"]
    return outcomes["grpc"]


def _gathered_then_changed(rank: int, world_size: int, args: Any) -> tuple[list[Any], list[Any]]:
    import crypten.communicator as comm

    mine = torch.full((3,), rank, dtype=torch.long)
    everyone = comm.get().all_gather(mine)
    at_root = comm.get().gather(mine, 0)
    mine.add_(100)  # the caller's input changes afterwards
    return [t.tolist() for t in everyone], [None if t is None else t.tolist() for t in at_root]


@pytest.mark.parametrize("world_size", [3])  # three: every peer pattern of two, and more (CI time)
def test_gathered_tensors_are_fresh_buffers(world_size: int) -> None:
    outcomes = on_both(_gathered_then_changed, world_size)
    assert outcomes[0][0] == [[r] * 3 for r in range(world_size)]


def _posted_receives_waited_in_reverse(rank: int, world_size: int, args: Any) -> tuple[int, ...] | None:
    import crypten.communicator as comm

    c = comm.get()
    if rank == 1:
        for value in (1, 2, 3):
            c.send(torch.tensor([value]), 0)
        return None
    first, second = torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    early, late = c.irecv(first, 1), c.irecv(second, 1)
    late.wait()
    early.wait()
    third = c.recv(torch.zeros(1, dtype=torch.long), 1)
    return int(first.item()), int(second.item()), int(third.item())


def test_posted_receives_are_matched_in_post_order() -> None:
    assert on_both(_posted_receives_waited_in_reverse, 2)[0] == (1, 2, 3)


def _from_any_source(rank: int, world_size: int, args: Any) -> list[int] | None:
    import crypten.communicator as comm

    c = comm.get()
    if rank:
        c.send(torch.tensor([10 * rank]), 0)
        return None
    return sorted(int(c.recv(torch.zeros(1, dtype=torch.long)).item()) for _ in range(world_size - 1))


def test_a_receive_without_a_source_takes_any_party() -> None:
    assert on_both(_from_any_source, 3)[0] == [10, 20]


def _backend(rank: int, world_size: int, args: Any) -> bool:
    import crypten.communicator as comm

    backend = comm.get().get_distributed_backend()
    return isinstance(backend, str) and bool(backend)


def test_the_backend_is_named() -> None:
    assert on_both(_backend, 2) == [True, True]


def _statistics(rank: int, world_size: int, args: Any) -> dict[str, list[float]]:
    import crypten
    import crypten.communicator as comm

    c = comm.get()
    keys = ("rounds", "bytes")
    seen = {"after init": [c.get_communication_stats()[k] for k in keys]}
    c.all_reduce(torch.ones(4, dtype=torch.long))  # verbose is off: CrypTen counts nothing
    seen["quiet"] = [c.get_communication_stats()[k] for k in keys]
    crypten.cfg.communicator.verbose = True
    try:
        c.all_reduce(torch.ones(4, dtype=torch.long))
        c.broadcast(torch.ones(3, dtype=torch.long), 0)
        c.gather(torch.ones(2, dtype=torch.long), 1)
        c.all_gather(torch.ones(5, dtype=torch.long))
        c.send(torch.ones(6, dtype=torch.long), 1) if rank == 0 else c.recv(torch.ones(6, dtype=torch.long), 0)
        c.barrier()
    finally:
        crypten.cfg.communicator.verbose = False
    seen["verbose"] = [c.get_communication_stats()[k] for k in keys]
    c.reset_communication_stats()
    seen["reset"] = [c.get_communication_stats()[k] for k in keys]
    return seen


def test_statistics_are_crypten_s_own_accounting() -> None:
    outcomes = on_both(_statistics, 2)
    assert outcomes[0]["after init"] == outcomes[0]["quiet"] == outcomes[0]["reset"] == [0, 0]
    assert outcomes[0]["verbose"][0] == 6


def _wire(rank: int, world_size: int, args: Any) -> dict[str, float]:
    import crypten.communicator as comm

    comm.get().reset_communication_stats()
    comm.get().all_reduce(torch.ones(1000, dtype=torch.long))
    return comm.get().get_communication_stats()


def test_the_exchange_counts_its_wire_bytes_whatever_verbose_says() -> None:
    for stats in parties.run_parties(_wire, 2, transport="grpc", timeout=60):
        assert stats["rounds"] == 0 and stats["exchanges"] == 1
        assert 8000 <= stats["wire_bytes_sent"] <= 8200 and 8000 <= stats["wire_bytes_received"] <= 8200


class TinyNet(torch.nn.Module):
    """A model class defined by the program, not by CrypTen or torch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)


def _tuple_cache_and_module(rank: int, world_size: int, folder: str) -> tuple[list[float], list[list[float]]]:
    import crypten

    provider = crypten.mpc.get_default_provider()
    x, y = crypten.cryptensor(torch.ones(4)), crypten.cryptensor(torch.full((4,), 2.0))
    provider.trace()
    (x * y).get_plain_text()
    provider.trace(False)
    provider.fill_cache()
    provider.save_cache(folder)  # one file per party, then read back
    provider.load_cache(folder)
    product = (x * y).get_plain_text().tolist()  # from the cache
    torch.manual_seed(5)
    crypten.save_from_party(TinyNet(), f"{folder}/tiny.pt", src=0)
    loaded = crypten.load_from_party(f"{folder}/tiny.pt", model_class=TinyNet, src=0)
    shape = [list(p.shape) for p in loaded.parameters()]
    return product, shape


def test_the_tuple_cache_and_a_party_s_module_load(tmp_path: Any) -> None:
    runs = {"gloo": ("gloo", "TFP"), "grpc": ("grpc", "TFP"), "dealer": ("grpc", "TTP")}
    outcomes = {}
    for name, (transport, provider) in runs.items():
        (tmp_path / name).mkdir()
        outcomes[name] = parties.run_parties(_tuple_cache_and_module, 2, str(tmp_path / name), transport=transport,
                                             provider=provider, timeout=60)
    # (with the dealer, its answers are in the cache before the cache is saved)
    assert outcomes["grpc"] == outcomes["gloo"] == outcomes["dealer"] == [([2.0] * 4, [[2, 3], [2]])] * 2


def _every_method(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    """Each communicator method once, on several dtypes, returning what the caller
    sees (values, and whether inputs were changed in place)."""
    import crypten.communicator as comm
    from torch.distributed import ReduceOp

    c, out = comm.get(), {}
    for dtype in (torch.long, torch.float32, torch.int32, torch.float64):
        mine = (torch.arange(4) + 10 * rank).to(dtype)
        before = mine.clone()
        summed = c.all_reduce(mine)
        out[f"all_reduce {dtype}"] = (summed.tolist(), summed.dtype == dtype, torch.equal(mine, before))
        out[f"all_reduce max {dtype}"] = c.all_reduce(mine, op=ReduceOp.MAX).tolist()
        reduced = c.reduce(mine, 1)
        out[f"reduce {dtype}"] = (None if reduced is None else reduced.tolist(), torch.equal(mine, before))
        target = mine.clone()
        returned = c.broadcast(target, 0)
        out[f"broadcast {dtype}"] = (target.tolist(), returned is target)
    batch = [torch.full((2,), rank, dtype=torch.long), torch.full((3,), 2 * rank, dtype=torch.long)]
    out["all_reduce batched"] = [t.tolist() for t in c.all_reduce(batch, batched=True)]
    reduced_batch = c.reduce(batch, 0, batched=True)
    out["reduce batched"] = None if reduced_batch is None else [t.tolist() for t in reduced_batch]
    out["broadcast batched"] = [t.tolist() for t in c.broadcast([t.clone() for t in batch], 1, batched=True)]
    pieces = [torch.full((2,), 100 + r, dtype=torch.long) for r in range(world_size)]
    out["scatter"] = c.scatter(pieces, 0, size=(2,)).tolist()
    out["objects"] = c.broadcast_obj({"from": 0, "values": (1, 2.5)} if rank == 0 else None, 0)
    if rank == 0:
        c.send_obj(["to", 1], 1)
        for value in (7, 8):  # ordering of consecutive sends
            c.send(torch.tensor([value]), 1)
    elif rank == 1:
        out["recv_obj"] = c.recv_obj(0)
        out["ordered"] = [int(c.recv(torch.zeros(1, dtype=torch.long), 0).item()) for _ in range(2)]
    c.barrier()
    out["world"] = (c.get_world_size(), c.get_rank())
    return out


@pytest.mark.parametrize("world_size", [2, 3])
def test_every_method_behaves_as_over_gloo(world_size: int) -> None:
    outcomes = on_both(_every_method, world_size)
    assert outcomes[0]["all_reduce torch.int64"][0] == [sum(range(0, 10 * world_size, 10)) + world_size * i
                                                        for i in range(4)]


def _asks_torch_distributed(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    """What CrypTen's tests and programs do with torch.distributed itself (item 3)."""
    import crypten.communicator as comm
    import torch.distributed as dist

    c = comm.get()
    last = world_size - 1
    out: dict[str, Any] = {"initialized": dist.is_initialized(), "world": (dist.get_world_size(), dist.get_rank())}
    torch.manual_seed(rank)  # test_nn's helper: random weights, made common only if torch.distributed is up
    weights = torch.randn(4)
    if dist.is_initialized():
        dist.broadcast(weights, 0)
    out["weights"] = weights.tolist()
    if rank == 0:  # raw point to point on the communicator's groups, waited in reverse post order
        dist.isend(torch.tensor([7, 8]), 1, group=c.main_group).wait()
        dist.send(torch.tensor([9]), 1)
    elif rank == 1:
        first, second = torch.zeros(2, dtype=torch.long), torch.zeros(1, dtype=torch.long)
        posted = [dist.irecv(first, 0, group=c.main_group), dist.irecv(second, 0)]
        for work in reversed(posted):
            work.wait()
        out["p2p"] = [first.tolist(), second.tolist()]
    total = torch.tensor([rank + 1])
    dist.all_reduce(total, group=c.main_group)
    largest = torch.tensor([rank * 3])
    dist.reduce(largest, 0, op=dist.ReduceOp.MAX)
    rooted = torch.tensor([rank * 10])
    dist.broadcast(rooted, last, group=c.main_group)
    parts = [torch.zeros(1, dtype=torch.long) for _ in range(world_size)]
    dist.all_gather(parts, torch.tensor([rank]))
    at_root = [torch.zeros(1, dtype=torch.long) for _ in range(world_size)] if rank == 0 else None
    dist.gather(torch.tensor([rank * 2]), at_root, dst=0)
    mine = torch.zeros(1, dtype=torch.long)
    dist.scatter(mine, [torch.tensor([r * 5]) for r in range(world_size)] if rank == 0 else None, src=0)
    out.update(sum=total.item(), max=largest.item() if rank == 0 else None, broadcast=rooted.item(),
               all_gather=[p.item() for p in parts], gather=[p.item() for p in at_root] if at_root else None,
               scatter=mine.item())
    if rank in (0, last):  # party 0 and the last member: CrypTen's TTP link group
        pair = torch.tensor([rank])
        dist.broadcast(pair, last, group=c.ttp_comm_group)
        out["pair"] = pair.item()
    if rank == 0:  # a receive from any source names its sender
        senders = {}
        for _ in range(world_size - 1):
            value = torch.zeros(1, dtype=torch.long)
            sender = dist.recv(value)
            senders[sender] = value.item()
        out["any"] = sorted(senders.items())
    else:
        dist.send(torch.tensor([rank * 100]), 0)
    dist.barrier()
    return out


@pytest.mark.parametrize("world_size", [2, 3])
def test_code_that_asks_torch_distributed_works_over_the_exchange(world_size: int) -> None:
    """Item 3: torch.distributed was not initialized under the exchange, so a helper
    that broadcasts weights only if it is left the parties with different weights,
    and raw dist calls on the communicator's groups failed."""
    outcomes = on_both(_asks_torch_distributed, world_size)
    assert all(o["initialized"] and o["weights"] == outcomes[0]["weights"] for o in outcomes)
    assert outcomes[1]["p2p"] == [[7, 8], [9]]
    assert outcomes[0]["any"] == [(r, 100 * r) for r in range(1, world_size)]
    assert [o["scatter"] for o in outcomes] == [5 * r for r in range(world_size)]


def _backend_name(rank: int, world_size: int, args: Any) -> str:
    import torch.distributed as dist

    return dist.get_backend()


def test_torch_distributed_runs_on_the_exchange_s_backend() -> None:
    assert parties.run_parties(_backend_name, 2, transport="grpc", timeout=60) == ["mpcgate"] * 2


def _crypten_program(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    import crypten
    import crypten.communicator as comm

    from mpc.programs.secure import opened  # exact decoding (CrypTen's is off by one below negative integers)

    x = crypten.cryptensor(torch.tensor([1.5, -2.0, 3.25, 0.5]), src=0)
    y = crypten.cryptensor(torch.tensor([2.0, 4.0, -1.0, 0.5]), src=world_size - 1)
    matrix = crypten.cryptensor(torch.arange(6.0).reshape(2, 3), src=0).matmul(crypten.cryptensor(torch.ones(3, 2)))
    return {"communicator": type(comm.get()).__name__, "product": opened(x * y).tolist(),
            "larger": opened(x > y).tolist(), "matmul": opened(matrix).tolist()}


@pytest.mark.parametrize("world_size", [3])  # three: every peer pattern of two, and more (CI time)
def test_crypten_s_own_communicator_runs_unchanged_on_the_exchange(world_size: int) -> None:
    """CrypTen's DistributedCommunicator, not mpcgate's, over init_process_group
    with the "mpcgate" backend: the same answers as over gloo."""
    outcomes = {t: parties.run_parties(_crypten_program, world_size, transport=t, timeout=120) for t in ("gloo", "torch")}
    assert outcomes["torch"][0]["communicator"] == "DistributedCommunicator"
    for over_gloo, over_exchange in zip(outcomes["gloo"], outcomes["torch"]):
        assert over_exchange["larger"] == over_gloo["larger"] == [0.0, 0.0, 1.0, 0.0]
        for name, plain in (("product", [3.0, -8.0, -3.25, 0.25]), ("matmul", [[3.0, 3.0], [12.0, 12.0]])):
            for outcome in (over_gloo, over_exchange):  # fixed point, truncated with random shares
                assert torch.allclose(torch.tensor(outcome[name]), torch.tensor(plain), atol=1e-3), name


DTYPES = ["int8", "int16", "int32", "int64", "uint8", "bool", "float16", "bfloat16", "float32", "float64", "complex64"]
NOT_BROADCAST_BY_GLOO = {"int16"}  # gloo: "Invalid scalar type" (the exchange moves it all the same)


def _every_dtype_and_object(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    """CrypTen's own communicator's object calls (an int32 size, then an int8 array),
    every dtype gloo moves point to point and by broadcast, and CrypTen's calls that
    use them: an encryption that broadcasts its size, its generators."""
    import crypten
    import crypten.communicator as comm

    from mpc.programs.secure import opened

    c = comm.get()
    out: dict[str, Any] = {"communicator": type(c).__name__}
    for name in DTYPES:
        dtype = getattr(torch, name)
        sent = (torch.arange(-3, 3) % 2).to(dtype) if dtype == torch.bool else torch.arange(-3, 3).to(dtype)
        if rank == 0:
            c.send(sent, 1)
        elif rank == 1:
            got = c.recv(torch.zeros_like(sent), 0)
            out[f"p2p.{name}"] = (torch.view_as_real(got) if got.is_complex() else got).double().tolist(), str(got.dtype)
        if name not in NOT_BROADCAST_BY_GLOO:
            shared = c.broadcast(sent.clone() if rank == 0 else torch.zeros_like(sent), 0)
            values = torch.view_as_real(shared) if shared.is_complex() else shared
            out[f"broadcast.{name}"] = (values.double().tolist(), str(shared.dtype))
    if rank == 0:
        c.send_obj({"a": [1, 2.5, "three"]}, 1)
    elif rank == 1:
        out["recv_obj"] = c.recv_obj(0)
    out["broadcast_obj"] = c.broadcast_obj({"from": "rank 0", "x": (1, 2)} if rank == 0 else None, 0)
    x = crypten.cryptensor(torch.tensor([1.5, -2.0]) if rank == world_size - 1 else torch.empty(0), src=world_size - 1,
                           broadcast_size=True)
    out["broadcast_size"] = opened(x).tolist()
    cpu = torch.device("cpu")  # seeds CrypTen exchanged at init: a common global one, pairwise ones
    draw = {k: torch.randint(0, 2**30, (4,), generator=crypten.generators[k][cpu]) for k in ("global", "next", "prev")}
    everyone = [t.tolist() for t in c.all_gather(draw["global"])]
    nexts = [t.tolist() for t in c.all_gather(draw["next"])]
    prevs = [t.tolist() for t in c.all_gather(draw["prev"])]
    out["generators"] = (all(g == everyone[0] for g in everyone),
                         all(nexts[r] == prevs[(r + 1) % world_size] for r in range(world_size)))
    return out


@pytest.mark.parametrize("world_size", [3])  # three: every peer pattern of two, and more (CI time)
def test_crypten_s_objects_and_every_dtype_cross_the_exchange_s_backend(world_size: int) -> None:
    """The exchange refused int8 (and int16, float16, bfloat16), so every
    send_obj/recv_obj/broadcast_obj of CrypTen's own communicator on the "mpcgate"
    backend failed, and with it `cryptensor(..., broadcast_size=True)`."""
    outcomes = {t: parties.run_parties(_every_dtype_and_object, world_size, transport=t, timeout=120)
                for t in ("gloo", "torch")}
    assert outcomes["torch"][0]["communicator"] == "DistributedCommunicator"
    assert outcomes["torch"] == outcomes["gloo"]
    assert outcomes["torch"][1]["recv_obj"] == {"a": [1, 2.5, "three"]}
    assert outcomes["torch"][-1]["broadcast_obj"] == {"from": "rank 0", "x": (1, 2)}
    assert outcomes["torch"][0]["broadcast_size"] == [1.5, -2.0]
    assert outcomes["torch"][0]["generators"] == (True, True)
    assert outcomes["torch"][1]["p2p.int8"] == ([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0], "torch.int8")
    assert outcomes["torch"][1]["p2p.bfloat16"] == ([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0], "torch.bfloat16")


def _ttp_products(rank: int, world_size: int, args: Any) -> tuple[str, str, list[float], list[float]]:
    import crypten
    import crypten.communicator as comm

    from mpc.programs.secure import opened

    x = crypten.cryptensor(torch.tensor([1.5, -2.0, 3.0]), src=0)
    y = crypten.cryptensor(torch.tensor([2.0, 4.0, -1.0]), src=world_size - 1)
    return type(comm.get()).__name__, crypten.cfg.mpc.provider, opened(x * y).tolist(), opened(x > y).tolist()


@pytest.mark.parametrize("world_size", [3])  # three: every peer pattern of two, and more (CI time)
def test_crypten_s_own_ttp_server_runs_on_the_exchange_s_backend(world_size: int) -> None:
    """run_parties(transport="torch", provider="TTP") raised: CrypTen's own TTP
    client and TTPServer (a process at rank world_size) now run unmodified over
    torch.distributed on the "mpcgate" backend, with the answers of mpcgate's dealer."""
    own = parties.run_parties(_ttp_products, world_size, transport="torch", provider="TTP", timeout=120)
    ours = parties.run_parties(_ttp_products, world_size, transport="grpc", provider="TTP", timeout=120)
    assert {o[:2] for o in own} == {("DistributedCommunicator", "TTP")}
    for outcome in [*own, *ours]:
        assert outcome[3] == [0.0, 0.0, 1.0]
        assert torch.allclose(torch.tensor(outcome[2]), torch.tensor([3.0, -8.0, -3.0]), atol=1e-3)


def _initialized_twice(rank: int, world_size: int, args: Any) -> tuple[list[float], list[float]]:
    import crypten

    from mpc.programs.secure import opened

    first = opened(crypten.cryptensor(torch.tensor([1.0, 2.0]), src=0) * 2).tolist()
    crypten.uninit()
    crypten.init()
    return first, opened(crypten.cryptensor(torch.tensor([3.0]), src=world_size - 1) + 1).tolist()


@pytest.mark.parametrize("transport", ["grpc", "torch"])
def test_crypten_communicates_again_after_uninit_and_init(transport: str) -> None:
    """crypten.uninit() then crypten.init() could not communicate again ("session is
    closed" on the exchange; "ProcessGroup name not set" on its backend)."""
    assert parties.run_parties(_initialized_twice, 2, transport=transport, timeout=120) == [([2.0, 4.0], [4.0])] * 2


def _raw_objects_and_small_types(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    """Raw torch.distributed calls on the communicator's groups in CrypTen's object
    format (an int32 size, then an int8 array) and in the small types."""
    import crypten.communicator as comm
    import torch.distributed as dist

    group = comm.get().main_group
    out: dict[str, Any] = {}
    if rank == 0:
        data = torch.tensor(list(b"an object"), dtype=torch.int8)
        dist.send(torch.tensor([data.numel()], dtype=torch.int32), 1, group=group)
        dist.send(data, 1, group=group)
        dist.send(torch.tensor([1.5, -2.25], dtype=torch.bfloat16), 1, group=group)
    elif rank == 1:
        size = torch.zeros(1, dtype=torch.int32)
        dist.recv(size, 0, group=group)
        data = torch.zeros(int(size.item()), dtype=torch.int8)
        dist.recv(data, 0, group=group)
        small = torch.zeros(2, dtype=torch.bfloat16)
        dist.recv(small, 0, group=group)
        out["object"], out["bfloat16"] = bytes(data.tolist()).decode(), small.float().tolist()
    objects = [{"rank": 0, "x": [1, 2]}] if rank == 0 else [None]
    dist.broadcast_object_list(objects, src=0, group=group)
    out["broadcast"] = objects[0]
    return out


def test_raw_distributed_objects_and_small_types_cross_the_communicator_s_groups() -> None:
    outcomes = on_both(_raw_objects_and_small_types, 2)
    assert outcomes[1]["object"] == "an object" and outcomes[1]["bfloat16"] == [1.5, -2.25]
    assert outcomes[0]["broadcast"] == outcomes[1]["broadcast"] == {"rank": 0, "x": [1, 2]}
