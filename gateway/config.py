"""A gateway's configuration: one TOML file per institution.

    party_id = "bank-a"
    listen = "127.0.0.1:7443"
    data_dir = "data"                 # datasets must lie inside it
    database = "gateway.db"           # SQLite: registry, jobs, audit
    max_concurrent_jobs = 2
    allow_insecure_providers = false  # true lets jobs use TFP (tests, demos)
    failure_timeout = 20.0            # seconds to declare a silent peer dead
    metrics_listen = "127.0.0.1:9464" # optional: Prometheus metrics over HTTP
    console_listen = "127.0.0.1:8443" # optional: the web console (HTTPS, this gateway's certificate)
    default_deadline_s = 3600.0       # a job's wall-time limit unless it names one
    drain_grace_s = 60.0              # on SIGTERM, how long running jobs may finish
    submit_wait_s = 1.0               # SubmitJob answers once the parties reviewed, or after this
    max_columns = 200                 # most columns one job may read
    max_bins = 1000                   # most histogram bins one job may ask for
    warm_workers = 1                  # workers started ahead (torch, CrypTen imported); 0: none

    [tls]
    ca = "pki/ca.crt"
    cert = "pki/bank-a.crt"
    key = "pki/bank-a.key"

    [peers]
    bank-b = "127.0.0.1:7444"

    [notify]                          # optional: a webhook for approvals awaited and jobs ended
    url = "https://dpo.bank-a.example/mpcgate"
    secret_file = "notify.secret"     # HMAC-SHA256 key the receiver checks signatures with

    [dealer]                          # optional: the federation's TTP dealer
    id = "dealer"
    address = "127.0.0.1:7500"

    [issuers]                         # trusted token issuers -> their JWKS files
    bank-a-idp = ["issuer/k1.jwks.json", "issuer/k2.jwks.json"]
    [issuers."https://login.bank-a.example"]   # or an identity provider (gateway/auth/issuers.py)
    discovery = true
    scope_claim = "scp"

    [quotas]                          # optional: estimated work units (gateway/jobs/cost.py)
    job_cost = 1e10                   # most one job may cost on this party's rows
    operator_cost_per_day = 1e11      # most one operator may submit here in 24 hours
    over = "refuse"                   # or "manual": a costlier job waits for approval

Relative paths are relative to the config file. A bad field, or an unknown one
(a misspelling), fails start-up with a message that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.auth.issuers import IssuerConfig, parse_issuers
from gateway.contract.toml import read_toml, refuse_unknown, whole_number
from gateway.jobs.cost import Quotas
from gateway.jobs.cost import parse as parse_quotas
from gateway.notify import NotifyConfig
from gateway.transport.pki import PartyFiles, validate_party_id
from mpc.errors import InvalidArgument, MpcgateError


@dataclass(frozen=True)
class GatewayConfig:
    party_id: str
    listen: str
    tls: PartyFiles
    peers: dict[str, str]
    data_dir: Path
    database: Path
    max_concurrent_jobs: int = 2
    allow_insecure_providers: bool = False
    failure_timeout: float = 20.0
    default_deadline_s: float = 3600.0
    issuers: dict[str, IssuerConfig] = field(default_factory=dict)
    metrics_listen: str = ""
    console_listen: str = ""
    dealer: tuple[str, str] | None = None  # (party id, address)
    drain_grace_s: float = 60.0
    submit_wait_s: float = 1.0
    max_columns: int = 200
    max_bins: int = 1000
    warm_workers: int = 1
    quotas: Quotas = field(default_factory=Quotas)
    notify: NotifyConfig | None = None  # webhook for approvals awaited and jobs ended (gateway.notify)
    source: Path | None = None  # the file it was read from (SIGHUP re-reads its issuers)


KNOWN = {
    "": {"party_id", "listen", "data_dir", "database", "max_concurrent_jobs", "allow_insecure_providers",
         "failure_timeout", "default_deadline_s", "drain_grace_s", "submit_wait_s", "max_columns", "max_bins", "metrics_listen", "console_listen",
         "warm_workers",
         "tls", "peers", "dealer", "issuers", "quotas", "notify"},
    "tls": {"ca", "cert", "key"},
    "dealer": {"id", "address"},
}


def load(path: Path) -> GatewayConfig:
    return replace(parse(read_toml(path), path.parent), source=path)


def parse(raw: dict[str, Any], base: Path) -> GatewayConfig:
    refuse_unknown(raw, KNOWN)
    def need(table: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
        name = f"{where}{key}"
        if key not in table:
            raise InvalidArgument(f"config field {name!r} is missing")
        value = table[key]
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgument(f"config field {name!r} must be a {kind.__name__}")
        return value

    def path_of(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (base / p).resolve()

    try:
        party = validate_party_id(need(raw, "party_id", str))
    except MpcgateError as err:
        raise InvalidArgument(f"config field 'party_id': {err.message}") from None
    listen = need(raw, "listen", str)
    if ":" not in listen:
        raise InvalidArgument("config field 'listen' must be host:port")
    tls = need(raw, "tls", dict)
    files = PartyFiles(*(path_of(need(tls, k, str, "tls.")) for k in ("ca", "cert", "key")))
    for key, p in zip(("ca", "cert", "key"), (files.ca, files.cert, files.key)):
        if not p.is_file():
            raise InvalidArgument(f"config field 'tls.{key}': no file {p}")
    peers = raw.get("peers", {})
    if not isinstance(peers, dict) or not all(isinstance(v, str) for v in peers.values()):
        raise InvalidArgument("config field 'peers' must map party ids to host:port strings")
    for peer in peers:
        try:
            validate_party_id(peer)
        except MpcgateError as err:
            raise InvalidArgument(f"config field 'peers.{peer}': {err.message}") from None
    if party in peers:
        raise InvalidArgument(f"config field 'peers' must not list this party ({party!r})")
    data_dir = path_of(need(raw, "data_dir", str))
    if not data_dir.is_dir():
        raise InvalidArgument(f"config field 'data_dir': no directory {data_dir}")
    limits = {k: raw.get(k, d) for k, d in (("max_concurrent_jobs", 2), ("failure_timeout", 20.0), ("default_deadline_s", 3600.0),
                                             ("drain_grace_s", 60.0), ("submit_wait_s", 1.0), ("max_columns", 200),
                                             ("max_bins", 1000),
                                             ("warm_workers", 1))}
    for key in ("max_concurrent_jobs", "max_columns", "max_bins", "warm_workers"):
        whole_number(key, limits[key], minimum=0 if key == "warm_workers" else 1)
    for key in ("failure_timeout", "default_deadline_s", "drain_grace_s", "submit_wait_s"):
        if not isinstance(limits[key], (int, float)) or isinstance(limits[key], bool) or limits[key] < 0 \
                or (limits[key] == 0 and key not in ("drain_grace_s", "submit_wait_s")):
            raise InvalidArgument(f"config field {key!r} must be a positive number")
    issuers = parse_issuers(raw.get("issuers", {}), path_of)
    dealer = None
    if "dealer" in raw:
        table = raw["dealer"]
        if not isinstance(table, dict) or not isinstance(table.get("id"), str) or not isinstance(table.get("address"), str):
            raise InvalidArgument("config field 'dealer' needs 'id' and 'address' strings")
        try:
            dealer = (validate_party_id(table["id"]), table["address"])
        except MpcgateError as err:
            raise InvalidArgument(f"config field 'dealer.id': {err.message}") from None
    metrics_listen, console_listen = (raw.get(key, "") for key in ("metrics_listen", "console_listen"))
    for key, value in (("metrics_listen", metrics_listen), ("console_listen", console_listen)):
        if not isinstance(value, str) or (value and (":" not in value or not value.rpartition(":")[2].isdigit())):
            raise InvalidArgument(f"config field {key!r} must be host:port")
    insecure = raw.get("allow_insecure_providers", False)
    if not isinstance(insecure, bool):
        raise InvalidArgument("config field 'allow_insecure_providers' must be true or false")
    return GatewayConfig(
        party_id=party, listen=listen, tls=files, peers=dict(peers), data_dir=data_dir,
        database=path_of(need(raw, "database", str)), max_concurrent_jobs=limits["max_concurrent_jobs"],
        allow_insecure_providers=insecure, failure_timeout=float(limits["failure_timeout"]),
        default_deadline_s=float(limits["default_deadline_s"]), issuers=issuers, metrics_listen=metrics_listen, dealer=dealer,
        console_listen=console_listen,
        drain_grace_s=float(limits["drain_grace_s"]), submit_wait_s=float(limits["submit_wait_s"]), max_columns=limits["max_columns"], max_bins=limits["max_bins"],
        warm_workers=limits["warm_workers"], quotas=parse_quotas(raw.get("quotas", {})),
        notify=NotifyConfig.parse(raw.get("notify"), path_of),
    )
