"""One party's cost of a job program, as every benchmark reports it: seconds,
bytes this party sent and communication rounds, from CrypTen's communicator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def measured(run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """`run()`'s result and its cost at this party."""
    import crypten.communicator as comm

    communicator = comm.get()
    communicator.reset_communication_stats()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    stats = communicator.get_communication_stats()
    # CrypTen's own gloo communicator counts neither wire bytes nor exchanges (its counters stay off): 0
    return result, {"seconds": seconds, "bytes": stats.get("wire_bytes_sent", 0), "rounds": stats.get("exchanges", 0)}
