"""Signing in (a pasted token from an issuer the gateway trusts) and out."""

from __future__ import annotations

from aiohttp import web

from gateway.console import sessions
from gateway.console.pages import SESSIONS, form, render
from mpc.errors import Unauthenticated

routes = web.RouteTableDef()


@routes.get("/signin")
async def page(request: web.Request) -> web.Response:
    return render(request, "signin.html")


@routes.post("/signin")
async def sign_in(request: web.Request) -> web.Response:
    posted = await request.post()
    try:
        session_id, _ = request.app[SESSIONS].sign_in(str(posted.get("token", "")))
    except Unauthenticated as err:
        return render(request, "signin.html", 401, refused=err.message)
    response = web.HTTPSeeOther("/approvals")
    response.set_cookie(sessions.COOKIE, session_id, **sessions.cookie_options())
    return response


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
