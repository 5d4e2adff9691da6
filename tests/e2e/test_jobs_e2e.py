"""Joint jobs end to end: three gateways as separate processes on loopback with
mutual TLS, operators using the SDK, CrypTen workers per job per party."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import jobs_pb2
from gateway.federation import LocalFederation
from mpc.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.multiprocess

PARTIES = demo_data.INSTITUTIONS
COLUMNS = demo_data.COLUMNS
ROWS = 400
BIG_ROWS = 120_000  # a vertical job this size runs for several seconds
VERTICAL = {"bank-a": ["income", "debt"], "bank-b": ["age"], "bank-c": ["credit_score"]}


def policy(approval: int = dpb.APPROVAL_MODE_AUTOMATIC, kinds: tuple[str, ...] = ("stats.summary", "stats.describe"),
           parties: tuple[str, ...] = tuple(PARTIES), min_rows: int = 50) -> dpb.Policy:
    return dpb.Policy(allowed_parties=list(parties), allowed_job_kinds=list(kinds), allowed_columns=COLUMNS,
                      allowed_result_receivers=["bank-a"], min_rows=min_rows, approval_mode=approval)


SECRET = b"bank-b's webhook secret, 32 bytes"
HOOKED: list[tuple[dict[str, str], bytes]] = []  # what bank-b's webhook received: (headers, body)


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        HOOKED.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    root = tmp_path_factory.mktemp("federation")
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    (root / "notify.secret").write_bytes(SECRET)
    notify = f'notify = {{ url = "http://127.0.0.1:{hook.server_port}/hook", secret_file = "{root / "notify.secret"}" }}'
    # no warm workers here: these tests count each gateway's worker processes (the
    # pool is covered by test_workers.py and every other end-to-end suite)
    with LocalFederation(root, PARTIES, max_concurrent_jobs=1, failure_timeout=5.0, dealer=True,
                         party_config={p: "warm_workers = 0" + (f"\n{notify}" if p == "bank-b" else "")
                                       for p in PARTIES}) as fed:
        for rows, name in ((ROWS, "customers"), (BIG_ROWS, "big")):
            whole = demo_data.loans("bank-a", rows)  # one set of customers, split by column
            keys = np.array([f"c{i:07d}" for i in range(rows)])
            for party, columns in VERTICAL.items():
                part = whole[:, [COLUMNS.index(c) for c in columns]]
                demo_data.write_csv(fed.data_dir(party) / f"{name}.csv", part, columns, key=keys)
        for party in PARTIES:
            demo_data.write_csv(fed.data_dir(party) / "loans.csv", demo_data.loans(party, ROWS))
        fed.start()
        for party in PARTIES:
            with fed.client(party) as client:
                client.register_dataset("loans", "loans.csv", policy())
                for name in ("customers", "big"):
                    client.register_dataset(name, f"{name}.csv", policy(), key_column="customer_id")
        yield fed
    hook.shutdown()


def _inputs(dataset: str = "loans", columns: list[str] = COLUMNS) -> list[tuple[str, str, list[str]]]:
    if dataset in ("customers", "big"):
        return [(p, dataset, VERTICAL[p]) for p in PARTIES]
    return [(p, dataset, columns) for p in PARTIES]


def _pooled(dataset_rows: int = ROWS) -> np.ndarray:
    return np.vstack([demo_data.loans(p, dataset_rows) for p in PARTIES])


def _wait_everywhere(fed: LocalFederation, job_id: str, state: str, timeout: float = 30) -> None:
    """Until every gateway reports the job in `state`."""
    deadline = time.monotonic() + timeout
    while set(fed.states(job_id).values()) != {state}:
        assert time.monotonic() < deadline, fed.states(job_id)
        time.sleep(0.2)


def _worker_pids(fed: LocalFederation) -> dict[str, list[int]]:
    """Each gateway's job workers: its spawned children (not multiprocessing's resource tracker)."""
    found = {}
    for party in PARTIES:
        listing = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(fed.pid(party))],
                                 capture_output=True, text=True).stdout
        found[party] = [int(line.split()[0]) for line in listing.splitlines()
                        if "spawn_main" in line and "resource_tracker" not in line]
    return found


def test_horizontal_summary_matches_numpy(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs(), receivers=["bank-a"])
        events = list(job.watch(timeout=120))
        assert job.state == "SUCCEEDED", job.record
        assert events[-1].state == job.record.state
        assert max(e.progress.percent for e in events) == 100
        assert job.record.progress.rounds > 10 and job.record.progress.bytes_sent > 1000  # the busiest party's
        result = job.result()
    reference = demo_data.summary(_pooled())
    assert result.labels["mean"] == COLUMNS
    assert demo_data.max_relative_error(result.values, reference) < 1e-3
    assert result.provider == "TTP"
    for party in ("bank-b", "bank-c"):  # not receivers: nothing revealed there
        with federation.client(party) as client, pytest.raises(Exception, match="no result"):
            client.job(job.id).result()
    assert set(federation.states(job.id).values()) == {"SUCCEEDED"}


def test_vertical_summary_matches_numpy_and_checks_key_alignment(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs("customers"), receivers=["bank-a"], partitioning="vertical")
        job.wait(timeout=120)
        assert job.state == "SUCCEEDED", job.record
        result = job.result()
        assert result.labels["correlation"] == COLUMNS  # every party's columns, in rank order
        reference = demo_data.summary(demo_data.loans("bank-a", ROWS))
        assert demo_data.max_relative_error(result.values, reference) < 1e-3
        # the same columns over rows in a different order: refused, keys never revealed
        shuffled = [("bank-a", "customers", ["income", "debt"]), ("bank-b", "loans", ["age"])]
        with pytest.raises(InvalidArgument, match="key column"):
            client.submit("stats.describe", shuffled, receivers=["bank-a"], partitioning="vertical")


def test_unknown_dataset_column_or_party_is_invalid_before_anything_runs(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        cases = [
            [("bank-a", "loans", COLUMNS), ("bank-b", "nope", COLUMNS)],
            [("bank-a", "loans", COLUMNS), ("bank-c", "loans", ["income", "shoe_size"])],
            [("bank-a", "loans", COLUMNS), ("bank-z", "loans", COLUMNS)],
        ]
        for inputs in cases:
            with pytest.raises(InvalidArgument):
                client.submit("stats.describe", inputs, receivers=["bank-a"])
        started = [j for j in client.list_jobs() if j.record.started_at.seconds]
        assert all(j.state == "SUCCEEDED" for j in started)  # only earlier, valid jobs ever ran


def test_policy_refusal_at_one_party_rejects_everywhere_and_reads_no_data(federation: LocalFederation) -> None:
    with federation.client("bank-c") as owner:
        owner.update_policy("loans", policy(kinds=("stats.describe",)))
    try:
        with federation.client("bank-a") as client:
            job = client.submit("stats.summary", _inputs(), receivers=["bank-a"])
            assert job.state == "REJECTED"
            assert "bank-c" in job.record.error.message or job.record.error.party_id == "bank-c"
        states = federation.states(job.id)
        assert set(states.values()) == {"REJECTED"}, states
        for party in PARTIES:
            with federation.client(party) as client:
                assert not client.job(job.id).record.started_at.seconds  # no worker anywhere
    finally:
        with federation.client("bank-c") as owner:
            owner.update_policy("loans", policy())


def test_manual_approval_shows_the_owner_what_the_job_reads_and_reveals(federation: LocalFederation) -> None:
    """bank-b approves by hand and requires a purpose (issue 29): the job without
    one is refused at bank-b; bank-b lists what waits for it and sees, before it
    approves, the purpose, what is read and what each receiver learns (generated
    from the kind's release declaration, with bank-b's own protections)."""
    from mpc.catalogue.releases import RELEASES

    manual = policy(approval=dpb.APPROVAL_MODE_MANUAL)
    manual.require_purpose = True
    with federation.client("bank-b") as owner:
        owner.update_policy("loans", manual)
    try:
        with federation.client("bank-a") as client:
            silent = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
            assert silent.state == "REJECTED" and "requires every job to state its purpose" in silent.record.error.message
            assert silent.record.error.party_id == "bank-b"
            job = client.submit("stats.describe", _inputs(), receivers=["bank-a"], purpose="quarterly exposure report")
            assert job.state == "AWAITING_APPROVAL"
            with pytest.raises(FailedPrecondition):
                client.approve(job.id)  # bank-a has nothing to approve
            with federation.client("bank-b") as owner:
                waiting = owner.list_jobs([jobs_pb2.JOB_STATE_AWAITING_APPROVAL], party="bank-b")
                assert [j.id for j in waiting] == [job.id]
                assert owner.list_jobs([jobs_pb2.JOB_STATE_AWAITING_APPROVAL], kind="stats.summary") == []
                assert owner.list_jobs(since=datetime.now(UTC) + timedelta(hours=1)) == []
                seen = owner.job(job.id).record
                assert seen.spec.purpose == "quarterly exposure report"
                assert [(i.party_id, i.dataset, list(i.columns)) for i in seen.spec.inputs] == _inputs()
                by_receiver = {r.receiver: r for r in seen.reveals}
                assert set(by_receiver) == {"bank-a", ""}
                assert by_receiver["bank-a"].text == RELEASES["stats.describe"][0]
                assert "row count" in by_receiver[""].text and "power of two of the pooled range" in by_receiver[""].text
                assert by_receiver["bank-a"].protections.min_group_size == 50  # bank-b's min_rows (no min_group_size)
                assert by_receiver["bank-a"].protections.epsilon == 0 and not by_receiver["bank-a"].protections.kept_shared
                assert owner.approve(job.id).state == "QUEUED"
            told = _notified("job.awaiting_approval", job.id)  # bank-b's webhook, signed with its secret
            assert told["purpose"] == "quarterly exposure report" and told["party"] == "bank-b"
            assert told["inputs"][1] == {"party_id": "bank-b", "dataset": "loans", "columns": COLUMNS}
            job.wait(timeout=120)
            assert job.state == "SUCCEEDED"
            np.testing.assert_allclose(job.result()["mean"], _pooled().mean(axis=0), rtol=1e-3)
            assert _notified("job.ended", job.id)["state"] == "SUCCEEDED"
    finally:
        with federation.client("bank-b") as owner:
            owner.update_policy("loans", policy())


def _notified(event: str, job_id: str, timeout: float = 30) -> dict:
    """The payload of bank-b's `event` notification about the job, once its signature verifies."""
    from gateway.notify import verify

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for headers, body in list(HOOKED):
            sent = json.loads(body)
            if sent["event"] == event and sent["job_id"] == job_id:
                assert verify(SECRET, headers["X-Mpcgate-Timestamp"], body, headers["X-Mpcgate-Signature"])
                assert not verify(b"another secret of 32 bytes here!", headers["X-Mpcgate-Timestamp"], body,
                                  headers["X-Mpcgate-Signature"])
                return sent
        time.sleep(0.1)
    raise AssertionError(f"no {event} notification for {job_id}: {[json.loads(b)['event'] for _, b in HOOKED]}")


def _wait_running(client, job) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while job.refresh().state != "RUNNING" or job.record.progress.percent < 5:
        assert time.monotonic() < deadline and not job.done, job.record
        time.sleep(0.1)


def test_cancellation_mid_run_stops_every_party(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs("big"), receivers=["bank-a"], partitioning="vertical")
        _wait_running(client, job)
        assert all(_worker_pids(federation).values()), "every party runs a worker"
        job.cancel("operator changed their mind")
        assert job.state == "CANCELLED"
        _wait_everywhere(federation, job.id, "CANCELLED")
        deadline = time.monotonic() + 15
        while any(_worker_pids(federation).values()):
            assert time.monotonic() < deadline, _worker_pids(federation)
            time.sleep(0.2)


def test_a_job_cancelled_as_it_starts_leaves_no_worker_behind(federation: LocalFederation) -> None:
    """A cancellation that lands while a party prepares its worker (reading and
    checking its files) found no worker to stop, and the worker started anyway:
    it ran the cancelled job, and held the gateway's shutdown for its drain grace."""
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs("big"), receivers=["bank-a"], partitioning="vertical")
        deadline = time.monotonic() + 60
        while job.refresh().state != "RUNNING":
            assert time.monotonic() < deadline and not job.done, job.record
            time.sleep(0.01)
        job.cancel("at once")
        _wait_everywhere(federation, job.id, "CANCELLED")
        deadline = time.monotonic() + 5  # a worker's start-up and first input reading outlast this
        while any(_worker_pids(federation).values()):
            assert time.monotonic() < deadline, _worker_pids(federation)
            time.sleep(0.1)
        time.sleep(2)  # and none starts late
        assert not any(_worker_pids(federation).values()), _worker_pids(federation)


def test_a_killed_worker_fails_the_job_everywhere(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs("big"), receivers=["bank-a"], partitioning="vertical")
        _wait_running(client, job)
        workers = _worker_pids(federation)
        assert workers["bank-c"], "bank-c's worker should be running"
        os.kill(workers["bank-c"][0], signal.SIGKILL)
        job.wait(timeout=60)
        assert job.state == "FAILED"
        _wait_everywhere(federation, job.id, "FAILED")


def test_a_crash_fails_the_running_job_and_a_restart_resumes_queued_ones(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        running = client.submit("stats.summary", _inputs("big"), receivers=["bank-a"], partitioning="vertical")
        queued = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
        _wait_running(client, running)
        assert queued.refresh().state == "QUEUED"  # max_concurrent_jobs = 1
    federation.kill("bank-a")  # a crash, not a drain (SIGTERM lets running jobs finish)
    federation.start("bank-a")
    with federation.client("bank-a") as client:
        assert client.job(running.id).state == "FAILED"
        assert "restarted" in client.job(running.id).record.error.message
        resumed = client.job(queued.id)
        resumed.wait(timeout=120)
        assert resumed.state == "SUCCEEDED", resumed.record.error


def test_a_job_past_its_deadline_fails_everywhere(federation: LocalFederation) -> None:
    with federation.client("bank-a") as client:
        job = client.submit("stats.summary", _inputs("big"), receivers=["bank-a"], partitioning="vertical", deadline_s=1)
        job.wait(timeout=60)
        assert job.state == "FAILED"
        assert job.record.error.reason == "DEADLINE_EXCEEDED"
        _wait_everywhere(federation, job.id, "FAILED")


def test_the_cli_submits_watches_and_prints_results(federation: LocalFederation) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    env = {"MPCGATE_GATEWAY": federation.addresses["bank-a"], "MPCGATE_PARTY": "bank-a",
           "MPCGATE_TLS_DIR": str(federation.pki_dir), "MPCGATE_CLIENT": "operator",
           "MPCGATE_TOKEN": federation.token("bank-a")}
    args = ["jobs", "submit", "--kind", "stats.describe", "--receiver", "bank-a"]
    for party in PARTIES:
        args += ["--input", f"{party}:loans:{','.join(COLUMNS)}"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.output and "mean" in result.output and "income" in result.output
    listed = CliRunner().invoke(main, ["jobs", "list", "--kind", "stats.describe", "--participant", "bank-c"], env=env)
    assert listed.exit_code == 0 and "stats.describe" in listed.output
    job_id = listed.output.splitlines()[1].split()[0]
    shown = CliRunner().invoke(main, ["jobs", "get", job_id], env={**env, "COLUMNS": "2000"})  # rich: no wrapping
    assert shown.exit_code == 0, shown.output
    assert "reveals to bank-a" in shown.output and "reveals to every party" in shown.output
    assert "reads at bank-b" in shown.output and "loans: income" in shown.output
    with federation.client("bank-a") as client:  # pages of one job each: the same jobs, in the same order
        client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120)  # two at least, run alone
        every = [j.id for j in client.list_jobs()]
        assert len(every) > 1 and [j.id for j in client.list_jobs(page_size=1)] == every
    refused = CliRunner().invoke(main, ["jobs", "get", "no-such-job"], env=env)
    assert refused.exit_code != 0 and "NOT_FOUND" in refused.output


def test_the_audit_log_is_searched_exported_and_verified_through_its_service(federation: LocalFederation) -> None:
    """Issue 29: a DPO reads the audit log over gRPC with scope audit:read alone
    (no sqlite3 on the host), filters it by job, exports it, has it verified; an
    operator's token without the scope is refused, and the refusal is audited."""
    from click.testing import CliRunner

    from gateway.cli import main
    from mpc.errors import PermissionDenied

    with federation.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120)
    assert job.state == "SUCCEEDED"
    with federation.client("bank-b", token=federation.token("bank-b", scopes=["jobs:read"])) as operator:
        with pytest.raises(PermissionDenied, match="audit:read"):
            next(operator.audit.entries())
    with federation.client("bank-b", token=federation.token("bank-b", subject="dpo", scopes=["audit:read"])) as dpo:
        about = list(dpo.audit.entries(subject=job.id))
        assert about and {e.subject for e in about} == {job.id}
        assert [e.sequence for e in about] == sorted((e.sequence for e in about), reverse=True)  # newest first
        assert {"job.review", "result.release_check"} <= {e.action for e in about}, about
        reads = list(dpo.audit.entries(action="ListAuditEntries", actor=f"{federation.issuer('bank-b')}/dpo"))
        assert reads and reads[0].outcome == "OK"  # reading the log is audited too
        pages = [e.sequence for _, e in zip(range(4), dpo.audit.entries(action="ListAuditEntries", page_size=1))]
        assert pages == sorted(set(pages), reverse=True)  # each read adds an entry on top: no page repeats one
        refused = list(dpo.audit.entries(action="ListAuditEntries", actor=f"{federation.issuer('bank-b')}/operator",
                                         text="needs scope"))
        assert refused and refused[0].outcome == "PERMISSION_DENIED", refused
        assert dpo.audit.verify().intact
    env = {"MPCGATE_GATEWAY": federation.addresses["bank-b"], "MPCGATE_PARTY": "bank-b",
           "MPCGATE_TLS_DIR": str(federation.pki_dir), "MPCGATE_CLIENT": "operator",
           "MPCGATE_TOKEN": federation.token("bank-b", subject="dpo", scopes=["audit:read"])}
    exported = CliRunner().invoke(main, ["audit", "list", "--subject", job.id, "--format", "csv"], env=env)
    assert exported.exit_code == 0, exported.output
    lines = exported.output.splitlines()
    assert lines[0] == "sequence,time,actor,action,subject,outcome,details,hash" and len(lines) == len(about) + 1
    checked = CliRunner().invoke(main, ["audit", "check"], env=env)
    assert checked.exit_code == 0 and "audit log intact" in checked.output, checked.output
    deadline = time.monotonic() + 20
    while True:  # every party's signed record reaches bank-b with the coordinator's StopJob
        signed = CliRunner().invoke(main, ["audit", "records", job.id], env=env)
        if signed.exit_code == 0 and len(signed.output.splitlines()) == len(PARTIES) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert signed.exit_code == 0, signed.output
    assert [line.split()[:2] for line in signed.output.splitlines()] == [[p, "verified"] for p in PARTIES]
    missing = CliRunner().invoke(main, ["audit", "records", "no-such-job"], env=env)
    assert missing.exit_code != 0 and "holds no signed record" in missing.output


def test_a_large_registration_does_not_hold_up_other_calls(federation: LocalFederation) -> None:
    """Registration parses off the event loop: while a 400k-row file registers,
    the same gateway keeps answering GetJob (many answers arrive before the
    registration returns; on the loop, none could)."""
    import threading

    rows = 400_000
    demo_data.write_csv(federation.data_dir("bank-a") / "large.csv", np.tile(demo_data.loans("bank-a", 1000), (rows // 1000, 1)))
    with federation.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120)
        registered = threading.Event()

        def register() -> None:
            with federation.client("bank-a") as owner:
                owner.register_dataset("large", "large.csv", dpb.Policy())
            registered.set()

        thread = threading.Thread(target=register)
        thread.start()
        answers = 0
        while not registered.is_set():
            client.job(job.id)
            answers += 1
        thread.join()
        client.delete_dataset("large")
    assert answers >= 10, answers


def test_a_peer_that_comes_back_is_proposed_to_at_once(federation: LocalFederation) -> None:
    """A proposal to a peer that is down is refused, naming it. Once the peer is
    back, the next job reaches it at once: gRPC fails every call on a channel
    between reconnection attempts, and by default those grow 1.6x from 1 s while a
    peer stays down (after 10 s down, a 6.5 s gap), so the job submitted right
    after the restart was refused as unreachable (as at start-up, when a gateway
    greeted its peers before they listened)."""
    federation.stop("bank-c")
    try:
        with federation.client("bank-a") as client:
            down = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
            assert down.state == "REJECTED" and "bank-c" in down.record.error.message
            time.sleep(10)  # the peer stays down while bank-a keeps trying it
            federation.start("bank-c")
            job = client.submit("stats.describe", _inputs(), receivers=["bank-a"]).wait(timeout=120)
            assert job.state == "SUCCEEDED", job.record.error
    finally:
        federation.stop("bank-c")
        federation.start("bank-c")


def test_a_dataset_that_requires_dp_refuses_exact_jobs_and_answers_private_ones(federation: LocalFederation) -> None:
    """Each party's own policy: require_dp and its clipping bounds (issue 15)."""
    bounds = {"income": dpb.ClipBounds(lower=0, upper=300_000), "age": dpb.ClipBounds(lower=18, upper=100)}
    for party in PARTIES:
        with federation.client(party) as client:
            private = policy(kinds=("stats.describe", "model.linear_regression"))
            private.require_dp = party == "bank-b"
            if party == "bank-c":  # pure epsilon: charges add up
                private.dp_budget.CopyFrom(dpb.PrivacyBudget(epsilon=10.0, delta=0.0))
            for column, pair in bounds.items():
                private.dp_bounds[column].CopyFrom(pair)
            client.register_dataset("private", "loans.csv", private, replace=True)
    inputs = _inputs("private", ["income", "age"])
    with federation.client("bank-a") as client:
        exact = client.submit("stats.describe", inputs, receivers=["bank-a"])
        assert exact.state == "REJECTED" and "requires differential privacy" in exact.record.error.message
        unbounded = client.submit("stats.describe", _inputs("private", ["income", "debt"]), receivers=["bank-a"],
                                  parameters={"dp": {"epsilon": 1.0}})
        assert unbounded.state == "REJECTED" and "no dp_bounds for columns debt" in unbounded.record.error.message
        job = client.submit("stats.describe", inputs, receivers=["bank-a"], parameters={"dp": {"epsilon": 8.0}})
        assert job.wait(timeout=120).state == "SUCCEEDED", job.record.error
        result = job.result()
    pooled = _pooled()[:, [COLUMNS.index("income"), COLUMNS.index("age")]]
    clipped = np.clip(pooled, [0, 18], [300_000, 100])
    noise = result.values["sum_noise_std"]
    assert np.allclose(noise, np.sqrt(2) * 2 / (8.0 / 4) * np.array([150_000, 41]))
    assert np.all(np.abs(result.values["sum"] - clipped.sum(axis=0)) < 8 * noise)
    assert list(result.values["count"]) == [len(pooled)] * 2
    with federation.client("bank-a") as client:  # bank-c's budget: 8 of 10 spent
        over = client.submit("stats.describe", inputs, receivers=["bank-a"], parameters={"dp": {"epsilon": 4.0}})
        assert over.state == "REJECTED" and "has 2 left" in over.record.error.message, over.record.error
    federation.stop("bank-c")
    federation.start("bank-c")  # the charges are in its database
    with federation.client("bank-c") as client:
        spent = client.get_dataset("private").dp_spent
        charged = client.job(job.id).record
    assert spent.epsilon == 8.0 and spent.jobs == 1
    assert [(c.job_id, c.dataset, c.epsilon, c.released) for c in spent.charges] == [(job.id, "private", 8.0, True)]
    assert abs(spent.charges[0].charged_at.seconds - time.time()) < 600  # the budget spent over time
    assert [(c.dataset, c.epsilon, c.released) for c in charged.charges] == [("private", 8.0, True)]
    assert all(r.protections.epsilon == 8.0 for r in charged.reveals)
    with federation.client("bank-a") as client:  # a model under dp: charged by the same plan
        model = client.submit("model.linear_regression", inputs, receivers=["bank-a"],
                              parameters={"label": "income", "dp": {"epsilon": 1.5}})
        assert model.wait(timeout=120).state == "SUCCEEDED", model.record.error
        assert set(model.result().values) >= {"coefficients", "intercept", "r2"}
    with federation.client("bank-c") as client:
        assert client.get_dataset("private").dp_spent.epsilon == 9.5
    with federation.client("bank-a") as client:  # bank-c's budget is pure epsilon: no delta to charge
        gaussian = client.submit("stats.describe", inputs, receivers=["bank-a"],
                                 parameters={"dp": {"epsilon": 0.1, "delta": 1e-6, "mechanism": "gaussian"}})
        assert gaussian.state == "REJECTED" and "cannot hold this job's delta" in gaussian.record.error.message


def test_the_gateways_ran_every_job_above_without_loading_torch(federation: LocalFederation) -> None:
    """The control plane validates, reviews, plans privacy charges, runs and releases
    jobs (horizontal, vertical, dp, models: the tests above) without torch or
    CrypTen: only its worker processes load them."""
    with federation.client("bank-a") as client:
        job = client.submit("stats.describe", _inputs(), receivers=["bank-a"])
        assert job.wait(timeout=120).state == "SUCCEEDED", job.record.error
    for party in PARTIES:
        libraries = Path(f"/proc/{federation.pid(party)}/maps").read_text()
        assert "libtorch" not in libraries, f"{party}'s gateway process loaded torch"
