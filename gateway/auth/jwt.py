"""JWTs for people and services: issuing (administrators) and verifying (every
public RPC).

Only asymmetric signatures are accepted (EdDSA and ES256): `alg=none` and HMAC are
refused before any key is looked at. A token must name a trusted issuer and one of
its keys (`kid`, so keys can rotate), this gateway as audience, and carry exp, nbf,
iat and sub; times are checked with a small leeway. Scopes are a space-separated
`scope` claim. Tokens themselves never reach a log.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import InvalidArgument, Unauthenticated

ALGORITHMS = ("EdDSA", "ES256")
LEEWAY_S = 30
SCOPES = ("datasets:read", "datasets:write", "jobs:submit", "jobs:read", "jobs:approve", "results:read",
          "models:read", "models:write")


@dataclass(frozen=True)
class Identity:
    """The verified caller of an RPC."""

    issuer: str
    subject: str
    scopes: frozenset[str]

    def __str__(self) -> str:
        return f"{self.issuer}/{self.subject}"


def generate_issuer_key(directory: Path, kid: str) -> tuple[Path, Path]:
    """An Ed25519 signing key (`<kid>.key`, owner-only) and its public JWKS (`<kid>.jwks.json`)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = directory / f"{kid}.key"
    private.touch(mode=0o600)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    public.update(kid=kid, alg="EdDSA", use="sig")
    jwks = directory / f"{kid}.jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}, indent=2))
    return private, jwks


def issue_token(private_key: Path, kid: str, issuer: str, subject: str, audience: str,
                scopes: Iterable[str], ttl_s: int) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidArgument(f"unknown scopes: {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    algorithm = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_s,
              "jti": uuid.uuid4().hex, "scope": " ".join(sorted(set(scopes)))}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


class TokenVerifier:
    def __init__(self, audience: str, issuers: Mapping[str, Iterable[Path | dict[str, Any]]], leeway_s: int = LEEWAY_S) -> None:
        """`issuers`: issuer -> JWKS files (or JWKS dicts) of its current keys."""
        self._audience = audience
        self._leeway = leeway_s
        self._keys: dict[str, dict[str, jwt.PyJWK]] = {}
        for issuer, sources in issuers.items():
            keys: dict[str, jwt.PyJWK] = {}
            for source in sources:
                data = json.loads(source.read_text()) if isinstance(source, Path) else source
                for entry in jwt.PyJWKSet.from_dict(data).keys:
                    if not entry.key_id:
                        raise InvalidArgument(f"a key of issuer {issuer!r} has no kid")
                    if entry.algorithm_name not in ALGORITHMS:
                        raise InvalidArgument(f"key {entry.key_id!r} of issuer {issuer!r} is not EdDSA or ES256")
                    keys[entry.key_id] = entry
            self._keys[issuer] = keys

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are refused; use EdDSA or ES256")
        issuer = claims.get("iss")
        keys = self._keys.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise Unauthenticated(f"issuer {issuer!r} is not trusted here")
        key = keys.get(header.get("kid", ""))
        if key is None:
            raise Unauthenticated(f"issuer {issuer!r} has no key {header.get('kid')!r}")
        if key.algorithm_name != algorithm:
            raise Unauthenticated("the token's algorithm does not match its key")
        try:
            verified = jwt.decode(
                token, key.key, algorithms=[algorithm], audience=self._audience, issuer=issuer,
                leeway=self._leeway, options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the token is not for this gateway ({self._audience})") from None
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"the token is invalid: {type(err).__name__}") from None
        if verified["iat"] > time.time() + self._leeway:
            raise Unauthenticated("the token was issued in the future")
        scope = verified.get("scope", "")
        return Identity(issuer, str(verified["sub"]), frozenset(scope.split() if isinstance(scope, str) else []))
