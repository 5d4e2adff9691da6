"""What every page handler uses: the session of the signed-in person, their SDK
calls off the event loop, checked forms, and rendering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from gateway.console.oidc import Logins
from gateway.console.sessions import Sessions, SignedIn
from mpc.errors import Unauthenticated

T = TypeVar("T")
SESSIONS = web.AppKey("sessions", Sessions)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
PARTY = web.AppKey("party", str)
LOGINS = web.AppKey("logins", Logins)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    signed: SignedIn | None = request.get("signed")
    page = request.app[TEMPLATES].get_template(template).render(
        party=request.app[PARTY], signed=signed, csrf=signed.csrf if signed else "", path=request.path, **context)
    return web.Response(text=page, status=status, content_type="text/html")


def signed_in(request: web.Request) -> SignedIn:
    signed: SignedIn | None = request.get("signed")
    if signed is None:
        raise Unauthenticated("sign in first")
    return signed


async def call(fn: Callable[[], T]) -> T:
    """A blocking SDK call, off the event loop."""
    return await asyncio.to_thread(fn)


async def form(request: web.Request) -> dict[str, str]:
    """The posted form, after its CSRF token is checked against the session's."""
    posted = {k: str(v) for k, v in (await request.post()).items()}
    signed_in(request).check_form(posted.get("csrf", ""))
    return posted
