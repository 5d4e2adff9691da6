"""What the MPC runtime needs of a transport, and nothing of how it is built.

A `Session` carries ordered frames between the members of one MPC session: a
tensor (or a serialized object, as uint8) per frame, matched by tag. The gateway's
exchange (`gateway.exchange.node.Session`: mutual-TLS gRPC streams) implements
it; the communicator, the torch.distributed backend and the dealer client receive
only through it, so the runtime sits below the gateway and never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

TENSOR = 1
"""A frame's payload is a tensor (mpcgate.exchange.v1.PAYLOAD_TYPE_TENSOR)."""
OBJECT = 2
"""A frame's payload is a serialized object, as uint8 (PAYLOAD_TYPE_OBJECT)."""

BFLOAT16 = np.dtype([("bfloat16", "<u2")])
"""bfloat16 as numpy carries it (numpy has no such type): each element's two bytes."""


@dataclass(frozen=True)
class Frame:
    """One received tensor (or serialized object, as uint8) on a stream."""

    sequence: int
    tag: str
    payload_type: int
    array: np.ndarray


class Session(Protocol):
    """This party's view of one MPC session: ordered frames to and from each peer.
    Every receive path of the runtime (point-to-point, collectives, the dealer's
    answers) goes through `recv_any`; a failed or silent peer raises PeerFailed."""

    id: str
    bytes_sent: int
    bytes_received: int
    frames_sent: int
    sent_to: dict[str, int]
    received_from: dict[str, int]

    @property
    def parties(self) -> list[str]: ...

    @property
    def closed(self) -> bool: ...

    def send(self, party: str, tag: str, array: np.ndarray, payload_type: int = TENSOR) -> None: ...

    def recv(self, party: str, tag: str) -> Frame: ...

    def recv_any(self, parties: list[str], tag: str) -> tuple[str, Frame]: ...

    def failed_peers(self) -> dict[str, str]: ...

    def close(self, timeout: float = 10.0) -> None: ...
