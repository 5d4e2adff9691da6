"""A whole federation on this machine: a fresh CA, a certificate per institution
and for an operator, one `mpcgate serve` process per institution on loopback, and
SDK clients for each. `mpcgate demo` and the end-to-end tests use it; nothing in it
is a mock: the gateways are the real thing, talking mutual TLS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.auth.jwt import SCOPES, generate_issuer_key, issue_token
from gateway.client.sdk import Client
from gateway.exchange.local_parties import DEALER
from gateway.transport import pki, rpc
from gateway.transport.tls import TlsIdentity
from mpc.errors import Unavailable

OPERATOR = "operator"


HOST_PORT = 7000
"""The gateway port of a member on a host of its own (its metrics: the next one; its console: the one after)."""


def wait_serving(pki_dir: Path, party: str, address: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Returns once the gateway (or dealer) of `party` at `address` reports SERVING
    to an operator's mutual-TLS health check; Unavailable if it exits (`alive`
    turns false) or stays silent for `timeout` seconds."""
    identity = TlsIdentity.from_dir(pki_dir, OPERATOR)
    deadline = time.monotonic() + timeout
    with rpc.secure_channel(identity, address, party) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not alive():
                raise Unavailable(f"{party} exited")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise Unavailable(f"gateway {party} did not become healthy within {timeout:.0f} s")


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: every socket is held until all are
    chosen (one at a time, the kernel may hand out a port just released twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalFederation:
    def __init__(self, root: Path, parties: Sequence[str], allow_insecure_providers: bool = True,
                 max_concurrent_jobs: int = 2, failure_timeout: float = 10.0, dealer: bool = False,
                 party_config: dict[str, str] | None = None, hosts: Mapping[str, str] | None = None,
                 submit_wait_s: float = 10.0) -> None:
        """`hosts`: each member's (and the dealer's) own host address, for members
        started elsewhere than this loopback (each then serves on HOST_PORT); by
        default every member is on 127.0.0.1 at a free port. `submit_wait_s`: how long
        SubmitJob waits for the reviews (a gateway's default is 1 s; on one loaded
        machine running every party, a review can take longer, and a job a party
        refuses would answer PENDING instead of REJECTED)."""
        self.root = root
        self.parties = list(parties)
        self.pki_dir = root / "pki"
        if hosts is None:
            ports = iter(_free_ports(3 * len(self.parties) + 1))
            self.addresses = {p: f"127.0.0.1:{next(ports)}" for p in self.parties}
            self.metrics_ports = {p: next(ports) for p in self.parties}
            self.console_ports = {p: next(ports) for p in self.parties}
            self.dealer_address = f"127.0.0.1:{next(ports)}" if dealer else None
        else:
            self.addresses = {p: f"{hosts[p]}:{HOST_PORT}" for p in self.parties}
            self.metrics_ports = dict.fromkeys(self.parties, HOST_PORT + 1)
            self.console_ports = dict.fromkeys(self.parties, HOST_PORT + 2)
            self.dealer_address = f"{hosts[DEALER]}:{HOST_PORT}" if dealer else None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._extra = party_config or {}  # extra top-level TOML lines per party
        self._options = dict(allow_insecure_providers=allow_insecure_providers,
                             max_concurrent_jobs=max_concurrent_jobs, failure_timeout=failure_timeout,
                             submit_wait_s=submit_wait_s)
        pki.init_ca(self.pki_dir)
        for party in self.parties:
            pki.issue(self.pki_dir, party)
            self.data_dir(party).mkdir(parents=True, exist_ok=True)
        pki.issue(self.pki_dir, OPERATOR, client=True)
        for party in self.parties:  # each institution runs its own token issuer
            generate_issuer_key(self.issuer_dir(party), "k1")
        for party in self.parties:
            self.config_path(party).write_text(self._config(party))
        if dealer:
            pki.issue(self.pki_dir, DEALER)
            (root / DEALER).mkdir(exist_ok=True)
            (root / DEALER / "dealer.toml").write_text(self._dealer_config())

    def data_dir(self, party: str) -> Path:
        return self.root / party / "data"

    def issuer_dir(self, party: str) -> Path:
        return self.root / party / "issuer"

    def issuer(self, party: str) -> str:
        return f"{party}-idp"

    def token(self, party: str, subject: str = "operator", scopes: Sequence[str] = SCOPES, ttl_s: int = 3600) -> str:
        """A token from `party`'s issuer for its gateway."""
        return issue_token(self.issuer_dir(party) / "k1.key", "k1", self.issuer(party), subject, party, scopes, ttl_s)

    def config_path(self, party: str) -> Path:
        return self.root / party / "gateway.toml"

    def log_path(self, party: str) -> Path:
        return self.root / party / "gateway.log"

    def _config(self, party: str) -> str:
        peers = "\n".join(f'{p} = "{a}"' for p, a in self.addresses.items() if p != party)
        o = self._options
        insecure = "allow_insecure_providers" not in self._extra.get(party, "")
        return f"""party_id = "{party}"
listen = "{self.addresses[party]}"
data_dir = "data"
database = "gateway.db"
max_concurrent_jobs = {o['max_concurrent_jobs']}
{f"allow_insecure_providers = {str(o['allow_insecure_providers']).lower()}" if insecure else ""}
failure_timeout = {float(o['failure_timeout'])}
submit_wait_s = {float(o['submit_wait_s'])}
metrics_listen = "127.0.0.1:{self.metrics_ports[party]}"
console_listen = "{self.addresses[party].rpartition(':')[0]}:{self.console_ports[party]}"
{self._extra.get(party, "")}

[tls]
ca = "{self.pki_dir / 'ca.crt'}"
cert = "{self.pki_dir / f'{party}.crt'}"
key = "{self.pki_dir / f'{party}.key'}"

[peers]
{peers}

[issuers]
{self.issuer(party)} = ["{self.issuer_dir(party) / 'k1.jwks.json'}"]
""" + (f"""
[dealer]
id = "{DEALER}"
address = "{self.dealer_address}"
""" if self.dealer_address else "")

    def _dealer_config(self) -> str:
        parties = "\n".join(f'{p} = "{a}"' for p, a in self.addresses.items())
        return f"""dealer_id = "{DEALER}"
listen = "{self.dealer_address}"
failure_timeout = {float(self._options['failure_timeout'])}

[tls]
ca = "{self.pki_dir / 'ca.crt'}"
cert = "{self.pki_dir / f'{DEALER}.crt'}"
key = "{self.pki_dir / f'{DEALER}.key'}"

[parties]
{parties}
"""

    def start(self, party: str | None = None, timeout: float = 60.0) -> None:
        """Starts every gateway (or one), and the dealer if any, and waits until each
        reports SERVING."""
        if party is None and self.dealer_address and DEALER not in self._processes:
            log = (self.root / DEALER / "dealer.log").open("ab")
            self._processes[DEALER] = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "dealer", "--config", str(self.root / DEALER / "dealer.toml")],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root / DEALER, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        for p in [party] if party else self.parties:
            log = self.log_path(p).open("ab")
            self._processes[p] = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config_path(p))],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root / p, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        for p in [party] if party else [*self.parties, *([DEALER] if self.dealer_address else [])]:
            self._wait_serving(p, timeout)

    def _wait_serving(self, party: str, timeout: float) -> None:
        address = self.dealer_address if party == DEALER and self.dealer_address else self.addresses[party]
        process = self._processes[party]
        try:
            wait_serving(self.pki_dir, party, address, timeout, alive=lambda: process.poll() is None)
        except Unavailable:
            if process.poll() is None:
                raise
            raise Unavailable(f"{party} exited with code {process.returncode}; see its log under {self.root / party}") from None

    def console_url(self, party: str) -> str:
        """The web console of `party`'s gateway (HTTPS, its certificate from this CA)."""
        return f"https://{self.addresses[party].rpartition(':')[0]}:{self.console_ports[party]}"

    def client(self, party: str, token: str | None = None) -> Client:
        """An operator's SDK client for `party`'s gateway (by default with every scope)."""
        return Client(self.addresses[party], self.token(party) if token is None else token,
                      TlsIdentity.from_dir(self.pki_dir, OPERATOR), server_party=party)

    def states(self, job_id: str) -> dict[str, str]:
        """The job's state as each gateway records it."""
        out = {}
        for party in self.parties:
            with self.client(party) as client:
                out[party] = client.job(job_id).state
        return out

    def stop(self, party: str | None = None, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM, then SIGKILL after `timeout`; returns exit codes."""
        codes: dict[str, int | None] = {}
        for p in [party] if party else list(self._processes):
            process = self._processes.pop(p, None)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
            codes[p] = process.returncode
        return codes

    def pid(self, party: str) -> int:
        return self._processes[party].pid

    def kill(self, party: str) -> None:
        """SIGKILL a gateway and everything it started (its workers)."""
        process = self._processes.pop(party)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
