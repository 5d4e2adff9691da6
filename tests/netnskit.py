"""A federation across Linux network namespaces: each gateway and the dealer in a
namespace of its own, with one address on a virtual link (a veth pair into a
bridge that lives in a namespace of its own too), reaching the others only by the
addresses in its config. Addresses come from 198.18.0.0/15 (reserved for network
benchmarks); nothing outside the namespaces made here is touched, and `close`
deletes them (which deletes their links).

The SDK client runs in a spawned process that first joins a namespace (setns), so
the test process itself never changes namespace.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.exchange.local_parties import DEALER
from gateway.federation import LocalFederation, wait_serving

CLONE_NEWNET = 0x40000000


def _ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *(["-n", ns] if ns else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


def can_create_namespaces() -> str | None:
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    probe = f"mpcg-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (OSError, subprocess.CalledProcessError) as err:
        return f"cannot create network namespaces here: {getattr(err, 'stderr', err)}"
    return None


class Hosts:
    """One namespace per member on a bridged virtual link."""

    def __init__(self, members: list[str]) -> None:
        tag = uuid.uuid4().hex[:4]
        self.switch = f"mpcg-{tag}-sw"
        self.namespaces = {m: f"mpcg-{tag}-{i}" for i, m in enumerate(members)}
        self.addresses = {m: f"198.18.{int(tag[:2], 16)}.{10 + i}" for i, m in enumerate(members)}
        self._made: list[str] = []
        try:
            self._build(tag)
        except BaseException:
            self.close()
            raise

    def _build(self, tag: str) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)
        for i, (member, ns) in enumerate(self.namespaces.items()):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("link", "set", "lo", "up", ns=ns)
            # the pair is born in the switch's namespace; one end moves to the member
            _ip("link", "add", f"port{i}", "type", "veth", "peer", "name", "eth0", "netns", ns, ns=self.switch)
            _ip("link", "set", f"port{i}", "master", "br0", "up", ns=self.switch)
            _ip("addr", "add", f"{self.addresses[member]}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)

    def cut(self, member: str) -> None:
        """Takes `member`'s link down at the switch: its packets go nowhere."""
        index = list(self.namespaces).index(member)
        _ip("link", "set", f"port{index}", "down", ns=self.switch)

    def close(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made = []


def federation(root: Path, banks: list[str], hosts: Hosts) -> LocalFederation:
    """LocalFederation's PKI, issuers and configs, with each member on its own host."""
    return LocalFederation(root, banks, dealer=True, failure_timeout=5.0, hosts=hosts.addresses)


def start(fed: LocalFederation, hosts: Hosts) -> dict[str, subprocess.Popen[bytes]]:
    """Every gateway and the dealer in its namespace; returns once each is serving."""
    processes = {}
    for member, ns in hosts.namespaces.items():
        is_dealer = member == DEALER
        folder = fed.root / member
        command = ["dealer", "--config", str(folder / "dealer.toml")] if is_dealer else \
            ["serve", "--config", str(fed.config_path(member))]
        log = (folder / ("dealer.log" if is_dealer else "gateway.log")).open("ab")
        processes[member] = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "gateway.cli", *command], stdout=log,
            stderr=subprocess.STDOUT, cwd=folder, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for member, ns in hosts.namespaces.items():
        in_namespace(ns, wait_serving, fed.pki_dir, member, fed.addresses.get(member, fed.dealer_address), 60.0)
    return processes


def client(root: Path, bank: str, address: str) -> Any:
    """An operator's SDK client for `bank`'s gateway at `address` (from inside a
    namespace), with a token from the bank's issuer under `root`."""
    from gateway.auth.jwt import SCOPES, issue_token
    from gateway.client.sdk import Client
    from gateway.federation import OPERATOR
    from gateway.transport.tls import TlsIdentity

    token = issue_token(root / bank / "issuer" / "k1.key", "k1", f"{bank}-idp", "operator", bank, SCOPES, 3600)
    return Client(address, token, TlsIdentity.from_dir(root / "pki", OPERATOR), server_party=bank)


def _enter_and_run(ns: str, fn: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        with open(f"/run/netns/{ns}") as handle:
            if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        out.put(("ok", fn(*args)))
    except BaseException as err:  # noqa: BLE001  (reported to the test, whatever it is)
        out.put(("error", f"{type(err).__name__}: {err}"))


def in_namespace(ns: str, fn: Callable[..., Any], *args: Any, timeout: float = 300) -> Any:
    """fn(*args) in a spawned process inside namespace `ns`; its return value."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=_enter_and_run, args=(ns, fn, args, out))
    process.start()
    try:
        status, value = out.get(timeout=timeout)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    if status != "ok":
        raise RuntimeError(f"in namespace {ns}: {value}")
    return value
