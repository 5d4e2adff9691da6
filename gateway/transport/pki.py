"""The federation's PKI: one CA, and per-party certificates that name the party.

A party certificate carries the party id three ways: as subject CN, as a DNS SAN
(so a client dialing a peer verifies the server *is* that party via the TLS host
check, whatever its address) and as the URI SAN `urn:mpcgate:party:<id>`, which is
what servers read to identify the calling party. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc.errors import AlreadyExists, InvalidArgument, NotFound

PARTY_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PARTY_URI_PREFIX = "urn:mpcgate:party:"
CLIENT_URI_PREFIX = "urn:mpcgate:client:"
"""Operators and services get client-only certificates: the public port requires
mutual TLS from everyone, but only party certificates may join MPC sessions."""
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_CERT, CA_KEY = "ca.crt", "ca.key"


@dataclass(frozen=True)
class PartyFiles:
    """Where a party's TLS material lies."""

    ca: Path
    cert: Path
    key: Path


def validate_party_id(party_id: str) -> str:
    if not PARTY_ID.match(party_id):
        raise InvalidArgument(
            f"party id {party_id!r} must be 1-63 lower-case letters, digits or '-' (a DNS label)"
        )
    return party_id


def init_ca(directory: Path, name: str = "mpcgate federation CA", days: int = 3650, force: bool = False) -> Path:
    """Creates the federation CA in `directory` (ca.crt, and ca.key readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not force and (cert_path.exists() or key_path.exists()):
        raise AlreadyExists(f"a CA already exists in {directory}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mpcgate")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def issue(
    ca_dir: Path,
    party_id: str,
    out_dir: Path | None = None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    client: bool = False,
) -> PartyFiles:
    """Issues `<party>.crt` and `<party>.key` signed by the CA in `ca_dir`; with
    `client`, a client-only certificate for an operator or service named `party_id`."""
    validate_party_id(party_id)
    ca_cert, ca_key = load_ca(ca_dir)
    out_dir = out_dir or ca_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(ca_cert, ca_key, party_id, key.public_key(), hosts, days, client)
    key_path, cert_path = out_dir / f"{party_id}.key", out_dir / f"{party_id}.crt"
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return PartyFiles(ca=ca_dir / CA_CERT, cert=cert_path, key=key_path)


def request(party_id: str, out_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> tuple[Path, Path]:
    """A partner's side: a new key (`<party>.key`, kept here) and a certificate
    signing request (`<party>.csr`, sent to the federation's CA)."""
    validate_party_id(party_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party_id)]))
           .add_extension(x509.SubjectAlternativeName(_host_names(party_id, hosts)), critical=False)
           .sign(key, hashes.SHA256()))
    key_path, csr_path = out_dir / f"{party_id}.key", out_dir / f"{party_id}.csr"
    _write_private(key_path, key)
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path


def sign(ca_dir: Path, csr_pem: bytes, party_id: str, hosts: Sequence[str] | None = None, days: int = 365,
         client: bool = False) -> bytes:
    """The CA's side: a certificate for the key in a signing request. The CA names
    the party (`party_id` must be the request's common name, so the wrong request is
    not signed by mistake); the hosts are `hosts`, or else the request's DNS and IP
    names. The requester's key never leaves it."""
    validate_party_id(party_id)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise InvalidArgument("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise InvalidArgument("the request's signature does not verify (altered, or not made with its key)")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != party_id:
        raise InvalidArgument(f"the request names {names[0].value if names else None!r}, not {party_id!r}")
    public = csr.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in ("secp256r1", "secp384r1"):
            raise InvalidArgument(f"the request's key is on {public.curve.name}; use P-256 or P-384")
    elif isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise InvalidArgument(f"the request's RSA key has {public.key_size} bits; it needs 2048")
    else:
        raise InvalidArgument("the request's key must be ECDSA (P-256, P-384) or RSA")
    if hosts is None:
        try:
            requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            requested = x509.SubjectAlternativeName([])
        hosts = [*requested.get_values_for_type(x509.DNSName),
                 *(str(ip) for ip in requested.get_values_for_type(x509.IPAddress))] or list(DEFAULT_HOSTS)
    ca_cert, ca_key = load_ca(ca_dir)
    return _certificate(ca_cert, ca_key, party_id, public, hosts, days, client).public_bytes(serialization.Encoding.PEM)


def _host_names(party_id: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host != party_id:
                names.append(x509.DNSName(host))
    return names


def _certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, party_id: str, public: Any,
                 hosts: Sequence[str], days: int, client: bool) -> x509.Certificate:
    if client:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(CLIENT_URI_PREFIX + party_id)]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        names = [x509.UniformResourceIdentifier(PARTY_URI_PREFIX + party_id), x509.DNSName(party_id),
                 *_host_names(party_id, hosts)]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party_id), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mpcgate")]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if not cert_path.exists() or not key_path.exists():
        raise NotFound(f"no CA in {ca_dir}: run `mpcgate pki init` first")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument(f"{key_path} is not an EC private key")
    return x509.load_pem_x509_certificate(cert_path.read_bytes()), key


def party_of_certificate(pem: bytes) -> str | None:
    """The party id a certificate names in its `urn:mpcgate:party:` URI SAN, if any."""
    return _named(pem, PARTY_URI_PREFIX)


def client_of_certificate(pem: bytes) -> str | None:
    """The operator or service a client-only certificate names, if any."""
    return _named(pem, CLIENT_URI_PREFIX)


def _named(pem: bytes, prefix: str) -> str | None:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(prefix) and PARTY_ID.match(uri[len(prefix):]):
            return uri[len(prefix):]
    return None


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
