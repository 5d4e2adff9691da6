"""`mpcgate doctor`: a gateway's config checked end to end before any job, one
result per check, each naming what is broken (a file, a peer, an address).

The checks a multi-host federation fails first: the config itself; the party's
certificate (readable, this party's, signed by the federation CA, its key, its
validity and days left); the data directory and the database's folder; and for
every peer and the dealer: the name resolves, the address accepts TCP, and a
mutual-TLS handshake there meets the expected party (not another one) and is
accepted with this party's certificate; a peer gateway must also list this party
as its peer and keep a clock within the JWT leeway of this one's (its Hello).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import config as gateway_config
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import coordination_pb2_grpc
from gateway.auth.diagnose import HandshakeFailed, handshake
from gateway.auth.jwt import LEEWAY_S
from gateway.contract.toml import read_toml
from gateway.dealer import config as dealer_config
from gateway.transport import rpc
from gateway.transport.pki import PartyFiles, party_of_certificate
from gateway.transport.tls import TlsIdentity
from mpc.errors import MpcgateError

EXPIRY_WARNING_DAYS = 30
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def run(path: Path) -> list[Check]:
    """Every check of the gateway (or dealer) config at `path`; stops after the
    config itself when it cannot be read."""
    try:
        if "dealer_id" in read_toml(path):
            return _dealer(path)
        cfg = gateway_config.load(path)
    except MpcgateError as err:
        return [Check("config", False, err.message)]
    checks = [Check("config", True, f"{path} (party {cfg.party_id})")]
    checks += list(_certificate(cfg.tls, cfg.party_id))
    checks += [_folder("data directory", cfg.data_dir, os.R_OK | os.X_OK),
               _folder("database folder", cfg.database.parent, os.W_OK | os.X_OK)]
    remotes = dict(cfg.peers)
    if cfg.dealer is not None:
        remotes[cfg.dealer[0]] = cfg.dealer[1]
    checks += [_reach(cfg.tls, cfg.party_id, party, address, gateway=party in cfg.peers)
               for party, address in sorted(remotes.items())]
    return checks


def _dealer(path: Path) -> list[Check]:
    """A dealer's config: its certificate, and a mutual-TLS handshake with every
    party's gateway it serves (gateways answer a dealer's TLS, not its Hello)."""
    try:
        cfg = dealer_config.load(path)
    except MpcgateError as err:
        return [Check("config", False, err.message)]
    checks = [Check("config", True, f"{path} (dealer {cfg.dealer_id})")]
    checks += list(_certificate(cfg.tls, cfg.dealer_id))
    checks += [_reach(cfg.tls, cfg.dealer_id, party, address, gateway=False, label="party")
               for party, address in sorted(cfg.parties.items())]
    return checks


def _certificate(files: PartyFiles, me: str) -> Iterator[Check]:
    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        pem = files.cert.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        yield Check("certificate", False, f"cannot read the TLS files ({files.ca}, {files.cert}, {files.key}): {err}")
        return
    name = party_of_certificate(pem)
    if name != me:
        yield Check("certificate", False, f"{files.cert} names party {name!r}, the config says {me!r}")
        return
    try:
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,  # type: ignore[union-attr, call-arg]
                               ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
    except (InvalidSignature, TypeError, AttributeError):
        yield Check("certificate", False, f"{files.cert} is not signed by the federation CA in {files.ca}")
        return
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        yield Check("certificate", False, f"{files.key} is not the key of {files.cert}")
        return
    for label, c, where in (("certificate", cert, files.cert), ("CA certificate", ca, files.ca)):
        yield _validity(label, c, where)


def _validity(label: str, cert: x509.Certificate, where: Path) -> Check:
    now = dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        return Check(label, False, f"{where} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    left = cert.not_valid_after_utc - now
    if left.total_seconds() <= 0:
        return Check(label, False, f"{where} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    warning = " (renew soon)" if left.days < EXPIRY_WARNING_DAYS else ""
    return Check(label, True, f"{where} valid until {cert.not_valid_after_utc:%Y-%m-%d}, {left.days} days{warning}")


def _folder(label: str, folder: Path, access: int) -> Check:
    if not folder.is_dir():
        return Check(label, False, f"{folder} does not exist or is not a folder")
    if not os.access(folder, access):
        return Check(label, False, f"{folder} is not {'writable' if access & os.W_OK else 'readable'} by this user")
    return Check(label, True, str(folder))


def _reach(files: PartyFiles, me: str, party: str, address: str, gateway: bool, label: str = "peer") -> Check:
    """Resolve, connect, and shake hands with `party` at `address` as `me`; then,
    for a peer gateway, its Hello."""
    label = f"{label} {party}"
    host, _, port = address.rpartition(":")
    try:
        resolved = str(socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)[0][4][0])
    except (socket.gaierror, ValueError) as err:
        return Check(label, False, f"cannot resolve {address}: {err}")
    try:
        met = handshake(f"{resolved}:{port}" if ":" not in resolved else f"[{resolved}]:{port}",
                        TlsIdentity.load(files), TIMEOUT_S)
    except MpcgateError as err:
        return Check(label, False, f"not tried: this party's TLS files do not load ({err.message})")
    except HandshakeFailed as err:
        return Check(label, False, {
            "local": f"not tried: this party's TLS files do not load ({err.detail})",
            "connect": f"cannot connect to {address} ({resolved}): {err.detail}",
            "refused": f"{address} refuses this party's certificate ({err.detail})",
        }.get(err.stage, f"TLS with {address} failed (not a federation gateway): {err.detail}"))
    if met != party:
        return Check(label, False, f"{address} is party {met!r}, not {party!r}")
    reached = f"{address} ({resolved}) is {party}, mutual TLS accepted"
    if not gateway:
        return Check(label, True, reached)
    return _hello(files, me, party, address, label, reached)


def _hello(files: PartyFiles, me: str, party: str, address: str, label: str, reached: str) -> Check:
    identity = TlsIdentity.load(files)
    with rpc.secure_channel(identity, address, party) as channel:
        stub = coordination_pb2_grpc.CoordinationServiceStub(channel)
        asked = time.time()
        try:
            answer = stub.Hello(cpb.HelloRequest(), timeout=TIMEOUT_S)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                return Check(label, False, f"{reached}, but it does not list {me} as a peer")
            return Check(label, False, f"{reached}, but its Hello failed: {err.code().name}: {err.details()}")
    skew = answer.time.ToDatetime(dt.UTC).timestamp() - (asked + time.time()) / 2
    if abs(skew) > LEEWAY_S:
        return Check(label, False, f"{reached}, but its clock is {skew:+.0f} s from this one's (tokens allow "
                                   f"{LEEWAY_S} s)")
    return Check(label, True, f"{reached}, lists {me}, clock {skew * 1e3:+.0f} ms")
