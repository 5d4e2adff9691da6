"""`mpcgate serve`: run this institution's gateway."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.errors import MpcgateError


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the gateway's TOML config (see gateway/config.py)")
def serve(config_path: Path) -> None:
    """Runs the gateway until SIGTERM or Ctrl-C."""
    from gateway import config, server

    try:
        loaded = config.load(config_path)
    except MpcgateError as err:
        raise click.ClickException(err.message) from None
    server.run(loaded)
