"""Every gateway enforces its own rules (issue: a hostile trial). Real gateway
processes on loopback with mutual TLS, a dealer, CrypTen workers: each test is a
regression for one finding, named in its docstring."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import jobs_pb2
from gateway.audit import anchors_in, verify_file
from gateway.federation import LocalFederation
from mpc.errors import InvalidArgument

pytestmark = pytest.mark.multiprocess

BANKS = demo_data.INSTITUTIONS
COLUMNS = demo_data.COLUMNS
ROWS = 199
BIG_ROWS = 120_000  # a vertical job this size spends seconds in cross-party products
VERTICAL = {"bank-a": ["income", "debt"], "bank-b": ["age"], "bank-c": ["credit_score"]}


def policy(receivers: tuple[str, ...] = ("bank-a",), approval: int = dpb.APPROVAL_MODE_AUTOMATIC,
           **extra: object) -> dpb.Policy:
    return dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=["stats.summary", "stats.describe", "stats.histogram"],
                      allowed_columns=COLUMNS, allowed_result_receivers=list(receivers), min_rows=50,
                      approval_mode=approval, **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    root = tmp_path_factory.mktemp("own-rules")
    with LocalFederation(root, BANKS, dealer=True, failure_timeout=5.0,
                         party_config={"bank-b": "allow_insecure_providers = false\ndrain_grace_s = 60\nmax_bins = 50"}) as federation:
        for bank in BANKS:
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv", demo_data.loans(bank, ROWS))
        federation.start()
        whole = demo_data.loans("bank-a", BIG_ROWS)  # one set of customers, split by column
        keys = np.array([f"c{i:07d}" for i in range(BIG_ROWS)])
        for bank, columns in VERTICAL.items():
            demo_data.write_csv(federation.data_dir(bank) / "customers.csv",
                                whole[:, [COLUMNS.index(c) for c in columns]], columns, key=keys)
        for bank in BANKS:
            with federation.client(bank) as client:
                client.register_dataset("loans", "loans.csv", policy())
                client.register_dataset("customers", "customers.csv", policy(), key_column="customer_id")
        yield federation


def _inputs() -> list[tuple[str, str, list[str]]]:
    return [(b, "loans", COLUMNS) for b in BANKS]


@contextmanager
def _policy_at(fed: LocalFederation, bank: str, changed: dpb.Policy, dataset: str = "loans") -> Iterator[None]:
    """`bank`'s data owner sets `changed` on a dataset for the block, then restores it."""
    with fed.client(bank) as owner:
        owner.update_policy(dataset, changed)
    try:
        yield
    finally:
        with fed.client(bank) as owner:
            owner.update_policy(dataset, policy())


def _until(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_a_participant_refuses_tfp_that_the_coordinator_allows(fed: LocalFederation) -> None:
    """Item 1: the coordinator (TFP allowed) made itself party 0 of a TFP job at a
    gateway whose config refuses TFP. Now bank-b refuses it: REJECTED everywhere."""
    with fed.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"], provider="TFP")
    assert job.state == "REJECTED"
    assert job.record.error.party_id == "bank-b" and job.record.error.reason == "POLICY_REFUSED"
    assert "TFP" in job.record.error.message
    _until(lambda: set(fed.states(job.id).values()) == {"REJECTED"})


def test_a_participant_refuses_a_dealer_its_config_does_not_name(fed: LocalFederation) -> None:
    """Item 1: a TTP job must use the dealer the party's own config names."""
    config = fed.config_path("bank-c")
    original = config.read_text()
    fed.stop("bank-c")
    config.write_text(original.replace('id = "dealer"', 'id = "other-dealer"'))
    try:
        fed.start("bank-c")
        with fed.client("bank-a") as client:
            job = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
        assert job.state == "REJECTED" and job.record.error.party_id == "bank-c", job.record
        assert "dealer" in job.record.error.message
    finally:
        fed.stop("bank-c")
        config.write_text(original)
        fed.start("bank-c")


def test_a_policy_tightened_after_approval_stops_the_job_before_data_is_read(fed: LocalFederation) -> None:
    """Item 2: bank-b removed the receiver while the job waited; it still ran and
    released. Now bank-b rechecks at start and the job fails everywhere."""
    with _policy_at(fed, "bank-c", policy(approval=dpb.APPROVAL_MODE_MANUAL)), fed.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
        assert job.state == "AWAITING_APPROVAL"
        with _policy_at(fed, "bank-b", policy(receivers=("bank-c",))):
            with fed.client("bank-c") as owner:
                owner.approve(job.id)
            job.wait(timeout=120)
        assert job.state == "FAILED", job.record
        assert job.record.error.party_id == "bank-b" and "bank-a" in job.record.error.message
        with pytest.raises(Exception, match="no result"):
            job.result()
    _until(lambda: set(fed.states(job.id).values()) == {"FAILED"})


def test_a_policy_tightened_while_running_stops_the_release(fed: LocalFederation) -> None:
    """Item 2: each party checks the receivers again right before it releases."""
    with fed.client("bank-a") as client:
        job = client.submit("stats.summary", [(b, "customers", c) for b, c in VERTICAL.items()],
                            receivers=["bank-a"], partitioning="vertical")
        _until(lambda: job.refresh().record.progress.percent >= 20 and job.state == "RUNNING")
        with _policy_at(fed, "bank-b", policy(receivers=("bank-c",)), "customers"):
            job.wait(timeout=120)
        assert job.state == "FAILED", job.record
        assert job.record.error.party_id == "bank-b" and "refused to release" in job.record.error.message
        with pytest.raises(Exception, match="no result"):
            job.result()


def test_a_file_changed_after_registration_is_refused_until_registered_again(fed: LocalFederation) -> None:
    """Item 3: a registered file shrunk to one row was read and revealed."""
    path = fed.data_dir("bank-b") / "loans.csv"
    original = path.read_text()
    path.write_text("\n".join(original.splitlines()[:2]) + "\n")
    try:
        with fed.client("bank-a") as client:
            job = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
            assert job.state == "REJECTED" and "changed since it was registered" in job.record.error.message
    finally:
        path.write_text(original)
    with fed.client("bank-b") as owner:
        owner.register_dataset("loans", "loans.csv", policy(), replace=True)
    with fed.client("bank-a") as client:
        assert client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120).state == "SUCCEEDED"


def test_histograms_withhold_small_bins_and_extremes_need_permission(fed: LocalFederation) -> None:
    """Item 4 (and 18): 294 fine bins rebuilt another bank's rows; min/max released
    one person's value. Now small bins are withheld, bins are labelled, and
    extremes need every party's policy to allow them."""
    edges = list(np.linspace(18, 90, 41))
    with fed.client("bank-a") as client:
        job = client.submit("stats.histogram", [(b, "loans", ["age"]) for b in BANKS], receivers=["bank-a"],
                            parameters={"bin_edges": edges}).wait(timeout=120)
        assert job.state == "SUCCEEDED", job.record
        result = job.result()
    counts = result["histogram"][0]
    assert result.column_labels["histogram"][0] == "[18, 19.8)" and result.suppressed["histogram"]
    per_bank = [np.histogram(demo_data.loans(b, ROWS)[:, 2], bins=edges)[0] for b in BANKS]
    small = np.any([(c > 0) & (c < 50) for c in per_bank], axis=0)
    assert np.all(np.isnan(counts[small])) and not np.any(np.isnan(counts[~small]))
    np.testing.assert_array_equal(counts[~small], np.sum(per_bank, axis=0)[~small])
    with fed.client("bank-a") as client:
        refused = client.submit("stats.describe", _inputs(), receivers=["bank-a"], parameters={"extremes": True})
        assert refused.state == "REJECTED" and "extremes" in refused.record.error.message


@pytest.mark.parametrize("parameters, message", [
    ({"bin_edges": []}, "at least two"),
    ({"bin_edges": [3, 1, 2]}, "increasing"),
    ({"bin_edges": [0, float("inf")]}, "finite"),
    ({"bin_edges": "0,1,2"}, "list of numbers"),
    ({"bin_edges": list(range(100))}, "at most"),
    ({}, "needs parameter 'bin_edges'"),
    ({"bin_edges": [0, 1], "bins": 3}, "no parameter 'bins'"),
])
def test_bad_parameters_are_invalid_at_submit(fed: LocalFederation, parameters: dict, message: str) -> None:
    """Item 6: a string bin_edges crashed workers with a raw ValueError."""
    with fed.client("bank-b") as client:  # bank-b's config: max_bins = 50
        started = time.monotonic()
        with pytest.raises(InvalidArgument, match=message):
            client.submit("stats.histogram", [(b, "loans", ["age"]) for b in BANKS], receivers=["bank-b"],
                          parameters=parameters)
        assert time.monotonic() - started < 5


def test_a_party_listed_twice_is_refused(fed: LocalFederation) -> None:
    """Item 7: a duplicate party was silently dropped (count 426, not 653)."""
    with fed.client("bank-a") as client, pytest.raises(InvalidArgument, match="more than one input"):
        client.submit("stats.describe", [*_inputs(), ("bank-b", "loans", COLUMNS)], receivers=["bank-a"])


def test_a_fractional_deadline_is_kept(fed: LocalFederation) -> None:
    """Item 8: 0.4 s meant no deadline."""
    with fed.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs(), receivers=["bank-a"], deadline_s=0.4).wait(timeout=60)
    assert job.state == "FAILED" and job.record.error.reason == "DEADLINE_EXCEEDED"
    assert job.record.spec.deadline.nanos == 400_000_000


def test_registration_refuses_duplicate_headers_and_nul_and_strips_a_bom(fed: LocalFederation) -> None:
    """Item 9."""
    data = fed.data_dir("bank-a")
    (data / "dup.csv").write_text("x,x\n1,2\n")
    (data / "bom.csv").write_bytes("\ufeffx,y\n1,2\n3,4\n".encode())
    with fed.client("bank-a") as client:
        with pytest.raises(InvalidArgument, match="more than once"):
            client.register_dataset("dup", "dup.csv", policy())
        with pytest.raises(InvalidArgument, match="NUL"):
            client.register_dataset("nul", "bom\x00.csv", policy())
        assert [c.name for c in client.register_dataset("bom", "bom.csv", policy()).columns] == ["x", "y"]


def test_a_second_gateway_on_a_used_port_fails_to_start(fed: LocalFederation) -> None:
    """Item 11: it started and took 9 of 20 connections (SO_REUSEPORT)."""
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(fed.config_path("bank-a"))],
                         capture_output=True, text=True, timeout=60, cwd=fed.root / "bank-a")
    assert run.returncode != 0 and "in use" in run.stderr + run.stdout


def test_every_party_ends_terminal_and_a_restarted_participant_reconciles(fed: LocalFederation) -> None:
    """Item 12: statuses stayed RUNNING after a cancel; a participant down while its
    job was queued showed it QUEUED forever."""
    with _policy_at(fed, "bank-c", policy(approval=dpb.APPROVAL_MODE_MANUAL)):
        with fed.client("bank-a") as client:
            job = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
            assert job.state == "AWAITING_APPROVAL"
            fed.stop("bank-b")  # its record: QUEUED
            job.cancel("changed our mind")
            assert {p.state for p in job.refresh().record.parties} == {jobs_pb2.JOB_STATE_CANCELLED}  # every party
        fed.start("bank-b")
        _until(lambda: fed.states(job.id)["bank-b"] == "CANCELLED")


def test_sigterm_lets_a_running_job_finish(fed: LocalFederation) -> None:
    """Item 13: SIGTERM failed running jobs at once (GATEWAY_RESTARTED)."""
    rows = 150_000
    for bank in BANKS:
        demo_data.write_csv(fed.data_dir(bank) / "big.csv", demo_data.loans(bank, rows))
        with fed.client(bank) as client:
            client.register_dataset("big", "big.csv", policy(), replace=True)
    with fed.client("bank-a") as client:
        job = client.submit("stats.summary", [(b, "big", COLUMNS) for b in BANKS], receivers=["bank-a"])
        _until(lambda: fed.states(job.id)["bank-b"] == "RUNNING")
        assert fed.stop("bank-b") == {"bank-b": 0}  # drains: waits for the job
        job.wait(timeout=120)
        assert job.state == "SUCCEEDED", job.record
    fed.start("bank-b")


def test_a_truncated_audit_log_is_detected_from_a_peers_anchors(fed: LocalFederation) -> None:
    """Item 14: deleting the last audit entries went unnoticed."""
    with fed.client("bank-a") as client:
        assert client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120).state == "SUCCEEDED"
    a_db, b_db = fed.root / "bank-a" / "gateway.db", fed.root / "bank-b" / "gateway.db"
    anchors = anchors_in(a_db, "bank-b")
    assert anchors and verify_file(b_db, anchors).ok
    assert anchors_in(b_db, "bank-a"), "participants anchor the coordinator's head too (even on success)"
    copy = fed.root / "b-truncated.db"
    import sqlite3

    with sqlite3.connect(b_db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        db.execute("DELETE FROM audit_log WHERE seq > ?", (max(s for s, _ in anchors) - 3,))
    assert verify_file(copy).ok  # the chain alone cannot tell
    verdict = verify_file(copy, anchors)
    assert not verdict.ok and "missing" in verdict.problem
    from click.testing import CliRunner

    from gateway.cli import main

    args = ["audit", "verify", "--peer-db", str(a_db), "--party", "bank-b", "--db"]
    assert CliRunner().invoke(main, [*args, str(b_db)]).exit_code == 0
    refused = CliRunner().invoke(main, [*args, str(copy)])
    assert refused.exit_code != 0 and "NOT intact" in refused.output


def test_every_party_holds_every_party_s_signed_record_and_tampering_is_caught(fed: LocalFederation) -> None:
    """Issue 15 item 3: co-signed job records; a tampered record or signature, and a
    log cut back past the head a party signed, fail `mpcgate audit verify`."""
    import json
    import sqlite3

    from click.testing import CliRunner

    from gateway.cli import main
    from gateway.jobs.records import spec_digest

    with fed.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120)
        assert job.state == "SUCCEEDED"
    dbs = {bank: fed.root / bank / "gateway.db" for bank in BANKS}

    def records_at(bank: str) -> list[tuple[str, bytes]]:
        with sqlite3.connect(dbs[bank]) as conn:
            return conn.execute("SELECT party, record FROM job_records WHERE job_id = ?", (job.id,)).fetchall()

    for bank in BANKS:  # the coordinator's stop carries them, just after the job ends there
        _until(lambda bank=bank: sorted(p for p, _ in records_at(bank)) == sorted(BANKS))
        rows = records_at(bank)
        for party, data in rows:
            record = json.loads(data)
            assert record["spec_sha256"] == spec_digest(job.record.spec) and record["state"] == "SUCCEEDED"
            assert bool(record["result_sha256"]) == (party == "bank-a")  # the receiver signs what it received
            assert len(record["inputs"]["loans"]) == 64
    ca = str(fed.pki_dir / "ca.crt")
    verify = ["audit", "verify", "--ca", ca, "--party", "bank-b", "--peer-db", str(dbs["bank-a"]), "--db"]
    passed = CliRunner().invoke(main, [*verify, str(dbs["bank-b"])])
    assert passed.exit_code == 0 and "signed job records verify" in passed.output, passed.output

    def tampered(change: str) -> str:
        copy = fed.root / f"b-{change}.db"
        copy.unlink(missing_ok=True)
        with sqlite3.connect(dbs["bank-b"]) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        with sqlite3.connect(copy) as conn:
            if change == "record":
                data = conn.execute("SELECT record FROM job_records WHERE job_id = ? AND party = 'bank-c'",
                                    (job.id,)).fetchone()[0]
                conn.execute("UPDATE job_records SET record = ? WHERE job_id = ? AND party = 'bank-c'",
                             (data.replace(b"SUCCEEDED", b"FAILED"), job.id))
            elif change == "signature":
                signature = bytearray(conn.execute("SELECT signature FROM job_records WHERE job_id = ? AND "
                                                   "party = 'bank-a'", (job.id,)).fetchone()[0])
                signature[-1] ^= 1
                conn.execute("UPDATE job_records SET signature = ? WHERE job_id = ? AND party = 'bank-a'",
                             (bytes(signature), job.id))
            else:  # cut back the log and its own records; bank-a's copy of bank-b's record remains
                head = max(s for s, _ in anchors_in(dbs["bank-a"], "bank-b"))
                conn.execute("DELETE FROM audit_log WHERE seq > ?", (head - 3,))
                conn.execute("DELETE FROM job_records")
        return CliRunner().invoke(main, [*verify, str(copy)]).output

    assert "tampered" in tampered("record")
    assert "do NOT verify" in tampered("signature")
    assert "NOT intact" in tampered("truncate")


def test_the_datasets_cli_registers_shows_repolices_and_deletes(fed: LocalFederation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Item 16: there was no command to register a dataset or set its policy."""
    from click.testing import CliRunner

    from gateway.cli import main

    env = {"MPCGATE_GATEWAY": fed.addresses["bank-c"], "MPCGATE_PARTY": "bank-c", "MPCGATE_TLS_DIR": str(fed.pki_dir),
           "MPCGATE_CLIENT": "operator", "MPCGATE_TOKEN": fed.token("bank-c")}
    strict = tmp_path / "strict.toml"
    strict.write_text('allowed_parties = ["bank-a"]\nallowed_columns = ["age"]\nmin_rows = 10\napproval = "manual"\n')
    loose = tmp_path / "loose.toml"
    loose.write_text('allowed_parties = ["bank-a", "bank-b"]\nallow_extremes = true\n')
    runner = CliRunner()
    done = runner.invoke(main, ["datasets", "register", "copy", "loans.csv", "--policy", str(strict)], env=env)
    assert done.exit_code == 0 and "199" in done.output, done.output
    assert "copy" in runner.invoke(main, ["datasets", "list"], env=env).output
    shown = runner.invoke(main, ["datasets", "show", "copy"], env=env).output
    assert "manual" in shown and "column age" in shown and "complete" in shown
    assert runner.invoke(main, ["datasets", "policy", "copy", str(loose)], env=env).exit_code == 0
    with fed.client("bank-c") as client:
        assert client.get_dataset("copy").policy.allow_extremes
    assert runner.invoke(main, ["datasets", "delete", "copy"], env=env).exit_code == 0
    gone = runner.invoke(main, ["datasets", "show", "copy"], env=env)
    assert gone.exit_code != 0 and "NOT_FOUND" in gone.output
    bad = tmp_path / "bad.toml"
    bad.write_text('allowed_partys = ["bank-a"]\n')
    refused = runner.invoke(main, ["datasets", "register", "copy", "loans.csv", "--policy", str(bad)], env=env)
    assert refused.exit_code != 0 and "allowed_partys" in refused.output
