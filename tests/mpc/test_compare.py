"""mpcgate's comparison (mpc.programs.compare): the sign bit of a shared value by a
carry tree, against numpy on values across the whole ring (both ends, zero, -1,
values one apart), for 2 and 3 parties with the TTP dealer and with TFP; and the
comparison of binary-shared uniforms with public thresholds. Real CrypTen, one
process per party."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.exchange import local_parties as parties

pytestmark = pytest.mark.multiprocess

EDGES = [0, -1, 1, 2**63 - 1, -(2**63), 2**62, -(2**62), 2**62 - 1, 5, -5]


def _signs(rank: int, world_size: int, values: list[int]) -> list[int]:
    import torch
    from crypten.mpc import MPCTensor

    from mpc.programs import compare, secure

    secure.configure()
    plain = torch.tensor(values, dtype=torch.long)
    x = MPCTensor.from_shares(plain if rank == 0 else torch.zeros_like(plain), precision=0)
    # shares spread over every party: each adds its own random words, rank 0 takes them all away again
    noise = torch.randint(-(2**62), 2**62, plain.shape, generator=torch.Generator().manual_seed(rank))
    everyone = torch.tensor(secure.public_among(rank, world_size, noise.tolist()), dtype=torch.long)
    x._tensor.share += noise
    if rank == 0:
        x._tensor.share -= everyone.sum(0)
    return secure.opened(compare.sign_bits(x)).tolist()


@pytest.mark.parametrize("world_size, provider", [(2, "TTP"), (3, "TTP"), (3, "TFP")])
def test_the_sign_bit_matches_numpy_across_the_ring(world_size: int, provider: str) -> None:
    rng = np.random.default_rng(world_size)
    values = [*EDGES, *rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64, endpoint=True).tolist()]
    values += [v + 1 for v in values[:200] if v < 2**63 - 1]  # neighbours
    bits = parties.run_parties(_signs, world_size, values, transport="grpc", provider=provider, timeout=300)[0]
    assert bits == [int(v < 0) for v in values]


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=130))
def test_the_sign_bit_of_any_values(values: list[int]) -> None:
    """Any count (the carry tree packs 64 elements a word: padding at every size)."""
    assert parties.run_parties(_signs, 2, values, transport="grpc", timeout=300)[0] == [int(v < 0) for v in values]


def _below(rank: int, world_size: int, thresholds: list[int]) -> tuple[list[Any], list[Any]]:
    import torch

    from mpc.programs import compare, secure
    from mpc.programs.noise import laplace

    secure.configure()
    t = torch.tensor(thresholds, dtype=torch.long).unsqueeze(1)
    u = laplace.joint_uniform_bits((len(thresholds), 500))
    return secure.opened(compare.below(u, t)).tolist(), u.get_plain_text().tolist()


def test_uniforms_below_public_thresholds() -> None:
    thresholds = [0, 1, 2**61, 2**62 - 1, 2**62, 12345]
    bits, uniforms = parties.run_parties(_below, 3, thresholds, transport="grpc", timeout=300)[0]
    assert np.array_equal(np.array(bits), (np.array(uniforms) < np.array(thresholds)[:, None]).astype(int))
    assert 0.4 < np.mean(bits[2]) < 0.6  # 2^61 of 2^62: half (probability ~1e-5 outside)
