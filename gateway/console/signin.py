"""Signing in (a pasted token from an issuer the gateway trusts, or a provider's
login page where one is configured: gateway/console/oidc.py) and out."""

from __future__ import annotations

from aiohttp import web

from gateway.console import sessions
from gateway.console.pages import LOGINS, SESSIONS, call, form, render
from mpc.errors import Unauthenticated

routes = web.RouteTableDef()


def _page(request: web.Request, status: int = 200, refused: str = "") -> web.Response:
    return render(request, "signin.html", status, refused=refused, providers=sorted(request.app[LOGINS].issuers))


@routes.get("/signin")
async def page(request: web.Request) -> web.Response:
    return _page(request)


@routes.post("/signin")
async def sign_in(request: web.Request) -> web.Response:
    posted = await request.post()
    return _signed_in(request, str(posted.get("token", "")))


def _signed_in(request: web.Request, token: str) -> web.Response:
    try:
        session_id, _ = request.app[SESSIONS].sign_in(token)
    except Unauthenticated as err:
        return _page(request, 401, err.message)
    response = web.HTTPSeeOther("/approvals")
    response.set_cookie(sessions.COOKIE, session_id, **sessions.cookie_options())
    return response


@routes.get("/signin/oidc")
async def provider_login(request: web.Request) -> web.Response:
    """To the provider's login page; it sends the browser back to /signin/callback."""
    redirect_uri = f"{request.url.origin()}/signin/callback"
    name = request.query.get("issuer", "")
    try:
        url = await call(lambda: request.app[LOGINS].start(name, redirect_uri))
    except Unauthenticated as err:
        return _page(request, 401, err.message)
    raise web.HTTPSeeOther(url)


@routes.get("/signin/callback")
async def provider_callback(request: web.Request) -> web.Response:
    query = request.query
    if "error" in query:
        return _page(request, 401, f"the provider did not sign you in: {query['error'][:100]}")
    try:
        token = await call(lambda: request.app[LOGINS].finish(query.get("state", ""), query.get("code", "")))
    except Unauthenticated as err:
        return _page(request, 401, err.message)
    return _signed_in(request, token)


@routes.post("/signout")
async def sign_out(request: web.Request) -> web.Response:
    await form(request)
    request.app[SESSIONS].sign_out(request.cookies.get(sessions.COOKIE))
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(sessions.COOKIE, path="/")
    return response


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/approvals")
