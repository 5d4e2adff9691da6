"""What counts as the same key, and keys hashed to curve points.

A key is its cell's text (an integer key: its decimal digits), with surrounding
whitespace removed and Unicode normalized to NFC, compared as UTF-8 bytes: "A17"
and " A17 " are the same key, "A17" and "a17" or "017" and "17" are not. Empty
keys and keys that repeat within a dataset are refused at registration.

A key's point is the X25519 u-coordinate SHA-256("mpcgate-psi-v1" || salt ||
len(key) || key) (X25519 ignores the top bit), salted per job so blinded values
from different jobs cannot be linked even before the scalars (fresh per job) are
applied.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from mpc.errors import InvalidArgument

DOMAIN = b"mpcgate-psi-v1\x00"
POINT_BYTES = 32


def canonical(key: object) -> bytes:
    return unicodedata.normalize("NFC", str(key).strip()).encode("utf-8")


def check(keys: Iterable[object], where: str) -> list[bytes]:
    """The keys' canonical bytes; INVALID_ARGUMENT naming `where` for an empty or
    repeated key."""
    encoded = [canonical(k) for k in keys]
    if any(not k for k in encoded):
        raise InvalidArgument(f"{where}: the key column has an empty key (row {encoded.index(b'') + 1})")
    if len(set(encoded)) != len(encoded):
        seen: set[bytes] = set()
        repeated = next(k for k in encoded if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidArgument(f"{where}: the key {repeated.decode(errors='replace')!r} appears more than once "
                              "(keys must identify one row each)")
    return encoded


def points(keys: Sequence[object], salt: bytes, where: str = "keys") -> np.ndarray:
    """rows x 32 uint8: each key's u-coordinate (see the module docstring); an
    empty key is refused, naming `where`."""
    prefix = DOMAIN + len(salt).to_bytes(4, "big") + salt
    out = bytearray()
    for key in keys:
        encoded = canonical(key)
        if not encoded:
            raise InvalidArgument(f"{where}: the key column has an empty key")
        out += hashlib.sha256(prefix + len(encoded).to_bytes(4, "big") + encoded).digest()
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(len(keys), POINT_BYTES)


def refuse_repeats(hashed: np.ndarray, keys: Sequence[object] | np.ndarray, where: str) -> None:
    """INVALID_ARGUMENT naming a repeated key, found among the points (numpy, not
    a set of Python objects); only on a repeat are the keys themselves compared."""
    values = np.ascontiguousarray(hashed).view(f"S{POINT_BYTES}").reshape(-1)
    if len(np.unique(values)) != len(values):
        check(keys, where)
