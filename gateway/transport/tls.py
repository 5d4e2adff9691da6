"""Mutual TLS between institutions: a party's credentials, and who the peer is.

The calling party is read from the verified client certificate in the TLS context,
never from a request field. A server accepts a client only if its certificate
chains to the federation CA (enforced by TLS itself) and names a party it lists as
a peer (enforced by `authenticated_peer`).
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gateway.transport.pki import PartyFiles, client_of_certificate, party_of_certificate
from mpc.errors import InvalidArgument, PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class TlsIdentity:
    """A party's (or an operator's) TLS material, held in memory; the key never
    goes to a log. `name` is the party id, or the client name of a client-only
    certificate."""

    name: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load(cls, files: PartyFiles) -> TlsIdentity:
        try:
            ca, cert, key = files.ca.read_bytes(), files.cert.read_bytes(), files.key.read_bytes()
        except OSError as err:
            raise InvalidArgument(f"cannot read TLS material: {err.strerror}: {err.filename}") from None
        name = party_of_certificate(cert) or client_of_certificate(cert)
        if name is None:
            raise InvalidArgument(f"{files.cert} is not an mpcgate certificate (no urn:mpcgate: SAN)")
        return cls(name=name, ca_pem=ca, cert_pem=cert, key_pem=key)

    @classmethod
    def from_dir(cls, directory: Path | str, name: str) -> TlsIdentity:
        """Material laid out by `mpcgate pki`: ca.crt, <name>.crt, <name>.key."""
        directory = Path(directory)
        return cls.load(PartyFiles(directory / "ca.crt", directory / f"{name}.crt", directory / f"{name}.key"))

    def load_into(self, context: ssl.SSLContext) -> None:
        """This certificate and key into an ssl context (Python's ssl reads them from
        files only: they live, owner-only, in a folder removed when loaded)."""
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert.write_bytes(self.cert_pem)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(self.key_pem)
            context.load_cert_chain(cert, key)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem
        )


@functools.lru_cache(maxsize=256)
def _party_of(pem: bytes) -> str | None:
    return party_of_certificate(pem)


def peer_party(context: Any) -> str | None:
    """The party named by the verified client certificate of this call, if any."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        return None
    return _party_of(pems[0])


def authenticated_peer(context: Any, allowed: Collection[str]) -> str:
    """The calling party, which must be one of `allowed`; raises otherwise."""
    party = peer_party(context)
    if party is None:
        raise Unauthenticated("the client presented no mpcgate party certificate")
    if party not in allowed:
        raise PermissionDenied(f"party {party!r} is not a peer of this gateway")
    return party
