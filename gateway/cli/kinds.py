"""`mpcgate kinds`: every job kind's parameters with an example each."""

from __future__ import annotations

import click


@click.command()
@click.argument("kind", required=False)
def kinds(kind: str | None) -> None:
    """Lists the job kinds (or one KIND): what each computes, its parameters and a
    `mpcgate jobs submit` example, and what it reveals to whom."""
    from mpc.catalogue.kinds import KINDS
    from mpc.catalogue.parameters import DESCRIPTIONS
    from mpc.catalogue.releases import RELEASES

    if kind is not None and kind not in KINDS:
        raise click.ClickException(f"unknown job kind {kind!r} (known: {', '.join(KINDS)})")
    for name, entry in KINDS.items():
        if kind not in (None, name):
            continue
        click.echo(f"{name}: {entry.summary}")
        for parameter in entry.parameters:
            required = " (required)" if parameter in entry.required else ""
            click.echo(f"  {parameter}{required}: {DESCRIPTIONS[parameter]}")
        released, public = RELEASES[name]
        click.echo(f"  the receivers get: {released}")
        click.echo(f"  every party learns: {public}")
        click.echo(f"  example: mpcgate jobs submit --kind {name} {entry.example}\n")
