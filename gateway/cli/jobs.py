"""`mpcgate jobs`: submit, watch and read joint jobs (a thin layer over gateway.client.sdk)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli.connection import connection as _connection
from gateway.cli.connection import make_client as _client
from gateway.cli.connection import run as _run

console = Console()


@click.group()
def jobs() -> None:
    """Joint jobs: submit, watch, list, cancel, approve, fetch results."""


@jobs.command()
@_connection
@click.option("--kind", required=True, help="job program, e.g. stats.summary (every kind, its parameters and an example: mpcgate kinds)")
@click.option("--input", "inputs", multiple=True, required=True, metavar="PARTY:DATASET:COL1,COL2",
              help="one party's input (repeatable)")
@click.option("--receiver", "receivers", multiple=True, required=True, help="party that receives the result (repeatable)")
@click.option("--partitioning", type=click.Choice(["horizontal", "vertical"]), default="horizontal", show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=JSON", help="program parameter, e.g. bin_edges=[0,1,2]")
@click.option("--provider", type=click.Choice(["TTP", "TFP"]), default="TTP", show_default=True,
              help="Beaver triples from the federation's dealer (TTP) or from party 0 (TFP: tests only)")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), help="seconds from start to finish (fractions allowed)")
@click.option("--model", "model_ref", metavar="MODEL_ID@HOLDER1,HOLDER2",
              help="model.predict / model.evaluate: the model and the parties holding it")
@click.option("--purpose", default="", help="why the job runs, shown to every data owner (a policy may require it)")
@click.option("--watch/--no-watch", default=True, show_default=True, help="follow progress until the job ends")
def submit(inputs: tuple[str, ...], receivers: tuple[str, ...], params: tuple[str, ...], kind: str, partitioning: str,
           provider: str, deadline: float | None, model_ref: str | None, purpose: str, watch: bool,
           **conn: Any) -> None:
    """Submits a joint job to your gateway (its coordinator)."""
    parsed = []
    for text in inputs:
        try:
            party, dataset, columns = text.split(":", 2)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not PARTY:DATASET:COL1,COL2", param_hint="--input") from None
        parsed.append((party, dataset, [c for c in columns.split(",") if c]))
    parameters = {}
    for text in params:
        key, _, value = text.partition("=")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError:
            parameters[key] = value
    with _client(**conn) as client:
        model = None
        if model_ref:
            model_id, _, holders = model_ref.partition("@")
            if not model_id or not holders:
                raise click.BadParameter(f"{model_ref!r} is not MODEL_ID@HOLDER1,HOLDER2", param_hint="--model")
            model = (model_id, holders.split(","))
        job = _run(lambda: client.submit(kind, parsed, receivers, partitioning, parameters, provider, deadline,
                                         model=model, purpose=purpose))
        console.print(f"job [bold]{job.id}[/bold]: {job.state}")
        if watch and not job.done:
            _follow(job)
        if job.state in ("REJECTED", "FAILED"):  # why, without a second command
            error = job.record.error
            console.print(f"  {error.reason} at {error.party_id or job.record.coordinator}: {error.message}",
                          markup=False)
        if job.state == "SUCCEEDED" and job.record.coordinator in receivers:
            print_result(_run(job.result))


@jobs.command()
@_connection
@click.argument("job_id")
def watch(job_id: str, **conn: Any) -> None:
    """Follows a job's progress until it ends."""
    with _client(**conn) as client:
        _follow(_run(lambda: client.job(job_id)))


def _follow(job: Any) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"job {job.id[:8]}", total=100, detail="")
        for event in _run(lambda: list(_events(job, bar, task))):
            pass
    _print_job(job.refresh())


def _events(job: Any, bar: Progress, task: Any) -> Any:
    from gateway.contract import states

    for event in job.watch():
        detail = f"{states.name(event.state)} {event.progress.phase} {event.progress.bytes_sent / 1e6:.1f} MB sent"
        bar.update(task, completed=event.progress.percent, detail=detail)
        yield event


@jobs.command()
@_connection
@click.argument("job_id")
def get(job_id: str, **conn: Any) -> None:
    """Shows one job."""
    with _client(**conn) as client:
        _print_job(_run(lambda: client.job(job_id)))


def _print_job(job: Any) -> None:
    from gateway.client import describe

    record = job.record
    table = Table(title=f"job {record.job_id}", show_header=False)
    for name, text in describe.rows(record):
        table.add_row(name, text)
    table.add_row("bytes sent (max per party)", f"{record.progress.bytes_sent:,}")
    table.add_row("communication rounds (max per party)", f"{record.progress.rounds:,}")
    console.print(table)


STATE_NAMES = ["PENDING", "AWAITING_APPROVAL", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"]


@jobs.command("list")
@_connection
@click.option("--state", "wanted", multiple=True, type=click.Choice(STATE_NAMES, case_sensitive=False),
              help="only jobs in this state (repeatable)")
@click.option("--kind", default="", help="only jobs of this kind, e.g. stats.summary")
@click.option("--since", type=click.DateTime(), help="only jobs created at or after this time (UTC)")
@click.option("--participant", default="", help="only jobs this party takes part in")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of columns")
def list_jobs(wanted: tuple[str, ...], kind: str, since: Any, participant: str, as_json: bool, **conn: Any) -> None:
    """Lists the jobs your gateway knows, newest first (`--state AWAITING_APPROVAL`: what waits for you)."""
    from gateway.api.gateway.v1 import jobs_pb2
    from gateway.contract import states

    codes = [jobs_pb2.JobState.Value(f"JOB_STATE_{s.upper()}") for s in wanted]
    with _client(**conn) as client:
        found = [job.record for job in _run(lambda: client.list_jobs(codes, kind=kind, since=since, party=participant))]
    if as_json:
        for r in found:
            click.echo(json.dumps({"job_id": r.job_id, "state": states.name(r.state), "kind": r.spec.kind,
                                   "coordinator": r.coordinator, "created_at": r.created_at.ToJsonString(),
                                   "purpose": r.spec.purpose, "error": r.error.message}))
        return
    # plain columns, the id first and whole: ids are for copying, and tables wrap them
    click.echo(f"{'job':32}  {'state':17}  {'kind':18}  {'coordinator':12}  created")
    for r in found:
        click.echo(f"{r.job_id:32}  {states.name(r.state):17}  {r.spec.kind:18}  {r.coordinator:12}  "
                   f"{r.created_at.ToDatetime().isoformat(timespec='seconds')}")


@jobs.command()
@_connection
@click.argument("job_id")
@click.option("--reason", default="")
def cancel(job_id: str, reason: str, **conn: Any) -> None:
    """Cancels a job on every party (at its coordinator)."""
    with _client(**conn) as client:
        _print_job(_run(lambda: client.job(job_id).cancel(reason)))


@jobs.command()
@_connection
@click.argument("job_id")
@click.option("--reject", is_flag=True, help="reject instead of approve")
@click.option("--reason", default="")
def approve(job_id: str, reject: bool, reason: str, **conn: Any) -> None:
    """The data owner's decision on a job awaiting approval."""
    with _client(**conn) as client:
        _print_job(_run(lambda: client.approve(job_id, not reject, reason)))


@jobs.command()
@_connection
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="write the result as one table to FILE.csv, FILE.parquet or FILE.json")
@click.option("--full", is_flag=True, help="print every digit (default: 6 significant digits)")
def result(job_id: str, as_json: bool, out: Path | None, full: bool, **conn: Any) -> None:
    """Prints a job's result (at a result receiver's gateway), or writes it to a file."""
    from gateway.client.results import write

    with _client(**conn) as client:
        found = _run(lambda: client.job(job_id).result())
    if out is not None:
        click.echo(f"wrote {_run(lambda: write(found.table(), out))}")
    elif as_json:
        click.echo(json.dumps(json_safe(found.as_dict()), indent=2, allow_nan=False))
    else:
        print_result(found, full=full)


@jobs.command()
@_connection
@click.argument("job_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write the card to FILE.csv or FILE.json")
@click.option("--apply", "rows_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="score the rows of this CSV or Parquet file (it needs the card's columns)")
@click.option("--scores", type=click.Path(dir_okay=False, path_type=Path),
              help="with --apply: write the rows with their `score` to FILE.csv, FILE.parquet or FILE.json")
def scorecard(job_id: str, out: Path | None, rows_file: Path | None, scores: Path | None, **conn: Any) -> None:
    """A model.scorecard job's card (at a receiver's gateway): printed, written to a
    file, or applied to rows in a local file."""
    from gateway.client.results import write
    from gateway.client.scorecards import Scorecard, read_rows

    with _client(**conn) as client:
        card = _run(lambda: Scorecard.from_result(client.job(job_id).result()))
    if out is not None:
        click.echo(f"wrote {_run(lambda: card.write(out))}")
    if rows_file is None:
        if out is None:
            table = Table(title=f"scorecard of job {job_id}")
            for name in ("column", "bin", "points", "woe", "rows", "events"):
                table.add_column(name, justify="left" if name in ("column", "bin") else "right")
            for row in card.table().to_pylist():
                table.add_row(row["column"], row["bin"], f"{row['points']:.2f}", f"{row['woe']:.4f}",
                              f"{row['rows']:.0f}", f"{row['events']:.0f}")
            console.print(table)
        return
    rows = _run(lambda: read_rows(rows_file))
    scored = _run(lambda: card.scored(rows))
    if scores is not None:
        click.echo(f"wrote {_run(lambda: write(scored, scores))}")
    else:
        for value in scored.column("score").to_pylist():
            click.echo(f"{value:.2f}")


def print_result(found: Any, reference: dict[str, np.ndarray] | None = None, full: bool = False) -> None:
    """Tables of a result; with `reference` (e.g. numpy on pooled data), side by side."""
    from gateway.client.results import number

    for name, values in found.values.items():
        labels = found.labels.get(name) or []
        table = Table(title=name + (" (suppressed: too few rows)" if found.suppressed.get(name) else ""))
        if values.ndim == 2 and values.shape[0] == len(labels):
            columns = found.column_labels.get(name) or (
                labels if values.shape[1] == len(labels) else [str(i) for i in range(values.shape[1])])
            table.add_column("")
            for c in columns:
                table.add_column(c, justify="right")
            for label, row in zip(labels, values):
                table.add_row(label, *(number(v, full) for v in row))
        else:
            table.add_column("")
            table.add_column("secure", justify="right")
            if reference is not None:
                table.add_column("numpy (pooled)", justify="right")
                table.add_column("|error|", justify="right")
            for i, v in enumerate(np.atleast_1d(values)):
                row = [labels[i] if i < len(labels) else str(i), number(v, full)]
                if reference is not None and name in reference:
                    ref = np.atleast_1d(reference[name])[i]
                    row += [number(ref, full), f"{abs(v - ref):.2e}"]
                table.add_row(*row)
        console.print(table)


def json_safe(value: Any) -> Any:
    """A withheld value (NaN) as JSON null: bare NaN is not JSON, and parsers refuse it."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value
