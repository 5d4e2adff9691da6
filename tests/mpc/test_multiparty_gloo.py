"""Real multi-party CrypTen: one OS process per party over CrypTen's own gloo
transport. This is the baseline the gRPC transport is measured against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gateway.exchange import local_parties as parties
from mpc.programs import smoke

pytestmark = pytest.mark.multiprocess


@pytest.mark.parametrize("world_size", [2, 3])
def test_joint_computation_matches_plaintext(world_size: int) -> None:
    results = parties.run_parties(smoke.program, world_size, timeout=120)
    assert len(results) == world_size
    want = smoke.expected(world_size)
    for result in results:  # every party sees the same revealed values
        for name, value in want.items():
            np.testing.assert_allclose(result[name], value, atol=smoke.TOLERANCE, err_msg=name)


def _private_inference(rank: int, world_size: int, args: object) -> np.ndarray:
    """Party 0 owns the model, party 1 owns the rows; each sees only the output."""
    import crypten

    model = _model()
    secure = crypten.nn.from_pytorch(model, torch.randn(1, 4))
    secure.encrypt(src=0)
    rows = _rows() if rank == 1 else torch.zeros(5, 4)
    return secure(crypten.cryptensor(rows, src=1)).get_plain_text().numpy()


def _model() -> torch.nn.Module:
    torch.manual_seed(11)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


def _rows() -> torch.Tensor:
    return torch.randn(5, 4, generator=torch.Generator().manual_seed(5))


def test_private_inference_of_a_pytorch_model() -> None:
    results = parties.run_parties(_private_inference, 2, timeout=120)
    with torch.no_grad():
        want = _model()(_rows()).numpy()
    for result in results:
        np.testing.assert_allclose(result, want, atol=1e-2)


def _fails_on_rank_one(rank: int, world_size: int, args: object) -> None:
    if rank == 1:
        raise ValueError("deliberate failure")
    import crypten

    crypten.cryptensor(torch.ones(2)).get_plain_text()


def test_a_failing_party_fails_the_run_and_names_it() -> None:
    with pytest.raises(parties.PartyFailed) as err:
        parties.run_parties(_fails_on_rank_one, 2, timeout=60)
    assert err.value.rank == 1
    assert "deliberate failure" in err.value.detail


def _opened_both_ways(rank: int, world_size: int, args: object) -> tuple[list[float], list[float]]:
    import crypten

    from mpc.programs import secure

    x = crypten.cryptensor(torch.tensor(VALUES, dtype=torch.float64), src=0, precision=24)
    return secure.opened(x).tolist(), x.get_plain_text().double().tolist()


VALUES = [-4 + 2.0**-24, -1000 + 500 * 2.0**-24, -3.99999, 1234567.891234, -98765.4321, 0.0, 1e-7]


@pytest.mark.parametrize("world_size", [2, 3])
def test_values_are_opened_exactly_where_crypten_s_decoder_is_off_by_one(world_size: int) -> None:
    """Every released result is opened by secure.opened: CrypTen's decoder turned
    -4 + 2^-24 into -5 + 2^-24 and rounds through float32."""
    ours, crypten_s = parties.run_parties(_opened_both_ways, world_size, timeout=120)[0]
    assert np.all(np.abs(np.array(ours) - VALUES) <= 2.0**-24)  # the encoding truncates to 24 bits, no more
    assert crypten_s[0] == pytest.approx(-5 + 2.0**-24) and crypten_s[1] == pytest.approx(-1001 + 500 * 2.0**-24)
    assert abs(crypten_s[3] - VALUES[3]) > 1e-3  # float32
