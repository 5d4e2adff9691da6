"""`mpcgate token` and `mpcgate audit`: administrators' tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gateway.cli.connection import connection, make_client, run
from mpc.errors import MpcgateError


@click.group()
def token() -> None:
    """Token issuer keys and JWTs for people and services."""


@token.command("keygen")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("issuer"), show_default=True)
@click.option("--kid", required=True, help="key id (rotate by adding a new kid to the gateways' JWKS)")
@click.option("--force", is_flag=True, help="Replace an existing key of this kid.")
def keygen(directory: Path, kid: str, force: bool) -> None:
    """Creates an Ed25519 signing key and its public JWKS for gateways to trust."""
    from gateway.auth.jwt import generate_issuer_key

    if (directory / f"{kid}.key").exists() and not force:  # gateways trusting the old JWKS would refuse its tokens
        raise click.ClickException(f"{directory / f'{kid}.key'} exists already: use a new --kid to rotate keys, "
                                   "or --force to replace it")

    private, jwks = generate_issuer_key(directory, kid)
    click.echo(f"signing key: {private} (keep private)\npublic JWKS: {jwks} (list it under [issuers] in gateway configs)")


@token.command("issue")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--kid", required=True)
@click.option("--issuer", required=True)
@click.option("--sub", "subject", required=True, help="who the token is for")
@click.option("--aud", "audience", required=True, help="the gateway's party id")
@click.option("--scope", "scopes", multiple=True, required=True, help="e.g. jobs:submit (repeatable)")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1, 86400 * 7), help="seconds")
def issue(key_path: Path, kid: str, issuer: str, subject: str, audience: str, scopes: tuple[str, ...], ttl: int) -> None:
    """Prints a signed JWT."""
    from gateway.auth.jwt import issue_token

    try:
        click.echo(issue_token(key_path, kid, issuer, subject, audience, scopes, ttl))
    except MpcgateError as err:
        raise click.ClickException(err.message) from None


@click.group()
def audit() -> None:
    """The gateway's tamper-evident audit log."""


@audit.command("verify")
@click.option("--db", "database", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--peer-db", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="another party's database: the heads of this log it recorded are checked too")
@click.option("--party", default="", help="this log's party id (with --peer-db)")
@click.option("--anchor", "anchors", multiple=True, metavar="SEQ:HASH", help="a head recorded elsewhere (repeatable)")
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the federation CA certificate: also check every co-signed job record (signatures, certificates), "
                   "and with --party, that the heads this party signed are still in its log")
def verify(database: Path, peer_db: Path | None, party: str, anchors: tuple[str, ...], ca_file: Path | None) -> None:
    """Checks the hash chain (no entry edited, deleted or reordered) and, given
    anchors from a peer's log, its signed job records or by hand, that no anchored
    entry was cut off; and that the privacy budgets' charges are those the chain
    recorded (none deleted or lowered)."""
    from gateway.audit import anchors_in, verify_file
    from gateway.jobs import records
    from gateway.registry.budgets import disagreements

    known: list[tuple[int, str]] = []
    for text in anchors:
        seq, _, digest = text.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(f"{text!r} is not SEQ:HASH", param_hint="--anchor")
        known.append((int(seq), digest))
    if peer_db is not None:
        if not party:
            raise click.BadParameter("name this log's party", param_hint="--party")
        known += anchors_in(peer_db, party)
    signed = 0
    if ca_file is not None:
        for source in [database, *([peer_db] if peer_db is not None else [])]:
            checked = records.verify(source, ca_file)
            if checked.problems:
                raise click.ClickException(f"job records in {source} do NOT verify: {'; '.join(checked.problems)}")
            signed += checked.records
            known += checked.heads.get(party, []) if party else []
    verdict = verify_file(database, known)
    if not verdict.ok:
        raise click.ClickException(f"audit log is NOT intact: {verdict.problem} (verified {verdict.entries} entries)")
    budgets = disagreements(database)
    if budgets:
        raise click.ClickException(f"privacy budgets do NOT match the audit log: {'; '.join(budgets)}")
    click.echo(f"audit log intact: {verdict.entries} entries, head {verdict.head}"
               + (f"; {len(known)} anchors hold" if known else "")
               + (f"; {signed} signed job records verify" if ca_file is not None else ""))


@audit.command("list")
@connection
@click.option("--action", default="", help="only this action, e.g. ApproveJob, job.review, result.release, dp.charge")
@click.option("--subject", default="", help="only entries about this dataset, job or model")
@click.option("--actor", default="", help="only entries by this caller (issuer/subject)")
@click.option("--since", type=click.DateTime(), help="only entries at or after this time (UTC)")
@click.option("--until", type=click.DateTime(), help="only entries before this time (UTC)")
@click.option("--search", "text", default="", help="only entries containing this text (case-insensitive)")
@click.option("--format", "out_format", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
def list_entries(action: str, subject: str, actor: str, since: Any, until: Any, text: str, out_format: str,
                 **conn: Any) -> None:
    """Your gateway's audit entries, newest first (scope audit:read); jsonl or csv exports them."""
    from gateway.client.audit import as_row, export

    with make_client(**conn) as client:
        rows = run(lambda: [as_row(e) for e in client.audit.entries(action, subject, actor, since, until, text)])
    if out_format != "table":
        click.echo(export(rows, out_format), nl=False)
    else:
        for row in rows:
            details = " ".join(f"{k}={v}" for k, v in sorted(row["details"].items()))
            click.echo(f"{row['sequence']:>6}  {row['time'][:19]}  {row['actor']:24}  {row['action']:18}  "
                       f"{row['subject']:32}  {row['outcome']:10}  {details}".rstrip())


@audit.command("check")
@connection
def check(**conn: Any) -> None:
    """Asks your gateway to verify its whole chain (scope audit:read; `audit verify` checks a database file)."""
    with make_client(**conn) as client:
        verdict = run(client.audit.verify)
    if not verdict.intact:
        raise click.ClickException(f"audit log is NOT intact: {verdict.problem} (verified {verdict.entries} entries)")
    click.echo(f"audit log intact: {verdict.entries} entries, head {verdict.head}")


@audit.command("records")
@connection
@click.argument("job_id")
def job_records(job_id: str, **conn: Any) -> None:
    """A job's co-signed records at your gateway, each checked against the federation CA (scope audit:read)."""
    with make_client(**conn) as client:
        records = run(lambda: client.audit.records(job_id))
    if not records:
        raise click.ClickException(f"your gateway holds no signed record of job {job_id}")
    for record in records:
        verdict = "verified" if record.verified else f"NOT verified: {record.problem}"
        click.echo(f"{record.party_id:16}  {verdict}  {record.record}")
    if not all(record.verified for record in records):
        raise click.ClickException("some records do not verify")
