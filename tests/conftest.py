"""Shared fixtures. CrypTen state is process-global, so single-process tests share
one initialized CrypTen; multi-party tests start their own processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def crypten_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """CrypTen initialized for a single local party (world size 1)."""
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

    import crypten

    rendezvous = tmp_path_factory.mktemp("rdv") / "file"
    os.environ.update(RANK="0", WORLD_SIZE="1", RENDEZVOUS=f"file://{rendezvous}", DISTRIBUTED_BACKEND="gloo")
    crypten.init()
    yield crypten
    crypten.uninit()


@pytest.fixture(scope="session")
def standing() -> Iterator[Callable[[int], Any]]:
    """`standing(n)`: the run's one standing CrypTen session of n party processes
    (tests/statskit.py), started when first asked for (~3 s) and shared by every
    module after: each task starts from its own JobContext."""
    from statskit import Session

    sessions: dict[int, Session] = {}

    def of(world_size: int) -> Session:
        if world_size not in sessions:
            sessions[world_size] = Session(world_size)
        return sessions[world_size]

    yield of
    for running in sessions.values():
        running.close()


@pytest.fixture(scope="module", params=[2, 3])
def session(request: pytest.FixtureRequest, standing: Callable[[int], Any]) -> Any:
    """The standing session of 2, then of 3 parties."""
    return standing(request.param)


@pytest.fixture()
def two(standing: Callable[[int], Any]) -> Any:
    """The standing session of 2 parties."""
    return standing(2)


@pytest.fixture()
def three(standing: Callable[[int], Any]) -> Any:
    """The standing session of 3 parties."""
    return standing(3)
