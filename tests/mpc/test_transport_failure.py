"""A party that dies or freezes mid-computation makes the others fail with an error
naming it, within the configured bound, instead of hanging."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from gateway.exchange import local_parties as parties
from gateway.exchange.node import ExchangeConfig

pytestmark = pytest.mark.multiprocess

FAILURE_TIMEOUT = 4.0  # seconds: the configured bound for a silent peer


def _multiply_until_a_party_stops(rank: int, world_size: int, how: str) -> dict[str, object]:
    """Every party multiplies in a loop; the last party kills or freezes itself."""
    import crypten

    from mpc.errors import PeerFailed

    x = crypten.cryptensor(torch.ones(1000))
    last_ok = time.monotonic()
    for i in range(10_000):
        if rank == world_size - 1 and i == 5:
            os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        try:
            (x * x).get_plain_text()
        except PeerFailed as err:
            return {"peer": err.party_id, "message": str(err), "detected_after": time.monotonic() - last_ok}
        last_ok = time.monotonic()
    return {"peer": None}


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_survivors_fail_naming_the_peer_within_the_bound(how: str) -> None:
    config = ExchangeConfig(failure_timeout=FAILURE_TIMEOUT)
    started = time.monotonic()
    results = parties.run_parties(
        _multiply_until_a_party_stops, 3, how, transport="grpc", exchange_config=config,
        allow_failures=True, timeout=15,  # a frozen party never reports: it times out
    )
    survivors, stopped = results[:2], results[2]
    assert isinstance(stopped, parties.PartyFailed)
    for result in survivors:
        assert not isinstance(result, parties.PartyFailed), result
        assert result["peer"] == "party2", result
        assert "party2" in result["message"]
        # a killed process closes its sockets: noticed at once; a frozen one is
        # noticed by keepalive within the configured bound (plus one interval of slack)
        assert result["detected_after"] < (2.0 if how == "kill" else FAILURE_TIMEOUT * 1.5 + 2)
    assert time.monotonic() - started < 60
