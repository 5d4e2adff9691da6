"""The console's web server: aiohttp on its own port, TLS with the gateway's own
certificate, pages rendered on the server (Jinja2, autoescaped), a little
JavaScript for live progress and charts, every file served from the package
(gateways run in closed networks: nothing comes from a CDN).

Every page is a signed-in person's call through the SDK to this gateway's gRPC
services, with their token: the scopes and the audit log apply as they do to any
client. Errors map to HTTP statuses in one place (`_failures`)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import jinja2
from aiohttp import web

from gateway.console import audit, datasets, jobs, models, sessions, signin
from gateway.console.oidc import Logins
from gateway.console.pages import LOGINS, PARTY, SESSIONS, TEMPLATES, render
from gateway.console.sessions import Sessions
from gateway.transport.tls import TlsIdentity
from mpc.errors import MpcgateError, Unauthenticated

log = logging.getLogger("mpcgate.console")
HERE = Path(__file__).parent
OPEN_PATHS = ("/signin", "/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
"""The gRPC status of a failed call -> the page's HTTP status (else 500)."""


@web.middleware
async def _failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed-in pages only (else to the sign-in page); a refusal from the gateway
    becomes a page that says why, with the matching HTTP status."""
    try:
        if not request.path.startswith(OPEN_PATHS):
            request["signed"] = request.app[SESSIONS].find(request.cookies.get(sessions.COOKIE))
        response = await handler(request)
    except MpcgateError as err:
        if isinstance(err, Unauthenticated) and request.method == "GET" and not request.path.startswith(OPEN_PATHS):
            raise web.HTTPSeeOther("/signin") from None
        log.info("console refused path=%s code=%s", request.path, err.code.name)
        return render(request, "error.html", HTTP_STATUS.get(err.code, 500), code=err.code.name, message=err.message)
    response.headers.update(SECURITY_HEADERS)
    return response


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}


def application(sessions_: Sessions, party_id: str, logins: Logins) -> web.Application:
    app = web.Application(middlewares=[_failures], client_max_size=256 * 1024)
    app[SESSIONS] = sessions_
    app[PARTY] = party_id
    app[LOGINS] = logins
    app[TEMPLATES] = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                        autoescape=True, undefined=jinja2.StrictUndefined)
    for module in (signin, jobs, datasets, audit, models):
        app.add_routes(module.routes)
    app.router.add_static("/static/", HERE / "static")
    return app


def tls_context(identity: TlsIdentity) -> ssl.SSLContext:
    """The gateway's own certificate and key (browsers trust the federation CA)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    identity.load_into(context)
    return context


async def start(listen: str, identity: TlsIdentity, sessions_: Sessions, party_id: str, logins: Logins) -> web.AppRunner:
    """Serves the console at `listen` (host:port) until the runner is cleaned up."""
    runner = web.AppRunner(application(sessions_, party_id, logins), access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host or "127.0.0.1", int(port), ssl_context=tls_context(identity))
    await site.start()
    log.info("console party=%s listening address=%s", party_id, listen)
    return runner
