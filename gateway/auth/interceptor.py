"""Every public RPC needs a verified bearer token with the RPC's scope.

The table below is the whole policy and it fails closed: a method missing from it
is refused. Peer-to-peer services (coordination, exchange) are not for people:
they are authenticated by the calling gateway's party certificate in their
handlers, never by a token. The verified identity is available to the handler
(and so to the audit log) through `current_identity()`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from gateway.auth.jwt import Identity, TokenVerifier
from gateway.transport.rpc import wrap_handler
from mpc.errors import MpcgateError, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

_JOBS = "/mpcgate.gateway.v1.JobService/"
_DATASETS = "/mpcgate.gateway.v1.DatasetService/"
_MODELS = "/mpcgate.gateway.v1.ModelService/"
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
    _MODELS + "ListModels": "models:read",
    _MODELS + "GetModel": "models:read",
    _MODELS + "DeleteModel": "models:write",
    _MODELS + "RegisterModel": "models:write",
    _MODELS + "SetModelPolicy": "models:write",
    "/mpcgate.gateway.v1.AuditService/ListAuditEntries": "audit:read",
    "/mpcgate.gateway.v1.AuditService/VerifyAuditLog": "audit:read",
    "/mpcgate.gateway.v1.AuditService/GetJobRecords": "audit:read",
}
"""method -> required scope."""

PEER_SERVICES = ("/mpcgate.gateway.v1.CoordinationService/", "/mpcgate.exchange.v1.ExchangeService/")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("mpcgate_identity", default=None)


def current_identity() -> Identity | None:
    return _identity.get()


class ScopeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier,
                 audit: Callable[[str, str, str, str, dict[str, str]], Any] | None = None) -> None:
        self._verifier = verifier
        self._audit = audit
        """append(actor, action, subject, outcome, details): a verified caller refused for
        want of a scope is recorded (a person probing beyond their role); calls without a
        valid token are only logged (anyone could fill the audit log with them)."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(PEER_SERVICES + OPEN_SERVICES):
            return handler
        scope = SCOPES.get(method)
        identity = None
        try:
            if scope is None:
                raise PermissionDenied(f"{method} is not open to callers")
            identity = self._verifier.verify(_bearer(details.invocation_metadata))
            if scope not in identity.scopes:
                raise PermissionDenied(f"{method.rsplit('/', 1)[-1]} needs scope {scope!r}")
        except MpcgateError as err:
            log.info("refused method=%s code=%s reason=%s", method, err.code.name, err.message)
            if identity is not None and self._audit is not None:
                self._audit(str(identity), method.rsplit("/", 1)[-1], "", err.code.name, {"reason": err.message})
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


def _refusal(handler: Any, err: MpcgateError) -> Any:
    def refuse(request: Any, context: Any) -> None:
        raise err  # ends the call with err's status before any handler code runs

    return wrap_handler(handler, refuse)


def _with_identity(handler: Any, identity: Identity) -> Any:
    return wrap_handler(handler, lambda request, context: _identity.set(identity))
