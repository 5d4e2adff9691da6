"""JWTs for people and services: issuing (administrators) and verifying (every
public RPC).

Only asymmetric signatures are accepted (EdDSA, ES256, RS256 and PS256, RSA keys
of 2048 bits or more): `alg=none` and HMAC are refused before any key is looked
at. A token must name a trusted issuer (gateway.auth.issuers: JWKS files, or an
identity provider's JWKS URL refreshed on a schedule) and one of its keys (`kid`,
so keys can rotate), this gateway (or the issuer's configured audience) as
audience, and carry exp, nbf, iat and sub; times are checked with a small leeway.
Scopes are in the issuer's scope claim (`scope`, or `scp`), space-separated or a
list. Tokens themselves never reach a log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.issuers import ALGORITHMS, RSA_ALGORITHMS, IssuerConfig, SigningKey, load_keys
from mpc.errors import InvalidArgument, Unauthenticated, Unavailable

log = logging.getLogger(__name__)
LEEWAY_S = 30
SCOPES = ("datasets:read", "datasets:write", "jobs:submit", "jobs:read", "jobs:approve", "results:read",
          "models:read", "models:write", "audit:read")


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
                scopes: Iterable[str], ttl_s: int, rsa_algorithm: str = "RS256") -> str:
    """A token signed with the issuer's key: EdDSA, ES256, or for an RSA key
    `rsa_algorithm` (RS256 or PS256)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidArgument(f"unknown scopes: {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        if rsa_algorithm not in RSA_ALGORITHMS:
            raise InvalidArgument(f"an RSA key signs with {' or '.join(RSA_ALGORITHMS)}, not {rsa_algorithm}")
        algorithm = rsa_algorithm
    elif isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        algorithm = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    else:
        raise InvalidArgument(f"{private_key} is not an RSA, EC or Ed25519 key")
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_s,
              "jti": uuid.uuid4().hex, "scope": " ".join(sorted(set(scopes)))}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


class TokenVerifier:
    def __init__(self, audience: str, issuers: Mapping[str, IssuerConfig | Iterable[Path | dict[str, Any]]],
                 leeway_s: int = LEEWAY_S) -> None:
        """`issuers`: issuer -> its config (gateway.auth.issuers), or the JWKS files
        (or JWKS dicts) of its current keys. An issuer whose URL cannot be fetched
        now is retried by `refresh_due` (its tokens are refused until then)."""
        self._audience = audience
        self._leeway = leeway_s
        self._lock = threading.Lock()
        self._issuers: dict[str, IssuerConfig] = {}
        self._keys: dict[str, dict[str, SigningKey]] = {}
        self._fetched: dict[str, float] = {}
        self.reload(issuers)

    def reload(self, issuers: Mapping[str, IssuerConfig | Iterable[Path | dict[str, Any]]]) -> None:
        """Replaces the trusted issuers and their keys (SIGHUP re-reads the config):
        all of them or, when a file or a key is bad, none (InvalidArgument)."""
        configs: dict[str, IssuerConfig] = {}
        keys: dict[str, dict[str, SigningKey]] = {}
        for name, source in issuers.items():
            if isinstance(source, IssuerConfig):
                configs[name] = source
                keys[name] = self._initial_keys(source)
            else:
                configs[name] = IssuerConfig(name)
                keys[name] = load_keys(configs[name], [json.loads(s.read_text()) if isinstance(s, Path) else s
                                                       for s in source])
        with self._lock:
            self._issuers, self._keys = configs, keys
            self._fetched = {name: time.monotonic() for name, c in configs.items() if c.remote and keys[name]}

    def _initial_keys(self, issuer: IssuerConfig) -> dict[str, SigningKey]:
        try:
            return load_keys(issuer)
        except Unavailable as err:  # the identity provider is down: start anyway, retry on schedule
            log.warning("issuer=%s: %s (its tokens are refused until its keys are fetched)", issuer.name, err.message)
            return {}

    def refresh_due(self) -> None:
        """Fetches again the keys of every remote issuer whose refresh_s has passed (or
        that has none yet); a failure keeps its current keys and is logged. Blocking:
        run it off the event loop."""
        now = time.monotonic()
        with self._lock:
            due = [c for c in self._issuers.values()
                   if c.remote and (not self._keys.get(c.name) or now - self._fetched.get(c.name, 0.0) >= c.refresh_s)]
        for issuer in due:
            try:
                keys = load_keys(issuer)
            except (Unavailable, InvalidArgument) as err:
                log.warning("issuer=%s: refreshing its keys failed: %s", issuer.name, err.message)
                continue
            with self._lock:
                if self._issuers.get(issuer.name) is issuer:
                    self._keys[issuer.name], self._fetched[issuer.name] = keys, time.monotonic()
            log.info("issuer=%s: keys refreshed kids=%s", issuer.name, ",".join(sorted(keys)))

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are refused; use {', '.join(ALGORITHMS)}")
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise Unauthenticated(f"issuer {issuer!r} is not trusted here")
        with self._lock:
            keys = self._keys.get(issuer)
            config = self._issuers.get(issuer)
        if keys is None or config is None:
            raise Unauthenticated(f"issuer {issuer!r} is not trusted here")
        key = keys.get(header.get("kid", ""))
        if key is None:
            raise Unauthenticated(f"issuer {issuer!r} has no key {header.get('kid')!r}")
        if algorithm not in key.algorithms:
            raise Unauthenticated("the token's algorithm does not match its key")
        audience = config.audience or self._audience
        try:
            verified = jwt.decode(
                token, key.jwk.key, algorithms=[algorithm], audience=audience, issuer=issuer,
                leeway=self._leeway, options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the token is not for this gateway ({audience})") from None
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"the token is invalid: {type(err).__name__}") from None
        if verified["iat"] > time.time() + self._leeway:
            raise Unauthenticated("the token was issued in the future")
        return Identity(issuer, str(verified["sub"]), _scopes(verified.get(config.scope_claim, "")))


def _scopes(claim: Any) -> frozenset[str]:
    """A space-separated string (OAuth's `scope`, Azure's `scp`) or a list (Okta's `scp`)."""
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(s for s in claim if isinstance(s, str))
    return frozenset()
