"""How the operator commands (`mpcgate jobs`, `mpcgate datasets`) reach a gateway:
its address and party id, a client certificate and a token, from options or
MPCGATE_* environment variables; typed errors become one-line messages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mpc.errors import MpcgateError

if TYPE_CHECKING:
    from gateway.client.sdk import Client


def connection(f: Any) -> Any:
    options = [
        click.option("--gateway", envvar="MPCGATE_GATEWAY", required=True, help="host:port of your gateway [MPCGATE_GATEWAY]"),
        click.option("--party", envvar="MPCGATE_PARTY", required=True, help="the gateway's party id [MPCGATE_PARTY]"),
        click.option("--tls-dir", envvar="MPCGATE_TLS_DIR", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="folder with ca.crt and your client certificate [MPCGATE_TLS_DIR]"),
        click.option("--client", "client_name", envvar="MPCGATE_CLIENT", required=True,
                     help="name of your client certificate (<name>.crt/.key) [MPCGATE_CLIENT]"),
        click.option("--token", envvar="MPCGATE_TOKEN", required=True, help="your JWT [MPCGATE_TOKEN]"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_client(gateway: str, party: str, tls_dir: Path, client_name: str, token: str) -> Client:
    from gateway.client.sdk import Client
    from gateway.transport.tls import TlsIdentity

    return Client(gateway, token.strip(), TlsIdentity.from_dir(tls_dir, client_name), server_party=party)


def run(action: Any) -> Any:
    try:
        return action()
    except MpcgateError as err:
        raise click.ClickException(f"{err.code.name}: {err.message}") from None


