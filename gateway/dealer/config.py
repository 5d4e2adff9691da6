"""The dealer's configuration: one TOML file.

    dealer_id = "dealer"
    listen = "127.0.0.1:7500"
    failure_timeout = 20.0
    warm_workers = 1           # session workers started ahead (torch, CrypTen imported); 0: none

    [tls]
    ca = "pki/ca.crt"
    cert = "pki/dealer.crt"
    key = "pki/dealer.key"

    [parties]                  # who may use the dealer, and where their gateways are
    bank-a = "127.0.0.1:7443"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.contract.toml import read_toml, refuse_unknown, whole_number
from gateway.transport.pki import PartyFiles, validate_party_id
from mpc.errors import InvalidArgument, MpcgateError


@dataclass(frozen=True)
class DealerConfig:
    dealer_id: str
    listen: str
    tls: PartyFiles
    parties: dict[str, str]
    failure_timeout: float = 20.0
    warm_workers: int = 1


def load(path: Path) -> DealerConfig:
    raw = read_toml(path)
    refuse_unknown(raw, {"": {"dealer_id", "listen", "failure_timeout", "warm_workers", "tls", "parties"}, "tls": {"ca", "cert", "key"}})
    base = path.parent

    def field(name: str, kind: type, table: dict[str, Any] = raw, prefix: str = "") -> Any:
        if not isinstance(table.get(name), kind):
            raise InvalidArgument(f"config field '{prefix}{name}' must be a {kind.__name__}")
        return table[name]

    try:
        dealer_id = validate_party_id(field("dealer_id", str))
    except MpcgateError as err:
        raise InvalidArgument(f"config field 'dealer_id': {err.message}") from None
    tls = field("tls", dict)
    files = PartyFiles(*((base / field(k, str, tls, "tls.")).resolve() for k in ("ca", "cert", "key")))
    parties = field("parties", dict)
    if not parties or not all(isinstance(a, str) for a in parties.values()):
        raise InvalidArgument("config field 'parties' must map party ids to gateway addresses")
    timeout = raw.get("failure_timeout", 20.0)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidArgument("config field 'failure_timeout' must be a positive number")
    warm = whole_number("warm_workers", raw.get("warm_workers", 1), minimum=0)
    return DealerConfig(dealer_id, field("listen", str), files, dict(parties), float(timeout), warm)
