"""CrypTen's TTP provider (a dealer that colludes with no party hands out Beaver
triples) over mpcgate's exchange.

CrypTen's TTPClient and TTPServer set up their shared seeds with raw
`dist.isend`/`dist.irecv`/`dist.barrier` on its process groups; those run over the
exchange's torch.distributed backend (mpc.runtime.distributed), so every byte, the
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

The dealer also answers ahead. CrypTen asks for the same triples in the same order
every batch and epoch, so after each request the dealer guesses the next one
(`Successors`), computes its answer and sends it at once. Every answer starts with
the digest of the request it answers: party 0 takes it if that is the request it
made, and otherwise drops it and takes the answer that follows, for the dealer,
seeing the real request, has rolled its parties' generators back to before the
guess and answered again. The parties' shares come from those generators in request
order, so a guess never changes a triple, only when its answer arrives.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import Any

import numpy as np
import torch

DIGEST_WORDS = 2
"""An answer's first words: the 128-bit digest of the request it answers."""


_CRYPTEN: dict[str, Any] = {}


def _seed() -> int:
    return int.from_bytes(os.urandom(8), "little", signed=True)


def _server_setup_generators(self: Any) -> None:
    """CrypTen's own set-up (seeds to each party over torch.distributed, which
    mpc.runtime.distributed provides), with seeds drawn from the operating system: CrypTen
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
    ttp_provider.TTPClient._TTPClient__TTPClient.ttp_request = _client_request
    ttp_provider.TTPServer._setup_generators = _server_setup_generators
    ttp_provider.TrustedThirdParty.fill_cache = _fill_cache


def use(provider: str) -> None:
    """Selects CrypTen's triple provider ("TTP" or "TFP") before crypten.init()."""
    import crypten

    if provider not in ("TTP", "TFP"):
        raise ValueError(f"unknown provider {provider!r}")
    install()
    crypten.cfg.mpc.provider = provider


def digest(payload: bytes) -> torch.Tensor:
    """The digest of a pickled request, as the words that start its answer."""
    words = np.frombuffer(hashlib.blake2b(payload, digest_size=8 * DIGEST_WORDS).digest(), dtype="<i8")
    return torch.from_numpy(words.astype(np.int64))


class Successors:
    """Guesses party 0's next request: the one that followed the last time the
    latest requests (up to CONTEXT of them, the longest match first) were seen."""

    CONTEXT = 16
    LIMIT = 1 << 16
    """Contexts remembered before starting afresh (a job's requests repeat long before)."""

    def __init__(self) -> None:
        self._after: dict[tuple[bytes, ...], bytes] = {}  # requests seen in a row -> the one that came next
        self._recent: deque[bytes] = deque(maxlen=self.CONTEXT)

    def observe(self, payload: bytes) -> None:
        recent = tuple(self._recent)
        if len(self._after) + len(recent) > self.LIMIT:
            self._after.clear()
        for k in range(1, len(recent) + 1):
            self._after[recent[-k:]] = payload
        self._recent.append(payload)

    def guess(self) -> bytes | None:
        """The pickled request most likely next, or None."""
        recent = tuple(self._recent)
        for k in range(len(recent), 0, -1):
            guess = self._after.get(recent[-k:])
            if guess is not None:
                return guess
        return None


def serve() -> None:
    """The dealer's side of one session: answers party 0 until it says terminate,
    each request followed by an answer to its guess at the next (see above). Call with the
    dealer's GrpcCommunicator installed (rank = world size)."""
    import crypten
    import crypten.communicator as comm
    from crypten.common import serial
    from crypten.mpc.provider.ttp_provider import TTP_FUNCTIONS, TTPServer

    from mpc.errors import InvalidArgument

    use("TTP")
    crypten.init()
    server = TTPServer.__new__(TTPServer)  # its __init__ runs CrypTen's own loop
    server.device = "cpu"
    server.ttp_group, server.comm_group = comm.get().ttp_group, comm.get().ttp_comm_group
    server._setup_generators()
    wire = comm.get().wire

    def answer(payload: bytes) -> None:
        request = serial.restricted_loads(payload)
        server.device = request["device"]
        result = getattr(server, request["function"])(*request["args"], **request["kwargs"])
        wire.send(0, torch.cat([digest(payload), result.reshape(-1)]))

    successors = Successors()
    ahead: tuple[bytes, list[torch.Tensor]] | None = None  # the guess answered, the generators before it
    while (request := serial.restricted_loads(payload := wire.recv_pickled(0))) != "terminate":
        if not isinstance(request, dict) or request.get("function") not in TTP_FUNCTIONS:
            raise InvalidArgument("party 0 asked the dealer for something it does not serve")
        if ahead is None or ahead[0] != payload:
            if ahead is not None:  # a wrong guess: as if it had not been answered
                for generator, state in zip(server.generators, ahead[1]):
                    generator.set_state(state)
            answer(payload)
        successors.observe(payload)
        ahead = None
        if (guess := successors.guess()) is not None:
            ahead = (guess, [generator.get_state() for generator in server.generators])
            answer(guess)
