"""Secure comparison by the sign bit alone: x < 0 for a shared x is the top bit of
the parties' shares' sum, which needs only the carry into bit 63, not the whole
sum CrypTen's conversion builds.

The parties' arithmetic shares x_0 + ... + x_{N-1} (mod 2^64) enter as binary
secrets (each party's own share, XOR-shared from shared seeds: nothing sent),
carry-save adders reduce them to two, s + c (one AND per extra party), and the
carry into bit 63 of s + c is the generate signal of bits 0..62, combined pairwise
in a tree of six levels: (G, P) of a pair is (G_hi xor P_hi G_lo, P_hi P_lo).
Each level halves the bits still needed, so the AND gates of a level are packed
into half the words of the one before: per element about 2 words of AND against
CrypTen's 13 per adder (its A2B adds every share with a full 64-bit
Kogge-Stone adder), and 8 rounds against 14 for three parties.

`below(u, thresholds)` compares a binary-shared value with public thresholds the
same way (generate and propagate with a public operand are local).
"""

from __future__ import annotations

from typing import Any

import torch

EVEN = 0x5555555555555555
UNZIP = [(1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
         (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)]
TOP = 1 << 63


def _mask(value: int) -> torch.Tensor:
    return torch.tensor(value - (1 << 64) if value >= 1 << 63 else value, dtype=torch.long)


def _unzip(words: torch.Tensor) -> torch.Tensor:
    """The even bits of each word, gathered into its low 32 bits (XOR-linear: each
    party applies it to its own share)."""
    words = words & _mask(EVEN)
    for shift, mask in UNZIP:
        words = (words ^ (words >> shift)) & _mask(mask)
    return words


def _halved(words: torch.Tensor) -> torch.Tensor:
    """Words whose even bits carry the next level, packed two to a word (the
    flattened bit order kept: word 2j's bits, then word 2j + 1's)."""
    low = _unzip(words)
    if low.numel() % 2:
        low = torch.cat([low, torch.zeros(1, dtype=torch.long)])
    pairs = low.reshape(-1, 2)
    return pairs[:, 0] ^ (pairs[:, 1] << 32)


def carry_out(g: Any, p: Any, elements: int) -> Any:
    """The group generate bit of every element's 64 (G, P) bit pairs (binary
    shares, one word per element), as a binary tensor of 0/1 in bit 0."""
    from crypten.mpc.primitives.binary import BinarySharedTensor

    width = 64
    gs, ps = g.share, p.share
    while width > 1:
        hi_p = (ps >> 1) & _mask(EVEN)  # each pair's high P, at the pair's even position
        left = BinarySharedTensor.from_shares(hi_p ^ (hi_p << 1), precision=0)
        right = BinarySharedTensor.from_shares((gs & _mask(EVEN)) ^ ((ps & _mask(EVEN)) << 1), precision=0)
        both = (left & right).share  # even bits: P_hi G_lo; odd bits: P_hi P_lo
        gs = _halved(((gs >> 1) & _mask(EVEN)) ^ (both & _mask(EVEN)))
        ps = _halved((both >> 1) & _mask(EVEN))
        width //= 2
    bits = _spread(gs, elements)
    return BinarySharedTensor.from_shares(bits, precision=0)


def _spread(words: torch.Tensor, elements: int) -> torch.Tensor:
    """One bit per element, from words packing 64 elements' bits each."""
    positions = torch.arange(64, dtype=torch.long)
    return ((words.unsqueeze(1) >> positions) & 1).reshape(-1)[:elements]


def _flat(share: torch.Tensor) -> torch.Tensor:
    """Each element's word, and the count padded to a multiple of 64 (so every
    level's bits fill whole words)."""
    flat = share.reshape(-1)
    pad = (-flat.numel()) % 64
    return torch.cat([flat, torch.zeros(pad, dtype=torch.long)]) if pad else flat


def sign_bits(x: Any, binary: bool = False) -> Any:
    """x < 0 for an MPCTensor x (any precision), as an MPCTensor of 0/1 (scale 1),
    or (`binary`) a BinarySharedTensor of 0/1 (no conversion round)."""
    import crypten.communicator as comm
    from crypten.mpc.primitives.binary import BinarySharedTensor

    share = _flat(x._tensor.share)
    addends = [BinarySharedTensor(share, src=i) for i in range(comm.get().get_world_size())]
    while len(addends) > 2:  # carry-save: three addends to two
        a, b, c = addends.pop(), addends.pop(), addends.pop()
        carry = ((a ^ c) & (b ^ c)) ^ c
        addends += [a ^ b ^ c, carry << 1]
    s, c = addends
    return _top_bit(s & c, s ^ c, x._tensor.share.shape, binary)


def below(u: Any, thresholds: torch.Tensor, binary: bool = False) -> Any:
    """u < thresholds for a BinarySharedTensor u of values in [0, 2^62) and public
    thresholds in [0, 2^62] (broadcast to u's shape), as an MPCTensor of 0/1 (or,
    `binary`, a BinarySharedTensor of 0/1): the top bit of u + (2^64 - threshold),
    whose generate and propagate signals are local (one operand is public)."""
    import crypten.communicator as comm
    from crypten.mpc.primitives.binary import BinarySharedTensor

    shape = u.share.shape
    negated = _flat(torch.broadcast_to(-thresholds, shape).contiguous())  # 2^64 - t, mod 2^64
    mine = _flat(u.share)
    g = BinarySharedTensor.from_shares(mine & negated, precision=0)
    p = BinarySharedTensor.from_shares(mine ^ negated if comm.get().get_rank() == 0 else mine, precision=0)
    return _top_bit(g, p, shape, binary)


def _top_bit(g: Any, p: Any, shape: torch.Size, binary: bool = False) -> Any:
    """Bit 63 of the sum whose generate and propagate words (binary shares, one per
    element, padded) are g and p: P_63 xor the carry into bit 63."""
    import crypten.communicator as comm
    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives.binary import BinarySharedTensor
    from crypten.mpc.primitives.converters import _B2A

    n = int(torch.Size(shape).numel())
    top = (p.share >> 63) & 1
    g.share &= ~_mask(TOP)  # bit 63 passes the carry from below: G = 0, P = 1
    p.share &= ~_mask(TOP)
    if comm.get().get_rank() == 0:
        p.share |= _mask(TOP)
    carry = carry_out(g, p, g.share.numel())
    bit = BinarySharedTensor.from_shares((carry.share[:n] ^ top[:n]).reshape(shape), precision=0)
    if binary:
        return bit
    return MPCTensor.from_shares(_B2A(bit, precision=0, bits=1).share.reshape(shape), precision=0)


def less_than(x: Any, y: Any) -> Any:
    """x < y as shared 0/1 (scale 1): the sign of x - y (exact at any precision)."""
    return sign_bits(x - y)
