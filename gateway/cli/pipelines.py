"""`mpcgate pipelines`: a declared sequence of joint jobs (gateway.client.pipelines):
what each stage would release, and running them in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from gateway.cli.connection import connection as _connection
from gateway.cli.connection import make_client as _client
from gateway.cli.connection import run as _run

console = Console()


@click.group()
def pipelines() -> None:
    """Pipelines: stages of joint jobs from one TOML file (see the README's credit scoring)."""


@pipelines.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(spec: Path) -> None:
    """Each stage's kind, receivers and what it releases, before anything runs."""
    from gateway.client.pipelines import load

    pipeline = _run(lambda: load(spec))
    click.echo(f"pipeline {pipeline.name!r} ({pipeline.partitioning})")
    for row in pipeline.describe():
        source = f", columns from stage {row['columns from']}" if row["columns from"] else ""
        click.echo(f"\nstage {row['stage']}: {row['kind']} to {', '.join(row['receivers'])}{source}")
        click.echo(f"  released to the receivers: {row['released']}")
        click.echo(f"  every party learns: {row['every party learns']}")


@pipelines.command("run")
@_connection
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="write each stage's result to DIR/<stage>.json (where this gateway receives it)")
def run_pipeline(spec: Path, out: Path | None, **conn: Any) -> None:
    """Runs the stages in order from your gateway; stops at the first that fails."""
    from gateway.cli.jobs import json_safe, print_result
    from gateway.client.pipelines import load, run

    pipeline = _run(lambda: load(spec))
    seen: dict[str, str] = {}

    def progress(stage: Any, event: Any) -> None:
        from gateway.contract import states

        state = states.name(event.state)
        if seen.get(stage.name) != state:
            seen[stage.name] = state
            console.print(f"stage {stage.name} ({stage.kind}): {state} {event.progress.phase}")

    with _client(**conn) as client:
        done = _run(lambda: run(client, pipeline, progress))
    for stage in done.stages:
        console.print(f"[bold]stage {stage.stage.name}[/bold]: {stage.state} (job {stage.job_id})")
        if stage.result is None:
            continue
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{stage.stage.name}.json"
            path.write_text(json.dumps(json_safe(stage.result.as_dict()), indent=2, allow_nan=False) + "\n")
            click.echo(f"wrote {path}")
        else:
            print_result(stage.result)
