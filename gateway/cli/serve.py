"""`mpcgate serve` and `mpcgate dealer`: the long-running processes of a federation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mpc.errors import MpcgateError

_CONFIG = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                       help="the TOML config")


def _run(load: Callable[[Path], Any], run: Callable[[Any], None], path: Path) -> None:
    try:
        run(load(path))
    except MpcgateError as err:  # a bad config, a port in use: one clear line, exit 1
        raise click.ClickException(err.message) from None


@click.command()
@_CONFIG
def serve(config_path: Path) -> None:
    """Runs this institution's gateway until SIGTERM or Ctrl-C (config: gateway/config.py)."""
    from gateway import config, server

    _run(config.load, server.run, config_path)


@click.command()
@_CONFIG
def dealer(config_path: Path) -> None:
    """Serves CrypTen's TTP provider to the federation until SIGTERM (config: gateway/dealer/config.py)."""
    from gateway.dealer import config, server

    _run(config.load, server.run, config_path)
