"""`mpcgate smoke`: a CrypTen check with one OS process per party."""

from __future__ import annotations

import click


@click.command()
@click.option("--parties", default=3, show_default=True, type=click.IntRange(2, 8), help="Number of parties.")
@click.option(
    "--transport", type=click.Choice(["grpc", "gloo"]), default="grpc", show_default=True,
    help="grpc: mpcgate's exchange with mutual TLS; gloo: CrypTen's own (plain TCP) baseline.",
)
def smoke(parties: int, transport: str) -> None:
    """Runs a CrypTen check with one OS process per party on this machine."""
    from rich.console import Console
    from rich.table import Table

    from gateway.exchange import local_parties
    from mpc.programs import smoke as check

    console = Console()
    with console.status(f"running CrypTen on {parties} parties (one process each, {transport} transport)..."):
        results = local_parties.run_parties(check.program, parties, transport=transport)  # type: ignore[arg-type]
    want = check.expected(parties)
    table = Table(title=f"CrypTen smoke check: {parties} parties over {transport}")
    for column in ("value", "secure (party 0)", "plaintext", "max |error|"):
        table.add_column(column)
    for name, value in results[0].items():
        err = abs(value - want[name]).max()
        table.add_row(name, _short(value), _short(want[name]), f"{err:.2e}")
    console.print(table)
    worst = max(check.max_error(parties, r) for r in results)
    if worst > check.TOLERANCE:
        raise click.ClickException(f"joint results differ from plaintext by {worst:.3g} > {check.TOLERANCE}")
    console.print(f"[green]ok[/green]: every party's result is within {check.TOLERANCE} of plaintext")


def _short(value: object) -> str:
    import numpy as np

    arr = np.atleast_1d(np.asarray(value))
    text = np.array2string(arr[:3], precision=3, suppress_small=True)
    return text if arr.size <= 3 else text[:-1] + " ...]"
