"""CrypTen's TTP provider (a dealer that colludes with no party hands out Beaver
triples) over mpcgate's exchange.

CrypTen's TTPClient and TTPServer set up their shared seeds with raw
`dist.isend`/`dist.irecv`/`dist.barrier` on its process groups; those run over the
exchange's torch.distributed backend (mpc.distributed), so every byte, the
dealer's included, moves over mutual TLS. `install` makes the dealer draw the seeds
from the operating system. The dealer sees only sizes and function names from
party 0 (never an input or a share of one) and answers with party 0's correction
terms. Objects from peers go through CrypTen's restricted unpickler.

A request costs party 0 no waiting: `install` also rebinds the client's request,
which sends it and returns a placeholder of the answer's shape (worked out without
computing the product); the communicator fills it after party 0's next exchange
with the other parties, the opening of the values the triple masks, before CrypTen
reads it. The one place CrypTen reads a triple without exchanging first, filling
its tuple cache (which may then be saved), takes every answer before it returns:
the cache's requests go out back to back, one wait for all. The dealer answers with
one tensor frame (CrypTen's own protocol takes a size object and a broadcast) and
serves only CrypTen's dealer functions, whatever a request names.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

DEALER = "dealer"
"""The dealer's default party id in the federation's PKI."""


_CRYPTEN: dict[str, Any] = {}


def _seed() -> int:
    return int.from_bytes(os.urandom(8), "little", signed=True)


def _server_setup_generators(self: Any) -> None:
    """CrypTen's own set-up (seeds to each party over torch.distributed, which
    mpc.distributed provides), with seeds drawn from the operating system: CrypTen
    draws them from torch's default generator, which starts from the same fixed
    seed in every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed())
        _CRYPTEN["server_setup"](self)


def _answer_shape(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Size:
    """The shape of the dealer's answer to a request, as CrypTen's TTP computes it."""
    if function == "binary":
        return _broadcast(args[0], args[1])
    if function != "additive":
        return torch.Size(args[0])  # square, wraps, B2A: one size
    size0, size1, op, *rest = args
    if op == "mul":
        return _broadcast(size0, size1)
    if op == "matmul":
        return matmul_shape(size0, size1)
    # convolutions: evaluated on zeros, as CrypTen's other parties do on their triples
    return getattr(torch, op)(torch.zeros(size0), torch.zeros(size1), *rest, **kwargs).shape


def _broadcast(*shapes: Any) -> torch.Size:
    # (numpy's rule is torch's; torch's meta device and broadcast_shapes import
    # sympy on first use: ~1-2 s inside a job)
    return torch.Size(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def matmul_shape(left: torch.Size, right: torch.Size) -> torch.Size:
    """torch.matmul's result shape, without multiplying."""
    a = [1, *left] if len(left) == 1 else list(left)
    b = [*right, 1] if len(right) == 1 else list(right)
    shape = [*_broadcast(a[:-2], b[:-2]), a[-2], b[-1]]
    if len(right) == 1:
        shape.pop(-1)
    if len(left) == 1:
        shape.pop(-2 if len(right) > 1 else -1)
    return torch.Size(shape)


def _client_request(self: Any, func_name: str, device: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    import crypten.communicator as comm

    answer = torch.empty(_answer_shape(func_name, args, kwargs), dtype=torch.long)
    request = {"function": func_name, "device": None if device is None else str(device), "args": args, "kwargs": kwargs}
    comm.get().ask_dealer(request, answer)
    return answer


def _fill_cache(self: Any) -> None:
    import crypten.communicator as comm
    from crypten.mpc.provider.provider import TupleProvider

    TupleProvider.fill_cache(self)
    comm.get().settle_dealer()


def install() -> None:
    """Points party 0's requests and the dealer's seeds as described above
    (idempotent)."""
    from crypten.mpc.provider import ttp_provider

    _CRYPTEN.setdefault("server_setup", ttp_provider.TTPServer._setup_generators)
    ttp_provider.TTPClient._TTPClient__TTPClient.ttp_request = _client_request  # type: ignore[attr-defined]
    ttp_provider.TTPServer._setup_generators = _server_setup_generators
    ttp_provider.TrustedThirdParty.fill_cache = _fill_cache


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
    import crypten
    import crypten.communicator as comm
    from crypten.mpc.provider.ttp_provider import TTP_FUNCTIONS, TTPServer

    from gateway.errors import InvalidArgument

    use("TTP")
    crypten.init()
    server = TTPServer.__new__(TTPServer)  # its __init__ runs CrypTen's own loop
    server.device = "cpu"
    server.ttp_group, server.comm_group = comm.get().ttp_group, comm.get().ttp_comm_group
    server._setup_generators()
    while (request := comm.get().recv_obj(0)) != "terminate":
        if not isinstance(request, dict) or request.get("function") not in TTP_FUNCTIONS:
            raise InvalidArgument("party 0 asked the dealer for something it does not serve")
        server.device = request["device"]
        answer = getattr(server, request["function"])(*request["args"], **request["kwargs"])
        comm.get().send(answer, 0)
