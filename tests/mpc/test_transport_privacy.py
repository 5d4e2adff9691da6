"""What a party puts on the wire carries no trace of its input: every frame it sends
(captured before TLS encrypts it) is a share or a masked value, never the raw
values or their fixed-point encodings."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from statskit import capture_sends, encodings_sent

from gateway.exchange import local_parties as parties
from mpc.programs import smoke, workloads
from mpc.programs.workloads import Params

pytestmark = pytest.mark.multiprocess

PARAMS = Params(size=64)


def _capture_while_computing(rank: int, world_size: int, args: Any) -> list[np.ndarray]:
    sent = capture_sends()
    smoke.program(rank, world_size)
    for name in ("multiply", "compare", "divide"):
        workloads.run(rank, world_size, (name, PARAMS))
    return sent


def test_sent_bytes_contain_no_input_values_or_encodings() -> None:
    world_size = 3
    captures = parties.run_parties(_capture_while_computing, world_size, transport="grpc", timeout=120)
    for rank, sent in enumerate(captures):
        inputs = [smoke.private_input(rank).numpy()]
        if rank in (0, world_size - 1):  # the workloads' owners
            inputs.append(workloads.owned_input(rank, (PARAMS.size,), PARAMS.seed).numpy())
        assert sum(array.nbytes for array in sent) > 8 * 64 * 4, "the capture must hold the party's real traffic"
        leaked = sum(encodings_sent(sent, values) for values in inputs)
        assert not leaked, f"party {rank} sent {leaked} encodings of its own input"


def test_the_check_would_catch_a_leak_and_ignores_chance_byte_strings() -> None:
    """The same search finds a value sent in fixed point, as float32 or inside a
    pickled object; a pattern that only spans two arrays is not a leak."""
    values = smoke.private_input(1).numpy().astype(np.float64)
    noise = np.frombuffer(b"noise", dtype=np.uint8)
    assert encodings_sent([noise, np.round(values * 2**16).astype(np.int64)], values) == values.size
    assert encodings_sent([values.astype(np.float32)], values) == values.size
    assert encodings_sent([np.frombuffer(pickle.dumps(values.tolist()), dtype=np.uint8)], values) == values.size
    positive = values[values > 0][:1]
    encoding = int(np.round(positive[0] * 2**16))
    straddling = [np.array([encoding << 16], dtype=np.int64), np.zeros(1, dtype=np.int64)]
    assert np.int64(encoding).tobytes() in b"".join(array.tobytes() for array in straddling)
    assert encodings_sent(straddling, positive) == 0
