"""Secure building blocks every job program uses: public metadata, sharing a
party's local values, exact delivery of values one party computed alone, exact
extremes across parties, and opening values to the result receivers only.

Fixed point (CrypTen's 64-bit ring; `PRECISION_BITS` fractional bits): a value v
is held as round(v * 2^f). Sums are exact; a product of two encodings holds 2f
fractional bits until it is truncated, so programs keep every factor of a product
at most 1 in magnitude (products stay below 2^(2f) << 2^63). Where a party alone
knows a value (its own column's mean, its own histogram), it is delivered as a
mantissa in [0.5, 1) and an integer exponent, both secret-shared, so no magnitude
limit or precision loss applies and nothing about its size becomes public.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import torch

from mpc.errors import InvalidArgument
from mpc.programs import compare

PRECISION_BITS = 24
KEY_DROP_BITS = 3
"""Extremes travel as order-preserving integer keys of their float64 bits, less
this many low mantissa bits (so keys and their differences fit the ring):
relative precision 2^-49."""


def configure() -> None:
    import crypten

    crypten.cfg.encoder.precision_bits = PRECISION_BITS


def public(ctx: Any, value: Any) -> list[Any]:
    """Every party's `value` (public metadata such as row counts), by rank."""
    return public_among(ctx.rank, ctx.world_size, value)


def announced(ctx: Any, owner: int, value: Any) -> Any:
    """`owner`'s value (public metadata; the other parties pass None), at every party."""
    import crypten.communicator as comm

    return comm.get().broadcast_obj(value if ctx.rank == owner else None, owner)


def public_among(rank: int, world_size: int, value: Any) -> list[Any]:
    """`public` for code that has a rank and a world size but no job context: one
    round on mpcgate's communicator, a broadcast per party on CrypTen's own."""
    import crypten.communicator as comm

    communicator = comm.get()
    if hasattr(communicator, "all_gather_obj"):
        return communicator.all_gather_obj(value)
    return [communicator.broadcast_obj(value if r == rank else None, r) for r in range(world_size)]


def share_from(ctx: Any, owner: int, local: np.ndarray | None, shape: tuple[int, ...], precision: int | None = None) -> Any:
    """`owner`'s array (others pass None and the public shape), secret-shared.
    Values are rounded to the fixed-point grid first: CrypTen's encoder truncates
    toward zero, a bias that sums of many products turn into a systematic error."""
    import crypten

    if ctx.rank == owner:
        data = torch.from_numpy(on_grid(np.asarray(local), PRECISION_BITS if precision is None else precision))
    else:
        data = torch.zeros(shape, dtype=torch.float64)
    return crypten.cryptensor(data, src=owner, precision=precision)


def on_grid(values: np.ndarray, bits: int) -> np.ndarray:
    """`values` rounded to the fixed-point grid of `bits` fractional bits, as
    `share_from` shares them: a party that derives more values from a shared one
    (S and S P S) derives them from this."""
    return np.round(np.asarray(values, dtype=np.float64) * 2.0**bits) / 2.0**bits


def share_each(ctx: Any, local: np.ndarray, precision: int | None = None) -> list[Any]:
    """Every party's same-shaped `local`, secret-shared by its owner."""
    return [share_from(ctx, r, local, local.shape, precision) for r in range(ctx.world_size)]


def stacked_rows(ctx: Any, local: np.ndarray, sizes: list[int], precision: int | None = None) -> Any:
    """Each party's rows (`sizes[r]` of them at party r, same width), shared by its
    owner and stacked in rank order (horizontal data)."""
    import crypten

    width = local.shape[1]
    parts = [share_from(ctx, r, local if r == ctx.rank else None, (sizes[r], width), precision)
             for r in range(ctx.world_size) if sizes[r]]
    return crypten.cat(parts, dim=0)


def stacked_columns(ctx: Any, local: np.ndarray, widths: list[int], precision: int | None = None) -> Any:
    """Each party's columns (`widths[r]` of them at party r, same rows), shared by its
    owner and joined in rank order (vertical data)."""
    import crypten

    rows = local.shape[0]
    return crypten.cat([share_from(ctx, r, local if r == ctx.rank else None, (rows, w), precision)
                        for r, w in enumerate(widths) if w], dim=1)


def total(values: list[Any]) -> Any:
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


# -- values one party knows exactly ------------------------------------------------

SPLIT_ROWS = 3
LOW_LIMB_BITS = PRECISION_BITS + 1


def split(values: np.ndarray) -> np.ndarray:
    """float64 values -> rows [high, low, exponent] that share at PRECISION_BITS
    and join back to 2^-49 relative (a value a party releases, such as a vertical
    column's minimum, keeps float64's precision to that). The mantissa m in
    [0.5, 1) (or 0) is high + low * 2^-25: high on the 24-bit grid, |low| <= 1.
    Arithmetic under encryption takes high (m to 2^-25) and the exponent."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    high = np.round(np.ldexp(mantissa, PRECISION_BITS)) / 2.0**PRECISION_BITS
    return np.stack([high, np.ldexp(mantissa - high, LOW_LIMB_BITS), exponent.astype(np.float64)])


def join(opened: np.ndarray) -> np.ndarray:
    """The inverse of `split` on revealed values, or of a [mantissa, exponent]
    pair normalized under encryption (`normalized`). Exponents are exact integers."""
    mantissa = opened[0] + (np.ldexp(opened[1], -LOW_LIMB_BITS) if len(opened) == SPLIT_ROWS else 0.0)
    return np.ldexp(mantissa, np.round(opened[-1]).astype(np.int64))


# -- exact extremes across parties ------------------------------------------------------

def to_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving int64 keys of float64 values (see KEY_DROP_BITS)."""
    bits = np.asarray(values, dtype=np.float64).view(np.int64)
    keys = np.where(bits < 0, -(bits & np.int64(0x7FFFFFFFFFFFFFFF)), bits)
    return keys >> KEY_DROP_BITS


def from_keys(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.int64) << KEY_DROP_BITS
    bits = np.where(keys < 0, (-keys) | np.int64(-0x8000000000000000), keys)
    return bits.view(np.float64)


def extremes(ctx: Any, low: np.ndarray, high: np.ndarray) -> tuple[Any, Any]:
    """The elementwise min of every party's `low` and max of its `high` (float64
    vectors), shared, in one comparison for all of them (the maxima enter negated,
    so both are minima), as integer keys exact to 2^-49 relative (precision 0:
    comparisons and selections of keys are exact ring operations, no truncation)."""
    keys = np.concatenate([to_keys(low), -to_keys(high)])  # |key| < 2^(63 - KEY_DROP_BITS)
    best = smallest(share_integers(ctx, keys))
    return best[: len(low)], -best[len(low):]


def share_integers(ctx: Any, local: np.ndarray) -> list[Any]:
    """Every party's int64 array (the same shape at each), shared by each party at
    precision 0, as it is (share_each goes through float64): by rank."""
    import crypten

    values = torch.from_numpy(np.asarray(local, dtype=np.int64))
    return [crypten.cryptensor(values if r == ctx.rank else torch.zeros_like(values), src=r, precision=0)
            for r in range(ctx.world_size)]


def smallest(values: list[Any]) -> Any:
    """The elementwise minimum of equally shaped shared vectors (one per party) in
    one batched comparison of every pair, whatever their number (a chain of
    comparisons costs one comparison's rounds per vector). Each element's winner,
    the first of its smallest, is selected by products of the comparison bits."""
    import crypten

    if len(values) == 1:
        return values[0]
    return (first_smallest(values) * crypten.stack(values)).sum(dim=0)


def first_smallest(values: list[Any]) -> Any:
    """One-hot (stacked as the values) at each element's first smallest value:
    every pair compared exactly in one batch (`smallest`)."""
    import crypten

    n = len(values)
    if n == 1:
        return crypten.stack([values[0].mul(0) + 1])
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    # bit k: the later of pair k is strictly smaller (it beats the earlier); scale 1
    later, earlier = crypten.stack([values[j] for _, j in pairs]), crypten.stack([values[i] for i, _ in pairs])
    later_wins = compare.less_than(later, earlier)
    beats = {pair: later_wins[k] for k, pair in enumerate(pairs)}
    wins = [[(1 - beats[(i, j)]) if i < j else beats[(j, i)] for j in range(n) if j != i] for i in range(n)]
    winner = crypten.stack([w[0] for w in wins])
    for factor in range(1, n - 1):  # n - 2 rounds of products, all parties' at once
        winner = winner * crypten.stack([w[factor] for w in wins])
    return winner


def all_of(bits: Any) -> Any:
    """The AND over the first dimension of binary-shared 0/1 bits: halves ANDed,
    ceil(log2 n) rounds."""
    from crypten.mpc.primitives.binary import BinarySharedTensor

    while bits.size(0) > 1:
        half = bits.size(0) // 2
        paired = bits[:half] & bits[half : 2 * half]
        if bits.size(0) % 2:
            paired = BinarySharedTensor.from_shares(torch.cat([paired.share, bits.share[2 * half :]]), precision=0)
        bits = paired
    return bits[0]


# -- opening ------------------------------------------------------------------------------

def open_to_receivers(ctx: Any, values: list[Any]) -> list[np.ndarray] | None:
    """Asks this party's gateway whether it may still release, then opens each
    shared tensor to every result receiver (one opening per tensor and receiver).
    Returns the plain values at a receiver, None elsewhere."""
    plain = open_to_owners(ctx, [(receiver, value) for value in values for receiver in ctx.receivers])
    return plain if ctx.rank in ctx.receivers else None


@overload
def opened(value: Any) -> np.ndarray: ...


@overload
def opened(value: Any, dst: int | None) -> np.ndarray | None: ...


def opened(value: Any, dst: int | None = None) -> np.ndarray | None:
    """A shared value opened (to `dst`, or to every party) and decoded exactly:
    integer keys (precision 0) as int64, the rest as float64 (None at a party that
    is not `dst`). CrypTen's own decoder (get_plain_text) is wrong twice: it floors
    a negative value by scale - 1, so x just above a negative integer n (within |n|
    units of the last place) comes back as x - 1, and it returns float32, 24 bits
    of mantissa for every value."""
    ring = value._tensor.reveal(dst=dst)
    if ring is None or (dst is not None and dst != value._tensor.rank):
        return None
    return _decoded(ring, value)


def _decoded(ring: torch.Tensor, value: Any) -> np.ndarray:
    """An opened ring tensor as `value`'s plain values (see `opened`)."""
    scale = value.encoder.scale
    return ring.numpy() if scale == 1 else ring.double().numpy() / scale


def open_integers_to_all(ctx: Any, value: Any) -> np.ndarray:
    """round(value) (within +-1) opened to every party, and nothing finer: the
    fractional bits are truncated away under encryption before opening."""
    truncated = value._tensor.div(value.encoder.scale)
    plain = truncated.get_plain_text()  # decodes with the original scale: k / 2^f
    return np.round(plain.double().numpy() * value.encoder.scale).astype(np.int64)


def open_bits_to_all(ctx: Any, bits: Any) -> np.ndarray:
    """A shared 0/1 vector opened to every party (a decision all must share)."""
    return np.round(bits.get_plain_text().double().numpy()).astype(bool)


AGGREGATE_BITS = 32
"""Local aggregates (sums of values at most 1 over rows, divided by the row count)
are shared at 32 fractional bits: they are only added, so nothing nears the ring.
CrypTen's comparisons give wrong bits at any precision but the configured one
(and 0): compare a `lowered` copy."""

PRECISE_BITS = 40
"""Aggregates feeding a linear solver, whose condition number multiplies their
error, are kept at 40 bits (still only added, or multiplied in limbs): at 32 the
grid's rounding alone (2^-33 per entry) moved coefficients by ~1e-4 at condition 1e6."""

PRODUCT_BITS = 16
"""Products are taken of operands at 16 fractional bits: CrypTen's truncation after
a product goes wrong with probability about |product encoding| / 2^63, so a
product of two values near 1 at 24 bits (2^48) fails once in ~2^15 elements, at
16 bits (2^32) once in ~2^31. Linear work (sums of local aggregates) stays at
`PRECISION_BITS`, where it loses nothing."""


def lowered(value: Any, bits: int = PRODUCT_BITS) -> Any:
    """The same shared value re-encoded with fewer fractional bits (a truncation
    of a small encoding, so it cannot wrap)."""
    from crypten.encoder import FixedPointEncoder

    scale = int(value.encoder.scale)
    target = 1 << bits
    if scale <= target:
        return value
    out = value.clone()
    out._tensor = out._tensor.div(scale // target)
    out._tensor.encoder = FixedPointEncoder(precision_bits=bits)
    return out


def times_integers(value: Any, factors: int | list[int] | list[list[int]]) -> Any:
    """value * public integers, exactly (each party scales its own share: no
    encoding of the factors, no truncation)."""
    out = value.clone()
    out._tensor.share = out._tensor.share * torch.tensor(factors, dtype=torch.long)
    return out


def mul_mixed(high: Any, low: Any, op: str = "mul") -> Any:
    """high * low (or high @ low) where `low` has fewer fractional bits: the raw
    Beaver product is truncated by `low`'s scale, so the result keeps `high`'s
    precision while the product's encoding stays at 2^(f_high + f_low).
    (CrypTen itself would truncate by the larger scale.)"""
    from crypten.mpc.primitives import beaver

    raw = getattr(beaver, op)(high._tensor, low._tensor)
    raw.encoder = high._tensor.encoder
    raw.div_(int(low.encoder.scale))
    return wrapped(raw)


def exact_product(a: Any, b: Any, op: str = "mul") -> Any:
    """a * b (or a @ b) with no truncation: the product's encoding at the sum of
    both precisions (for low-precision factors whose product needs every bit)."""
    from crypten.encoder import FixedPointEncoder
    from crypten.mpc.primitives import beaver

    raw = getattr(beaver, op)(a._tensor, b._tensor)
    raw.encoder = FixedPointEncoder(precision_bits=bits(a) + bits(b))
    return wrapped(raw)


def bits(value: Any) -> int:
    """A shared value's fractional bits."""
    return int(value.encoder.scale).bit_length() - 1


def wrapped(raw: Any) -> Any:
    """An arithmetic shared tensor as a CrypTen MPCTensor."""
    import crypten

    out = crypten.cryptensor(torch.zeros(raw.share.shape, dtype=torch.float64))
    out._tensor = raw
    return out


def raised(value: Any, bits: int = PRECISION_BITS) -> Any:
    """The same shared value re-encoded with more fractional bits (exact)."""
    from crypten.encoder import FixedPointEncoder

    scale = int(value.encoder.scale)
    if scale >= 1 << bits:
        return value
    out = value.clone()
    out._tensor.share = out._tensor.share * ((1 << bits) // scale)
    out._tensor.encoder = FixedPointEncoder(precision_bits=bits)
    return out


def at_configured(value: Any) -> Any:
    """The same shared value at the configured precision, where CrypTen's comparisons
    give right bits (they do not at other precisions)."""
    return raised(lowered(value, PRECISION_BITS), PRECISION_BITS)


def inv_sqrt(value: Any) -> Any:
    """1 / sqrt(value) under encryption (CrypTen's Newton iterations, eight of them):
    accurate to ~1e-4 relative for value in [0.01, 128] (measured), not outside."""
    import crypten

    crypten.cfg.functions.sqrt_nr_iters = 8
    return value.inv_sqrt()


def less_than(value: Any, threshold: Any, binary: bool = False) -> Any:
    """value < threshold as shared 0/1 bits (scale 1; `binary`: binary shares): the
    sign of the difference (mpc.programs.compare, exact at any precision; a public
    threshold is resolved at least at the configured precision)."""
    return compare.sign_bits(raised(value) - threshold, binary)


def greater_than(value: Any, threshold: Any, binary: bool = False) -> Any:
    return compare.sign_bits((raised(value) - threshold).neg(), binary)


def less_than_to_all(ctx: Any, value: Any, threshold: Any) -> np.ndarray:
    """value < threshold, opened to every party (a decision all must share): the
    comparison's bits are revealed as they come, binary (no conversion round)."""
    return revealed_bits(less_than(value, threshold, binary=True))


def greater_than_to_all(ctx: Any, value: Any, threshold: Any) -> np.ndarray:
    """value > threshold, opened to every party (see less_than_to_all)."""
    return revealed_bits(greater_than(value, threshold, binary=True))


def revealed_bits(bits: Any) -> np.ndarray:
    """Binary-shared 0/1 bits opened to every party, as booleans."""
    return ((bits.reveal() & 1) == 1).numpy()


def sign_and_magnitude(value: Any) -> tuple[Any, Any]:
    """(value < 0 as shared 0/1 bits, |value| at value's precision)."""
    negative = less_than(value, 0)
    return negative, value - 2 * value * negative


def normalized(value: Any, low: int = -16, high: int = 16) -> tuple[Any, Any]:
    """(mantissa, exponent), both shared, with value = mantissa * 2^exponent,
    |mantissa| in [0.5, 1) carrying value's sign, for 2^low <= |value| < 2^high
    (smaller magnitudes give 0 and 0). The exponent is an integer at scale 1.
    Opening both reveals the value and nothing else (unlike a public frame, no
    power of two of any factor it was computed from). By comparisons against every
    power of two in the range, one-hot selected."""
    import crypten

    negative, magnitude = sign_and_magnitude(at_configured(value))
    count = high - low
    powers = torch.tensor([2.0 ** (high - 1 - k) for k in range(count)], dtype=torch.float64)
    above = magnitude.unsqueeze(-1).expand(*magnitude.size(), count).ge(powers)  # 1 from the first power below
    first = above - crypten.cat([above[..., :1].mul(0), above[..., :-1]], dim=-1)  # one-hot at that power
    shifted = [magnitude.div(2 ** (high - k)) if k < high else times_integers(magnitude, [2 ** (k - high)])
               for k in range(count)]  # magnitude / 2^(high - k), in [0.5, 1) where first_k = 1
    mantissa = (first * crypten.stack(shifted, dim=-1)).sum(-1)
    exponent = first.mul(torch.tensor([float(high - k) for k in range(count)], dtype=torch.float64)).sum(-1)
    return mantissa - 2 * mantissa * negative, exponent


def open_to_owners(ctx: Any, parts: list[tuple[int, Any]]) -> list[np.ndarray]:
    """Each (owner, shared arithmetic value) opened to its owner alone, after this
    party's gateway allowed the release, all in one round: every party sends each
    owner its shares of that owner's values together (an opening per value took a
    round each). Returns this party's values, in order, decoded as `opened` does."""
    import crypten.communicator as comm
    from crypten.mpc import arithmetic

    ctx.before_release()
    if any(value.ptype != arithmetic for _, value in parts):
        raise InvalidArgument("only arithmetic shares are opened to their owners")
    flat = {owner: torch.cat([v._tensor.share.reshape(-1) for o, v in parts if o == owner])
            for owner in {owner for owner, _ in parts}}
    sends = [comm.get().isend(shares, owner) for owner, shares in flat.items() if owner != ctx.rank]
    mine: list[np.ndarray] = []
    if ctx.rank in flat:
        ring = flat[ctx.rank].clone()
        for r in range(ctx.world_size):
            if r != ctx.rank:
                ring += comm.get().recv(torch.empty_like(ring), r)
        values = [v for o, v in parts if o == ctx.rank]
        sizes = [v._tensor.share.numel() for v in values]
        mine = [_decoded(part.reshape(value._tensor.share.shape), value)
                for value, part in zip(values, torch.split(ring, sizes))]
    for sent in sends:
        sent.wait()
    return mine
