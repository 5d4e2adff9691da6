"""Shared fixtures. CrypTen state is process-global, so single-process tests share
one initialized CrypTen; multi-party tests start their own processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(scope="module", params=[2, 3])
def session(request: pytest.FixtureRequest) -> Iterator[object]:
    """A standing CrypTen session of 2 or 3 party processes (tests/statskit.py)."""
    from statskit import Session

    standing = Session(request.param)
    yield standing
    standing.close()
