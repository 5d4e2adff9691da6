"""Typed errors and their gRPC status codes: the one place that maps them.

Code anywhere in mpcgate raises a subclass of `MpcgateError`; servicers are wrapped
(see `gateway.transport.rpc.map_errors`) so each becomes the right status with its message,
and clients turn statuses back into the same classes. Messages must never contain
secrets, tokens or data values.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class MpcgateError(Exception):
    """Base class: a failure with a gRPC status and a stable reason."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items()}


class InvalidArgument(MpcgateError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class NotFound(MpcgateError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(MpcgateError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class Unauthenticated(MpcgateError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(MpcgateError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class FailedPrecondition(MpcgateError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class PolicyRefused(FailedPrecondition):
    """A party's own policy or config refuses the job (at review, start or release)."""

    reason = "POLICY_REFUSED"


class ResourceExhausted(MpcgateError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class Unavailable(MpcgateError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(MpcgateError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Cancelled(MpcgateError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class PeerFailed(Unavailable):
    """A party of an MPC session disconnected, crashed or stopped answering."""

    reason = "PEER_FAILED"

    def __init__(self, party_id: str, detail: str) -> None:
        super().__init__(f"peer {party_id!r} failed: {detail}", party_id=party_id)
        self.party_id = party_id


_BY_CODE: dict[grpc.StatusCode, type[MpcgateError]] = {}
for _cls in (InvalidArgument, NotFound, AlreadyExists, Unauthenticated, PermissionDenied,
             FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded, Cancelled):
    _BY_CODE[_cls.code] = _cls


def from_rpc_error(err: grpc.RpcError) -> MpcgateError:
    """The typed error for a status a server returned (clients use this)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, MpcgateError)
    error = cls(details or code.name)
    error.code = code  # type: ignore[misc]  # keeps UNKNOWN/INTERNAL visible
    return error
