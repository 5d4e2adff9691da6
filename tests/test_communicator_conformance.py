"""CrypTen's communicator over mpcgate's exchange behaves as over gloo: each case runs
on both transports, one OS process per party, and the outcomes must be identical.
(CrypTen's own test folder is not in its package; these are written from the
behaviours its tests rely on.)"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mpc import parties

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


@pytest.mark.parametrize("world_size", [2, 3])
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
