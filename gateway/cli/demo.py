"""`mpcgate demo`: three institutions, one joint job, on this machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

ROWS_PER_BANK = 2000


@click.command()
@click.option("--rows", default=ROWS_PER_BANK, show_default=True, type=click.IntRange(10, 1_000_000),
              help="synthetic rows per institution")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="keep certificates, configs, data and logs here (default: a temporary folder)")
def demo(rows: int, workdir: Path | None) -> None:
    """Starts three gateways (bank-a, bank-b, bank-c) as separate processes with a fresh
    CA, certificates and synthetic loan books, runs a joint statistics job through the
    SDK, and prints the secure result beside numpy's answer on the pooled rows."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        _run(workdir, rows)
        return
    with tempfile.TemporaryDirectory(prefix="mpcgate-demo-") as scratch:
        _run(Path(scratch), rows)


def _run(root: Path, rows: int) -> None:
    from gateway import demo_data
    from gateway.api.gateway.v1 import datasets_pb2 as dpb
    from gateway.federation import LocalFederation

    console = Console()
    banks = demo_data.INSTITUTIONS
    console.rule("[bold]mpcgate demo[/bold]: a joint credit-risk summary across three banks")
    console.print("Beaver triples come from a dealer (CrypTen's TTP provider) running as its own process "
                  "with its own certificate; the gateways refuse the insecure TFP provider.")
    with LocalFederation(root, banks, allow_insecure_providers=False, dealer=True) as federation:
        for bank in banks:
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv", demo_data.loans(bank, rows))
        with console.status("starting three gateways and the dealer (fresh CA, mutual TLS, one process each)..."):
            started = time.monotonic()
            federation.start()
        console.print(f"gateways up in {time.monotonic() - started:.1f} s: "
                      + ", ".join(f"{b} on {a}" for b, a in federation.addresses.items()))
        policy = dpb.Policy(
            allowed_parties=banks, allowed_job_kinds=["stats.summary"], allowed_columns=demo_data.COLUMNS,
            allowed_result_receivers=["bank-a"], min_rows=100, approval_mode=dpb.APPROVAL_MODE_AUTOMATIC,
        )
        for bank in banks:  # each bank's data owner registers its own table at its own gateway
            with federation.client(bank) as owner:
                owner.register_dataset("loans", "loans.csv", policy, description="loan book")
        console.print(f"each bank registered {rows} rows of {', '.join(demo_data.COLUMNS)} (the rows never leave it)")

        with federation.client("bank-a") as operator:
            job = operator.submit("stats.summary", [(b, "loans", demo_data.COLUMNS) for b in banks],
                                  receivers=["bank-a"], provider="TTP")
            started = time.monotonic()
            columns = (TextColumn("job {task.fields[job]}"), BarColumn(), TaskProgressColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[phase]}"))
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("", total=100, job=job.id[:8], phase="")
                for event in job.watch(timeout=600):
                    bar.update(task, completed=event.progress.percent, phase=event.progress.phase or event.message)
            elapsed = time.monotonic() - started
            if job.state != "SUCCEEDED":
                raise click.ClickException(f"job {job.id} ended {job.state}: {job.record.error.message}")
            result = job.result()
            record = job.record
        pooled = np.vstack([demo_data.loans(b, rows) for b in banks])
        reference = demo_data.summary(pooled)
        _print_describe(console, result.values, reference, demo_data.COLUMNS)
        _print_matrix(console, "correlation (secure)", result["correlation"], demo_data.COLUMNS)
        worst = demo_data.max_relative_error(result.values, reference)
        console.print(f"largest error against numpy float64 on the pooled {len(pooled)} rows: [bold]{worst:.1e}[/bold]"
                      " (relative; covariances relative to sigma_i*sigma_j)")
        console.print(f"job {job.id}: {elapsed:.1f} s from submit to result; provider {result.provider}; "
                      f"{record.progress.bytes_sent:,} bytes sent by the busiest party over mutual TLS")
        with console.status("stopping the gateways (SIGTERM)..."):
            codes = federation.stop()
        console.print("stopped: " + ", ".join(f"{b} exit {c}" for b, c in codes.items()))
        if worst > 1e-3:
            raise click.ClickException(f"the secure result is off by {worst:.1e}, more than 1e-3")


def _print_describe(console: Console, secure: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                    columns: list[str]) -> None:
    table = Table(title="describe: secure (numpy on pooled rows)")
    table.add_column("statistic")
    for c in columns:
        table.add_column(c, justify="right")
    for name in ("count", "sum", "mean", "std"):  # extremes stay private (policy allow_extremes)
        table.add_row(name, *(f"{s:,.2f}\n[dim]({r:,.2f})[/dim]" for s, r in zip(secure[name], reference[name])))
    console.print(table)


def _print_matrix(console: Console, title: str, values: np.ndarray, labels: list[str]) -> None:
    table = Table(title=title)
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, values):
        table.add_row(label, *(f"{v:+.4f}" for v in row))
    console.print(table)
