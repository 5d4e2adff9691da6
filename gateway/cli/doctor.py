"""`mpcgate doctor --config FILE`: a gateway's (or the dealer's) config checked end to end, one line per check."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the gateway's (or the dealer's) TOML config")
def doctor(config_path: Path) -> None:
    """Checks a gateway's config before any job: certificates and their expiry, the
    data folders, and each peer and the dealer resolved, reached and authenticated.
    Given a dealer's config: its certificate and every party's gateway it serves.
    Exits 1 if any check fails."""
    from gateway import doctor as checks

    results = checks.run(config_path)
    for check in results:
        click.echo(check.line())
    if not all(check.ok for check in results):
        raise SystemExit(1)
