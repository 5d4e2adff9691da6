"""Sign-in for the console: a person pastes a token from an issuer this gateway
already trusts. The token is checked as every RPC checks it (the gateway's own
TokenVerifier) and kept server-side only; the browser holds a random session id
in an HttpOnly, Secure, SameSite=Strict cookie and a per-session token that every
form posts back (CSRF). The session's SDK client carries the pasted token, so
each page's data comes through the gRPC services and their scopes: the console
authorizes nothing itself."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from gateway.auth.jwt import Identity, TokenVerifier
from gateway.client.sdk import Client
from gateway.transport.tls import TlsIdentity
from mpc.errors import PermissionDenied, Unauthenticated

COOKIE = "mpcgate_console"
IDLE_S = 1800.0
"""A session unused this long ends (the token's own expiry ends it sooner)."""


@dataclass
class SignedIn:
    """One browser's session: who it is, until when, and its client to the gateway."""

    identity: Identity
    client: Client
    csrf: str
    expires: float
    last_used: float = field(default_factory=time.monotonic)

    def check_form(self, posted: str) -> None:
        if not hmac.compare_digest(posted.encode(), self.csrf.encode()):
            raise PermissionDenied("the form is stale or was not sent by this console: reload the page")


class Sessions:
    def __init__(self, verifier: TokenVerifier, tls: TlsIdentity, address: str, party_id: str) -> None:
        self._verifier = verifier
        self._tls = tls
        self._address = address
        self._party = party_id
        self._lock = threading.Lock()
        self._open: dict[str, SignedIn] = {}

    def sign_in(self, token: str) -> tuple[str, SignedIn]:
        """(session id, session) for a token this gateway accepts; Unauthenticated
        (saying why: forged, expired, unknown issuer) otherwise."""
        token = token.strip()
        identity = self._verifier.verify(token)
        expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        client = Client(self._address, token, self._tls, server_party=self._party)
        session_id = secrets.token_urlsafe(32)
        signed = SignedIn(identity, client, secrets.token_urlsafe(32), expires)
        with self._lock:
            self._sweep()
            self._open[session_id] = signed
        return session_id, signed

    def find(self, session_id: str | None) -> SignedIn:
        """The live session of this id; Unauthenticated if none (never was, signed
        out, idle too long, or its token expired)."""
        with self._lock:
            self._sweep()
            signed = self._open.get(session_id or "")
            if signed is None:
                raise Unauthenticated("sign in with a token from an issuer this gateway trusts")
            signed.last_used = time.monotonic()
            return signed

    def sign_out(self, session_id: str | None) -> None:
        with self._lock:
            signed = self._open.pop(session_id or "", None)
        if signed is not None:
            signed.client.close()

    def close(self) -> None:
        with self._lock:
            ended, self._open = list(self._open.values()), {}
        for signed in ended:
            signed.client.close()

    def _sweep(self) -> None:
        now, idle = time.time(), time.monotonic() - IDLE_S
        for session_id, signed in list(self._open.items()):
            if signed.expires <= now or signed.last_used <= idle:
                self._open.pop(session_id).client.close()


def cookie_options() -> dict[str, Any]:
    return {"httponly": True, "secure": True, "samesite": "Strict", "path": "/"}
