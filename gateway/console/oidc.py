"""Signing in through an identity provider's login page, where the gateway's
config names the console's client at a trusted issuer (`console_client_id`):
OAuth 2.0's authorization code flow with PKCE (RFC 7636) and a one-time state.
The access token the provider returns is then checked and used exactly as a
pasted one (gateway/console/sessions.py): the provider's token is the person's
credential at the gateway; the console holds no secret of its own."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass

from gateway.auth.issuers import IssuerConfig, discovered, post_form
from mpc.errors import MpcgateError, Unauthenticated

PENDING_S = 300.0
"""How long a login may take at the provider."""
SCOPE = "openid"
"""What the console asks for; the provider decides the token's mpcgate scopes for the person."""


@dataclass(frozen=True)
class Pending:
    issuer: IssuerConfig
    verifier: str
    redirect_uri: str
    started: float


class Logins:
    def __init__(self, issuers: list[IssuerConfig]) -> None:
        self.issuers = {issuer.name: issuer for issuer in issuers if issuer.console_client_id}
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def start(self, name: str, redirect_uri: str) -> str:
        """The provider's authorization URL to send the browser to (blocking: it
        reads the provider's discovery document)."""
        issuer = self.issuers.get(name)
        if issuer is None:
            raise Unauthenticated(f"no sign-in through {name[:80]!r} is configured at this gateway")
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        with self._lock:
            now = time.monotonic()
            self._pending = {k: v for k, v in self._pending.items() if now - v.started < PENDING_S}
            self._pending[state] = Pending(issuer, verifier, redirect_uri, now)
        query = {"response_type": "code", "client_id": issuer.console_client_id, "redirect_uri": redirect_uri,
                 "scope": SCOPE, "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
        return discovered(issuer, "authorization_endpoint") + "?" + urllib.parse.urlencode(query)

    def finish(self, state: str, code: str) -> str:
        """The access token for a login the provider sent back (each state once);
        Unauthenticated for an unknown, stale or refused one."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started >= PENDING_S:
            raise Unauthenticated("this sign-in was not started here, was used already or took too long: start again")
        issuer = pending.issuer
        try:
            answer = post_form(discovered(issuer, "token_endpoint"), {
                "grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
                "client_id": issuer.console_client_id, "code_verifier": pending.verifier}, issuer)
        except MpcgateError as err:
            raise Unauthenticated(f"{issuer.name} refused the sign-in: {err.message}") from None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise Unauthenticated(f"{issuer.name} answered without an access token")
        return token
