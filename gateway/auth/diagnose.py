"""Why a mutual-TLS connection failed, in words a partner can act on.

gRPC reports a refused client certificate as a timeout and a gateway of another
party as "Hostname Verification Check failed". When a channel cannot connect,
the client replays the handshake with Python's ssl module and says who answered
at the address and which side refused whom.
"""

from __future__ import annotations

import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.transport.pki import client_of_certificate, party_of_certificate
from gateway.transport.tls import TlsIdentity

PROBE_TIMEOUT_S = 3.0
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class HandshakeFailed(Exception):
    """Where a mutual-TLS handshake stopped: "connect" (no TCP connection), "local"
    (this side's TLS files do not load), "server" (the server's certificate is not
    the federation's), "tls" (another TLS failure) or "refused" (the server refused
    this side's certificate)."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def handshake(address: str, identity: TlsIdentity, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Shakes hands with the server at `address` as `identity` and returns who it is
    (the party or client its certificate names); raises HandshakeFailed."""
    host, _, port = address.rpartition(":")
    try:
        context = _client_context(identity)
    except (ssl.SSLError, OSError) as err:
        raise HandshakeFailed("local", _reason(err)) from None
    try:
        raw = socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout)
    except (OSError, ValueError) as err:
        raise HandshakeFailed("connect", getattr(err, "strerror", None) or str(err)) from None
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=None)
        except ssl.SSLCertVerificationError as err:
            raise HandshakeFailed("server", err.verify_message or _reason(err)) from None
        except (ssl.SSLError, OSError) as err:
            raise HandshakeFailed("tls", _reason(err)) from None
        with tls:
            der = tls.getpeercert(binary_form=True)
            refused = _client_refused(tls, timeout)
    if refused:
        raise HandshakeFailed("refused", refused)
    return _name(der) if der else None


def explain_connection_failure(address: str, identity: TlsIdentity, expected_party: str) -> str | None:
    """One sentence on why `identity` cannot talk to the gateway of `expected_party`
    at `address`, or None when the handshake works (the failure lies elsewhere)."""
    try:
        who = handshake(address, identity)
    except HandshakeFailed as err:
        return {
            "connect": f"nothing accepts connections at {address} ({err.detail})",
            "local": f"your TLS files for {identity.name!r} do not load ({err.detail})",
            "server": (f"the server at {address} presented a certificate your CA does not vouch for "
                       f"({err.detail}): it is not a gateway of your federation"),
            "tls": f"the TLS handshake with {address} failed: {err.detail}",
            "refused": (f"the gateway {expected_party!r} at {address} refused your client certificate "
                        f"{identity.name!r} ({err.detail}): is it issued by the federation's CA, unexpired "
                        "and not revoked?"),
        }[err.stage]
    if who != expected_party:
        return (f"the gateway at {address} is {who!r}, not {expected_party!r}: "
                "check the address and the party id (--gateway, --party)")
    return None


def _client_context(identity: TlsIdentity) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # a gateway is named by its party URI, checked above
    context.load_verify_locations(cadata=identity.ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    identity.load_into(context)
    return context


def _client_refused(tls: ssl.SSLSocket, timeout: float) -> str | None:
    """With TLS 1.3 a server refuses a client certificate after the client's side of
    the handshake is done: the refusal arrives on the first read, as an alert or
    (gRPC's servers) as the connection closed before the server's HTTP/2 settings."""
    try:
        tls.sendall(_H2_PREFACE)
        tls.settimeout(timeout)
        first = tls.recv(1)
    except ssl.SSLError as err:
        return _reason(err)
    except OSError:
        return None  # a timeout or reset without an alert says nothing about the certificate
    return None if first else "it closed the connection right after the handshake"


def _name(der: bytes) -> str | None:
    pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
    return party_of_certificate(pem) or client_of_certificate(pem)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None)
    return str(reason).replace("_", " ").lower() if reason else str(err)
