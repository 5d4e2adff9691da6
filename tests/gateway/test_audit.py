"""The audit log's hash chain: intact logs verify; any single edit, deletion or
swap is found, and so named by `mpcgate audit verify`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.audit import AuditLog, verify_file
from gateway.cli import main


@pytest.fixture()
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.db"
    log = AuditLog(path)
    for i in range(6):
        log.append(f"bank-a-idp/user{i}", "job.submit", f"job-{i}", "ok", {"kind": "stats.describe"})
    log.close()
    return path


def _edit(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


def test_untouched_log_verifies(log_path: Path) -> None:
    verdict = verify_file(log_path)
    assert verdict.ok and verdict.entries == 6
    result = CliRunner().invoke(main, ["audit", "verify", "--db", str(log_path)])
    assert result.exit_code == 0 and "6 entries" in result.output


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit_log SET outcome = 'denied' WHERE seq = 3", "entry 3 was altered"),
        ("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 6", "entry 6 was altered"),
        ("DELETE FROM audit_log WHERE seq = 2", "entry 2 is missing"),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 6", "entry 6 is missing"),
    ],
    ids=["edit outcome", "edit actor", "delete", "renumber"],
)
def test_any_single_change_is_detected(log_path: Path, tamper: str, problem: str) -> None:
    _edit(log_path, tamper)
    verdict = verify_file(log_path)
    assert not verdict.ok
    assert problem in verdict.problem
    result = CliRunner().invoke(main, ["audit", "verify", "--db", str(log_path)])
    assert result.exit_code != 0 and "NOT intact" in result.output


def test_swapping_two_entries_contents_is_detected(log_path: Path) -> None:
    db = sqlite3.connect(log_path)
    fourth, fifth = (db.execute("SELECT time, actor, action, subject, outcome, details, prev, hash FROM audit_log "
                                "WHERE seq = ?", (n,)).fetchone() for n in (4, 5))
    update = "UPDATE audit_log SET time=?, actor=?, action=?, subject=?, outcome=?, details=?, prev=?, hash=? WHERE seq=?"
    db.execute(update, (*fifth, 4))
    db.execute(update, (*fourth, 5))
    db.commit()
    db.close()
    verdict = verify_file(log_path)
    assert not verdict.ok and "entry 4" in verdict.problem


def test_get_job_records_checks_each_party_s_signature_against_the_ca(tmp_path: Path) -> None:
    """What GetJobRecords (and the console's job page) shows: each stored record
    verified, or what is wrong with it: a record edited after signing, a
    certificate from another CA, a record filed under another party's name."""
    from gateway.api.gateway.v1 import jobs_pb2 as pb
    from gateway.contract import states
    from gateway.jobs.records import JobRecords
    from gateway.transport import pki
    from gateway.transport.tls import TlsIdentity

    pki.init_ca(tmp_path / "pki")
    pki.init_ca(tmp_path / "rogue")
    for party in ("bank-a", "bank-b"):
        pki.issue(tmp_path / "pki", party)
    pki.issue(tmp_path / "rogue", "bank-c")
    job = pb.Job(job_id="j1", coordinator="bank-a", spec=pb.JobSpec(kind="stats.describe"))
    signed = []
    for directory, party in ((tmp_path / "pki", "bank-a"), (tmp_path / "pki", "bank-b"), (tmp_path / "rogue", "bank-c")):
        identity = TlsIdentity.from_dir(directory, party)
        store = JobRecords(tmp_path / f"{party}.db", party, identity.key_pem, identity.cert_pem)
        signed.append(store.sign(job, states.SUCCEEDED, "", (3, "ab" * 32), {}, None))
    ca = TlsIdentity.from_dir(tmp_path / "pki", "bank-a").ca_pem
    edited = signed[1].record.replace(b'"SUCCEEDED"', b'"FAILED"')
    held = JobRecords(tmp_path / "gateway.db", "bank-a", TlsIdentity.from_dir(tmp_path / "pki", "bank-a").key_pem,
                      TlsIdentity.from_dir(tmp_path / "pki", "bank-a").cert_pem)
    held.keep("j1", [signed[0], type(signed[1])(party_id="bank-b", record=edited, signature=signed[1].signature,
                                                certificate=signed[1].certificate), signed[2]])
    held.keep("j2", [type(signed[0])(party_id="bank-b", record=signed[0].record, signature=signed[0].signature,
                                     certificate=signed[0].certificate)])
    verdicts = {r.party_id: (r.verified, r.problem) for r in held.checked("j1", ca)}
    assert verdicts == {"bank-a": (True, ""), "bank-b": (False, "the signature does not match the record (tampered)"),
                        "bank-c": (False, "its certificate was not issued by the federation CA")}
    assert [(r.verified, r.problem) for r in held.checked("j2", ca)] == [(False, "its certificate names another party")]
    assert held.checked("unknown", ca) == []
