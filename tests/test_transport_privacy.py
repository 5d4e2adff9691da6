"""What a party puts on the wire carries no trace of its input: every frame it sends
(captured before TLS encrypts it) is a share or a masked value, never the raw
values or their fixed-point encodings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mpc import parties, smoke, workloads
from mpc.workloads import Params

pytestmark = pytest.mark.multiprocess

PARAMS = Params(size=64)


def _capture_while_computing(rank: int, world_size: int, args: Any) -> bytes:
    import crypten.communicator as comm

    session = comm.get().session
    captured: list[bytes] = []
    send = session.send

    def tap(party: str, tag: str, array: np.ndarray, payload_type: int = 1) -> None:
        captured.append(array.tobytes())
        send(party, tag, array, payload_type)

    session.send = tap  # type: ignore[method-assign]
    smoke.program(rank, world_size)
    for name in ("multiply", "compare", "divide"):
        workloads.run(rank, world_size, (name, PARAMS))
    return b"".join(captured)


def _encodings(values: np.ndarray) -> list[bytes]:
    """The byte patterns that would betray a value: float32, float64 and CrypTen's
    fixed point (round(x * 2^16) as int64), little-endian."""
    patterns = []
    for v in values.ravel():
        patterns.append(np.float32(v).tobytes())
        patterns.append(np.float64(v).tobytes())
        patterns.append(np.int64(np.round(np.float64(np.float32(v)) * 2**16)).tobytes())
    return patterns


def test_sent_bytes_contain_no_input_values_or_encodings() -> None:
    world_size = 3
    captures = parties.run_parties(_capture_while_computing, world_size, transport="grpc", timeout=120)
    for rank, sent in enumerate(captures):
        inputs = [smoke.private_input(rank).numpy()]
        if rank in (0, world_size - 1):  # the workloads' owners
            inputs.append(workloads.owned_input(rank, (PARAMS.size,), PARAMS.seed).numpy())
        assert len(sent) > 8 * 64 * 4, "the capture must hold the party's real traffic"
        leaked = [p for values in inputs for p in _encodings(values) if p in sent]
        assert not leaked, f"party {rank} sent {len(leaked)} encodings of its own input"


def test_the_check_would_catch_a_leak() -> None:
    """The same search finds a value that is sent in the clear."""
    values = smoke.private_input(1).numpy()
    sent = b"noise" + np.round(values.astype(np.float64) * 2**16).astype(np.int64).tobytes()
    assert any(p in sent for p in _encodings(values))
