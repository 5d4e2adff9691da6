"""`mpcgate pki`: the federation CA and party certificates."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.transport import pki as federation_pki
from mpc.errors import MpcgateError

_DIR = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("pki"),
    show_default=True, help="Folder holding ca.crt/ca.key and issued certificates.",
)


@click.group()
def pki() -> None:
    """Federation CA and per-party certificates (mutual TLS between gateways)."""


@pki.command("init")
@_DIR
@click.option("--name", default="mpcgate federation CA", show_default=True, help="CA common name.")
@click.option("--days", default=3650, show_default=True, type=click.IntRange(1, 36500))
@click.option("--force", is_flag=True, help="Replace an existing CA (invalidates every issued certificate).")
def init(directory: Path, name: str, days: int, force: bool) -> None:
    """Creates the federation CA."""
    try:
        path = federation_pki.init_ca(directory, name=name, days=days, force=force)
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"CA certificate: {path}  (keep {directory / federation_pki.CA_KEY} offline and private)")


@pki.command("issue")
@click.argument("party")
@_DIR
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default: --dir).")
@click.option("--host", "hosts", multiple=True, help="Extra DNS name or IP for the gateway (repeatable); default localhost, 127.0.0.1, ::1.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650))
@click.option("--client", is_flag=True, help="A client-only certificate for an operator or service (cannot join MPC sessions).")
@click.option("--force", is_flag=True, help="Replace an existing key and certificate of PARTY.")
def issue(party: str, directory: Path, out: Path | None, hosts: tuple[str, ...], days: int, client: bool,
          force: bool) -> None:
    """Issues a key and certificate naming PARTY (or, with --client, an operator)."""
    existing = [p for p in ((out or directory) / f"{party}.key", (out or directory) / f"{party}.crt") if p.exists()]
    if existing and not force:  # a running gateway would keep serving the old pair and refuse the new one's peers
        raise click.ClickException(f"{existing[0]} exists already: pass --force to replace {party}'s key and certificate")
    try:
        files = federation_pki.issue(
            directory, party, out_dir=out, hosts=hosts or federation_pki.DEFAULT_HOSTS, days=days, client=client
        )
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"certificate: {files.cert}\nprivate key: {files.key}")


@pki.command("request")
@click.argument("party")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("pki"), show_default=True,
              help="Folder for PARTY.key (stays here) and PARTY.csr (send it to the federation's CA).")
@click.option("--host", "hosts", multiple=True, help="DNS name or IP of your gateway (repeatable); default localhost, 127.0.0.1, ::1.")
@click.option("--force", is_flag=True, help="Replace an existing key of PARTY.")
def request(party: str, out: Path, hosts: tuple[str, ...], force: bool) -> None:
    """A partner's key and certificate signing request: the key never leaves you."""
    if (out / f"{party}.key").exists() and not force:
        raise click.ClickException(f"{out / f'{party}.key'} exists already: pass --force to replace it")
    try:
        key, csr = federation_pki.request(party, out, hosts or federation_pki.DEFAULT_HOSTS)
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"private key: {key} (keep it here)\nsigning request: {csr} (send it to the federation's CA)")


@pki.command("sign")
@click.argument("csr", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--party", required=True, help="The party (or, with --client, operator) the certificate names; "
                                             "must be the request's common name.")
@_DIR
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Certificate file (default: CSR with .crt).")
@click.option("--host", "hosts", multiple=True, help="DNS name or IP for the gateway (repeatable); default: the request's.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650))
@click.option("--client", is_flag=True, help="A client-only certificate for an operator or service.")
def sign(csr: Path, party: str, directory: Path, out: Path | None, hosts: tuple[str, ...], days: int, client: bool) -> None:
    """Signs a partner's certificate signing request with the federation CA."""
    target = out or csr.with_suffix(".crt")
    try:
        pem = federation_pki.sign(directory, csr.read_bytes(), party, list(hosts) or None, days, client)
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    target.write_bytes(pem)
    click.echo(f"certificate: {target} (send it and {directory / federation_pki.CA_CERT} back to {party})")
