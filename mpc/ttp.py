"""CrypTen's TTP provider (a dealer that colludes with no party hands out Beaver
triples) over mpcgate's exchange instead of torch.distributed.

CrypTen's TTPClient and TTPServer set up their shared seeds with raw
`dist.isend`/`dist.irecv`/`dist.barrier`; `install` rebinds those two methods to
the communicator, so every byte, the dealer's included, moves over mutual TLS.
The dealer sees only sizes and function names from party 0 (never an input or a
share of one), answers with party 0's correction terms, and draws its seeds from
the operating system. Objects from peers go through CrypTen's restricted unpickler.
"""

from __future__ import annotations

import os
from typing import Any

import torch

DEALER = "dealer"
"""The dealer's default party id in the federation's PKI."""


def _seed() -> int:
    return int.from_bytes(os.urandom(8), "little", signed=True)


def _client_setup_generators(self: Any) -> None:
    import crypten.communicator as comm

    seed = comm.get().recv(torch.empty((), dtype=torch.long), comm.get().get_ttp_rank())
    self.generator = torch.Generator(device="cpu")
    self.generator.manual_seed(int(seed.item()))
    self.generator_cuda = None


def _server_setup_generators(self: Any) -> None:
    import crypten.communicator as comm

    parties = comm.get().get_world_size()
    seeds = [_seed() for _ in range(parties)]
    for rank, seed in enumerate(seeds):
        comm.get().send(torch.tensor(seed, dtype=torch.long), rank)
    self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    self.generators_cuda = [None] * parties


def install() -> None:
    """Points CrypTen's TTP seed set-up at the communicator (idempotent)."""
    from crypten.mpc.provider import ttp_provider

    ttp_provider.TTPClient._TTPClient__TTPClient._setup_generators = _client_setup_generators  # type: ignore[attr-defined]
    ttp_provider.TTPServer._setup_generators = _server_setup_generators


def use(provider: str) -> None:
    """Selects CrypTen's triple provider ("TTP" or "TFP") before crypten.init()."""
    import crypten

    if provider not in ("TTP", "TFP"):
        raise ValueError(f"unknown provider {provider!r}")
    install()
    crypten.cfg.mpc.provider = provider


def serve() -> None:
    """The dealer's side of one session: answers party 0 until it says terminate.
    Call with the dealer's GrpcCommunicator installed (rank = world size)."""
    from crypten.mpc.provider.ttp_provider import TTPServer

    use("TTP")
    TTPServer()  # runs crypten.init() and the request loop
