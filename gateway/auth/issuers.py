"""Trusted token issuers and their signing keys: JWKS files beside the config, or
an enterprise identity provider's JWKS URL (named, or found by OIDC discovery at
`<issuer>/.well-known/openid-configuration`), fetched at start-up and refreshed
on a schedule. A config entry is either a list of JWKS files or a table:

    [issuers]
    bank-a-idp = ["issuer/k1.jwks.json"]

    [issuers."https://login.bank-a.example/tenant"]
    discovery = true          # or jwks_url = "https://.../keys"
    refresh_s = 3600          # how often its keys are fetched again
    scope_claim = "scp"       # where its tokens carry scopes ("scope" by default)
    audience = "api://mpcgate-bank-a"   # the aud its tokens name (default: the party id)
    ca = "pki/idp-ca.pem"     # trust for its HTTPS (default: the system's)
    console_client_id = "mpcgate-console"   # the console's sign-in through it (OIDC code + PKCE)
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from mpc.errors import InvalidArgument, Unavailable

ALGORITHMS = ("EdDSA", "ES256", "RS256", "PS256")
RSA_ALGORITHMS = ("RS256", "PS256")
MIN_RSA_BITS = 2048
FETCH_TIMEOUT_S = 10.0
MAX_DOCUMENT_BYTES = 1 << 20
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer; `name` is the `iss` its tokens carry."""

    name: str
    jwks_files: tuple[Path, ...] = ()
    jwks_url: str = ""
    discovery: bool = False
    refresh_s: float = 3600.0
    scope_claim: str = "scope"
    audience: str = ""
    ca: Path | None = None
    console_client_id: str = ""
    """The web console's OAuth client at this provider: its login page signs people
    in (authorization code with PKCE; gateway/console/oidc.py). Needs discovery."""

    @property
    def remote(self) -> bool:
        return bool(self.jwks_url or self.discovery)


def parse_issuers(raw: Any, path_of: Callable[[str], Path]) -> dict[str, IssuerConfig]:
    """The `[issuers]` table of a gateway config; InvalidArgument names a bad entry."""
    if not isinstance(raw, dict):
        raise InvalidArgument("config field 'issuers' must map issuer names to JWKS files or tables")
    return {name: _parse_one(name, value, path_of) for name, value in raw.items()}


def _parse_one(name: str, value: Any, path_of: Callable[[str], Path]) -> IssuerConfig:
    where = f"config field 'issuers.{name}'"
    if isinstance(value, list):
        value = {"jwks_files": value}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be a list of JWKS files or a table")
    unknown = sorted(set(value) - {"jwks_files", "jwks_url", "discovery", "refresh_s", "scope_claim", "audience", "ca",
                                   "console_client_id"})
    if unknown:
        raise InvalidArgument(f"{where}: unknown field {unknown[0]!r}")
    files = value.get("jwks_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise InvalidArgument(f"{where}: jwks_files must be a list of paths")
    url, discovery = value.get("jwks_url", ""), value.get("discovery", False)
    if not isinstance(url, str) or (url and not url.startswith("https://")):
        raise InvalidArgument(f"{where}: jwks_url must be an https:// URL")
    if not isinstance(discovery, bool) or (discovery and not name.startswith("https://")):
        raise InvalidArgument(f"{where}: discovery needs the issuer to be its https:// URL")
    if not files and not url and not discovery:
        raise InvalidArgument(f"{where} needs jwks_files, a jwks_url or discovery = true")
    refresh = value.get("refresh_s", 3600.0)
    if not isinstance(refresh, (int, float)) or isinstance(refresh, bool) or refresh <= 0:
        raise InvalidArgument(f"{where}: refresh_s must be a positive number")
    claim, audience, ca = value.get("scope_claim", "scope"), value.get("audience", ""), value.get("ca")
    if claim not in ("scope", "scp"):
        raise InvalidArgument(f"{where}: scope_claim must be 'scope' or 'scp'")
    if not isinstance(audience, str) or (ca is not None and not isinstance(ca, str)):
        raise InvalidArgument(f"{where}: audience and ca must be strings")
    client_id = value.get("console_client_id", "")
    if not isinstance(client_id, str) or (client_id and not discovery):
        raise InvalidArgument(f"{where}: console_client_id must be a string, with discovery = true")
    paths = tuple(path_of(f) for f in files)
    for path in paths + ((path_of(ca),) if ca else ()):
        if not path.is_file():
            raise InvalidArgument(f"{where}: no file {path}")
    return IssuerConfig(name, paths, url, discovery, float(refresh), claim, audience, path_of(ca) if ca else None,
                        client_id)


@dataclass(frozen=True)
class SigningKey:
    """One of an issuer's public keys and the algorithms a token may use with it:
    the one its JWK names, or either RSA algorithm for an RSA JWK that names none."""

    jwk: jwt.PyJWK
    algorithms: frozenset[str]


def load_keys(issuer: IssuerConfig, documents: list[dict[str, Any]] | None = None) -> dict[str, SigningKey]:
    """kid -> key of everything the issuer publishes (its files, then its URL);
    InvalidArgument for a key this gateway refuses, Unavailable if the URL fails."""
    sources = [json.loads(f.read_text()) for f in issuer.jwks_files] if documents is None else list(documents)
    if documents is None and issuer.remote:
        sources.append(fetch_jwks(issuer))
    keys: dict[str, SigningKey] = {}
    for data in sources:
        try:
            entries = jwt.PyJWKSet.from_dict(data).keys
        except jwt.PyJWTError as err:
            raise InvalidArgument(f"issuer {issuer.name!r} publishes an unreadable JWKS: {err}") from None
        named = {k.get("kid"): "alg" in k for k in data.get("keys", []) if isinstance(k, dict)}
        for entry in entries:
            if not entry.key_id:
                raise InvalidArgument(f"a key of issuer {issuer.name!r} has no kid")
            if entry.algorithm_name not in ALGORITHMS:
                raise InvalidArgument(f"key {entry.key_id!r} of issuer {issuer.name!r} is {entry.algorithm_name}; "
                                      f"accepted: {', '.join(ALGORITHMS)}")
            if isinstance(entry.key, rsa.RSAPublicKey) and entry.key.key_size < MIN_RSA_BITS:
                raise InvalidArgument(f"key {entry.key_id!r} of issuer {issuer.name!r} has {entry.key.key_size} bits; "
                                      f"RSA keys need {MIN_RSA_BITS}")
            either_rsa = entry.algorithm_name in RSA_ALGORITHMS and not named.get(entry.key_id, True)
            keys[entry.key_id] = SigningKey(entry, frozenset(RSA_ALGORITHMS if either_rsa else (entry.algorithm_name,)))
    return keys


def fetch_jwks(issuer: IssuerConfig) -> dict[str, Any]:
    """The issuer's JWKS over HTTPS (after its OIDC discovery document, if asked)."""
    return _get_json(issuer.jwks_url or discovered(issuer, "jwks_uri"), issuer)


def discovered(issuer: IssuerConfig, endpoint: str) -> str:
    """An https endpoint (jwks_uri, authorization_endpoint, token_endpoint) from
    the issuer's OIDC discovery document."""
    document = _get_json(issuer.name.rstrip("/") + DISCOVERY_PATH, issuer)
    if document.get("issuer") != issuer.name:
        raise InvalidArgument(f"the discovery document of {issuer.name!r} names issuer {document.get('issuer')!r}")
    url = document.get(endpoint, "")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise InvalidArgument(f"the discovery document of {issuer.name!r} has no https {endpoint}")
    return url


def post_form(url: str, fields: dict[str, str], issuer: IssuerConfig) -> dict[str, Any]:
    """POSTs a form to one of the issuer's endpoints (its token endpoint); its JSON answer."""
    body = urllib.parse.urlencode(fields).encode()
    return _get_json(url, issuer, body)


def _get_json(url: str, issuer: IssuerConfig, form: bytes | None = None) -> dict[str, Any]:
    """GET (or with `form`, POST) over HTTPS trusting the issuer's CA; the JSON object answered."""
    context = ssl.create_default_context(cafile=str(issuer.ca) if issuer.ca else None)
    headers = {"Accept": "application/json"}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=form, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S, context=context) as response:  # noqa: S310 (https only)
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError) as err:
        raise Unavailable(f"cannot fetch {url} for issuer {issuer.name!r}: {getattr(err, 'reason', err)}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise InvalidArgument(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise InvalidArgument(f"{url} is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{url} is not a JSON object")
    return document
