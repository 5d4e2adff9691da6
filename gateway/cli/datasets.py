"""`mpcgate datasets`: a data owner registers local tables and sets their policies
(policy files: see gateway/contract/policies.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.cli.connection import connection, make_client, run

console = Console()


@click.group()
def datasets() -> None:
    """Register, list, show, re-police and delete your gateway's datasets."""


def _policy(path: Path) -> Any:
    from gateway.contract import policies

    return run(lambda: policies.load(path))


@datasets.command()
@connection
@click.argument("name")
@click.argument("path")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="policy TOML file")
@click.option("--key-column", default="", help="column identifying rows (for vertical jobs)")
@click.option("--column", "columns", multiple=True, help="numeric column to register (repeatable; default: all but the key)")
@click.option("--complete", "complete", multiple=True,
              help="column that may have no missing cell (repeatable; registration refuses the file otherwise)")
@click.option("--categorical", "categorical", multiple=True,
              help="column of category codes (repeatable; a column without numbers is categorical anyway)")
@click.option("--other", "other", multiple=True,
              help="categorical column whose categories a job does not list count as 'other' (repeatable)")
@click.option("--format", "file_format", type=click.Choice(["csv", "parquet"]), help="default: from the file's suffix")
@click.option("--description", default="")
@click.option("--replace", is_flag=True, help="replace an existing registration (e.g. after the file changed)")
def register(name: str, path: str, policy_file: Path, key_column: str, columns: tuple[str, ...],
             complete: tuple[str, ...], categorical: tuple[str, ...], other: tuple[str, ...], file_format: str | None,
             description: str, replace: bool, **conn: Any) -> None:
    """Registers PATH (inside the gateway's data directory) as dataset NAME."""
    policy = _policy(policy_file)
    with make_client(**conn) as client:
        dataset = run(lambda: client.register_dataset(name, path, policy, columns, key_column, description,
                                                      file_format or "", replace, complete, categorical, other))
    _print(dataset)


@datasets.command("list")
@connection
def list_datasets(**conn: Any) -> None:
    """Lists the gateway's datasets."""
    with make_client(**conn) as client:
        found = run(client.list_datasets)
    table = Table("name", "rows", "columns", "key", "registered")
    for d in found:
        table.add_row(d.name, str(d.row_count), ", ".join(c.name for c in d.columns if c.name != d.key_column),
                      d.key_column, d.created_at.ToDatetime().isoformat(timespec="seconds"))
    console.print(table)


@datasets.command()
@connection
@click.argument("name")
def show(name: str, **conn: Any) -> None:
    """Shows one dataset and its policy."""
    with make_client(**conn) as client:
        _print(run(lambda: client.get_dataset(name)))


@datasets.command()
@connection
@click.argument("name")
@click.argument("policy_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def policy(name: str, policy_file: Path, **conn: Any) -> None:
    """Replaces dataset NAME's policy with POLICY_FILE (running jobs are rechecked
    against it before they read data and before they release results)."""
    new = _policy(policy_file)
    with make_client(**conn) as client:
        _print(run(lambda: client.update_policy(name, new)))


@datasets.command()
@connection
@click.argument("name")
def delete(name: str, **conn: Any) -> None:
    """Removes dataset NAME from the registry (the file is untouched)."""
    with make_client(**conn) as client:
        run(lambda: client.delete_dataset(name))
    console.print(f"deleted dataset {name}")


def _print(dataset: Any) -> None:
    from gateway.contract import policies

    table = Table(title=f"dataset {dataset.name}", show_header=False)
    table.add_row("party", dataset.party_id)
    table.add_row("rows", str(dataset.row_count))
    table.add_row("key column", dataset.key_column or "-")
    for c in dataset.columns:
        if c.name != dataset.key_column:
            kind = (f"categorical ({', '.join(c.categories)}{'; others: other' if c.other else ''})"
                    if c.type == dpb.COLUMN_TYPE_CATEGORICAL else "numeric")
            table.add_row(f"column {c.name}", f"{kind}, " + (f"{c.missing_count} missing" if c.nullable else "complete"))
    table.add_row("sha256", dataset.content_sha256)
    for key, value in policies.describe(dataset.policy).items():
        table.add_row(f"policy {key}", ", ".join(value) if isinstance(value, list) else str(value).lower())
    if dataset.policy.HasField("dp_budget"):
        budget = dataset.policy.dp_budget
        table.add_row("privacy spent", f"epsilon {dataset.dp_spent.epsilon:.4g} of {budget.epsilon:g} "
                      f"(delta {budget.delta:g}) by {dataset.dp_spent.jobs} job(s)")
        for charge in dataset.dp_spent.charges:  # the budget spent over time
            when = charge.charged_at.ToDatetime().isoformat(timespec="seconds") if charge.charged_at.seconds else "-"
            table.add_row(f"  charged {when}", f"epsilon {charge.epsilon:g} to {charge.dataset} by job {charge.job_id}"
                          + ("" if charge.released else " (reserved: not released yet)"))
    console.print(table)
