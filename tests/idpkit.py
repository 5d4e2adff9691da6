"""An identity provider on loopback for the tests: OIDC discovery and its JWKS
over HTTPS (a certificate of its own CA), RSA keys it signs tokens with, and a
login (authorization code with PKCE) that signs in `user` at once, as a provider
whose user already has a session does. Its token endpoint checks the code, the
client, the redirect URI and the PKCE verifier as a real provider must."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.transport import pki


class Provider:
    def __init__(self, directory: Path) -> None:
        pki.init_ca(directory)
        files = pki.issue(directory, "idp")
        self.ca = directory / "ca.crt"
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[dict[str, Any]] = []
        self.user = "alice@bank-a.example"
        self.login: dict[str, Any] = {}  # for the code flow: client_id, audience, scp, kid
        self.codes: dict[str, dict[str, str]] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's name)
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/authorize":
                    self._redirect(provider.authorize(dict(urllib.parse.parse_qsl(url.query))))
                    return
                documents = {"/.well-known/openid-configuration": {
                    "issuer": provider.url, "jwks_uri": f"{provider.url}/keys",
                    "authorization_endpoint": f"{provider.url}/authorize", "token_endpoint": f"{provider.url}/token"},
                    "/keys": {"keys": provider.published}}
                self._json(200 if url.path in documents else 404, documents.get(url.path, {}))

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                status, answer = provider.exchange(dict(urllib.parse.parse_qsl(body)))
                self._json(status, answer)

            def _json(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(303)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.cert, files.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add_key(self, kid: str, bits: int = 2048, alg: str | None = None) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public.update(kid=kid, use="sig", **({"alg": alg} if alg else {}))
        self.keys[kid] = key
        self.published.append(public)

    def token(self, kid: str, audience: str, scp: Any, algorithm: str = "RS256", issuer: str = "",
              subject: str = "") -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.url, "sub": subject or self.user, "aud": audience, "iat": now, "nbf": now,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "scp": scp}
        return jwt.encode(claims, self.keys[kid], algorithm=algorithm, headers={"kid": kid})

    def authorize(self, query: dict[str, str]) -> str:
        """The login page: `user` is signed in; back to the client with a code (or an error)."""
        back = query.get("redirect_uri", "")
        if query.get("client_id") != self.login.get("client_id") or query.get("code_challenge_method") != "S256":
            return back + "?" + urllib.parse.urlencode({"error": "unauthorized_client", "state": query.get("state", "")})
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"challenge": query.get("code_challenge", ""), "redirect_uri": back}
        return back + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: each code once, for its client, redirect URI and PKCE verifier."""
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        proof = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or proof != grant["challenge"] or form.get("redirect_uri") != grant["redirect_uri"] \
                or form.get("client_id") != self.login.get("client_id") or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        token = self.token(self.login["kid"], self.login["audience"], self.login["scp"])
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 300}

    def close(self) -> None:
        self._server.shutdown()
