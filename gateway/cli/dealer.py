"""`mpcgate dealer`: run the federation's Beaver-triple dealer."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.errors import MpcgateError


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the dealer's TOML config (see gateway/dealer/config.py)")
def dealer(config_path: Path) -> None:
    """Serves CrypTen's TTP provider to the federation's gateways until SIGTERM."""
    from gateway.dealer import config, server

    try:
        loaded = config.load(config_path)
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    server.run(loaded)
