"""A blinding helper process (run as a script, so it imports neither torch nor
CrypTen): reads a 32-byte secret scalar from stdin, then repeatedly a 4-byte
big-endian count and that many 32-byte u-coordinates, and writes each one's
X25519 product with the scalar, in order. Exits at end of input. It reads a
whole request before writing, so its parent can write to every helper first."""

from __future__ import annotations

import os
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

POINT_BYTES = 32


def _read(stream: object, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))  # type: ignore[attr-defined]
        if not chunk:
            return bytes(data)
        data += chunk
    return bytes(data)


def blind(scalar: bytes, data: bytes) -> bytes:
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    point = X25519PublicKey.from_public_bytes
    return b"".join(exchange(point(data[i : i + POINT_BYTES])) for i in range(0, len(data), POINT_BYTES))


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    scalar = _read(stdin, POINT_BYTES)
    while True:
        header = _read(stdin, 4)
        if len(header) < 4:
            return
        data = _read(stdin, int.from_bytes(header, "big") * POINT_BYTES)
        stdout.write(blind(scalar, data))
        stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):  # its worker ended (cancelled, or its gateway stopped)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error flushing stdout at exit
        raise SystemExit(1) from None
