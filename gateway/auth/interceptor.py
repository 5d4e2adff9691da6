"""Every public RPC needs a verified bearer token with the RPC's scope.

The table below is the whole policy and it fails closed: a method missing from it
is refused. Peer-to-peer services (coordination, exchange) are not for people:
they are authenticated by the calling gateway's party certificate in their
handlers, never by a token. The verified identity is available to the handler
(and so to the audit log) through `current_identity()`.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any

import grpc
import grpc.aio

from gateway.auth.jwt import Identity, TokenVerifier
from gateway.errors import MpcgateError, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

_JOBS = "/mpcgate.gateway.v1.JobService/"
_DATASETS = "/mpcgate.gateway.v1.DatasetService/"
SCOPES: dict[str, str | None] = {
    _DATASETS + "RegisterDataset": "datasets:write",
    _DATASETS + "GetDataset": "datasets:read",
    _DATASETS + "ListDatasets": "datasets:read",
    _DATASETS + "UpdatePolicy": "datasets:write",
    _DATASETS + "DeleteDataset": "datasets:write",
    _JOBS + "SubmitJob": "jobs:submit",
    _JOBS + "GetJob": "jobs:read",
    _JOBS + "ListJobs": "jobs:read",
    _JOBS + "WatchJob": "jobs:read",
    _JOBS + "CancelJob": "jobs:submit",
    _JOBS + "ApproveJob": "jobs:approve",
    _JOBS + "GetResult": "results:read",
}
"""method -> required scope."""

PEER_SERVICES = ("/mpcgate.gateway.v1.CoordinationService/", "/mpcgate.exchange.v1.ExchangeService/")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("mpcgate_identity", default=None)


def current_identity() -> Identity | None:
    return _identity.get()


class ScopeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(PEER_SERVICES + OPEN_SERVICES):
            return handler
        scope = SCOPES.get(method)
        try:
            if scope is None:
                raise PermissionDenied(f"{method} is not open to callers")
            identity = self._verifier.verify(_bearer(details.invocation_metadata))
            if scope not in identity.scopes:
                raise PermissionDenied(f"{method.rsplit('/', 1)[-1]} needs scope {scope!r}")
        except MpcgateError as err:
            log.info("refused method=%s code=%s reason=%s", method, err.code.name, err.message)
            return _refusal(handler, err)
        return _with_identity(handler, identity)


def _bearer(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            break
    raise Unauthenticated("missing bearer token (metadata 'authorization: Bearer <jwt>')")


def _kind(handler: Any) -> tuple[str, Any]:
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior is not None:
            return kind, behavior
    raise RuntimeError("handler has no behavior")


def _rebuild(handler: Any, kind: str, behavior: Any) -> Any:
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    return make(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


def _refusal(handler: Any, err: MpcgateError) -> Any:
    kind, _ = _kind(handler)
    if kind.endswith("_stream"):
        async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(err.code, err.message)
            yield  # pragma: no cover  (makes this an async generator)
        return _rebuild(handler, kind, refuse_stream)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(err.code, err.message)
    return _rebuild(handler, kind, refuse)


def _with_identity(handler: Any, identity: Identity) -> Any:
    kind, behavior = _kind(handler)
    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: Any) -> Any:
            _identity.set(identity)
            async for item in behavior(request, context):
                yield item
        return _rebuild(handler, kind, stream)

    async def unary(request: Any, context: Any) -> Any:
        _identity.set(identity)
        return await behavior(request, context)
    return _rebuild(handler, kind, unary)
