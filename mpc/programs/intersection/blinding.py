"""This party's secret blinding scalar, applied to arrays of X25519 u-coordinates
across the machine's cores.

X25519 is OpenSSL's (through `cryptography`, ~30,000 products per second per
core here; libsodium's measured ~16,000). Python threads do not help (the GIL is
held), and a job's worker is a daemon process, which multiprocessing forbids to
have children; so the other cores run `helper.py` as plain subprocesses that
receive the scalar on a pipe (never on a command line or in the environment).
The scalar is fresh per job and never leaves this party's processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mpc.errors import FailedPrecondition
from mpc.programs.intersection import helper

POINT_BYTES = helper.POINT_BYTES
MAX_HELPERS = 7


class Blinder:
    def __init__(self, cores: int | None = None) -> None:
        self._scalar = os.urandom(POINT_BYTES)
        count = max(1, min(cores or os.cpu_count() or 1, MAX_HELPERS + 1)) - 1
        self._helpers = [subprocess.Popen([sys.executable, str(Path(helper.__file__))], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE) for _ in range(count)]
        for process in self._helpers:
            assert process.stdin is not None
            process.stdin.write(self._scalar)
            process.stdin.flush()

    def apply(self, points: np.ndarray) -> np.ndarray:
        """rows x 32 uint8 -> each row times the scalar (rows x 32 uint8)."""
        parts = np.array_split(np.ascontiguousarray(points, dtype=np.uint8), len(self._helpers) + 1)
        for process, part in zip(self._helpers, parts[1:]):
            assert process.stdin is not None
            process.stdin.write(len(part).to_bytes(4, "big") + part.tobytes())
            process.stdin.flush()
        try:
            out = [helper.blind(self._scalar, parts[0].tobytes())]
        except ValueError:
            raise FailedPrecondition("a peer sent a point of small order during the intersection") from None
        for process, part in zip(self._helpers, parts[1:]):
            assert process.stdout is not None
            data = helper._read(process.stdout, len(part) * POINT_BYTES)
            if len(data) != len(part) * POINT_BYTES:
                raise FailedPrecondition("a blinding helper process failed (a point of small order from a peer?)")
            out.append(data)
        return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(-1, POINT_BYTES)

    def close(self) -> None:
        for process in self._helpers:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self._helpers = []

    def __enter__(self) -> Blinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
