"""`mpcgate doctor`: a sound config passes every check; a deliberately broken one
is reported piece by piece, each failure naming what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.federation import LocalFederation
from gateway.transport import pki

pytestmark = pytest.mark.multiprocess

BANKS = ["bank-a", "bank-b", "bank-c", "bank-d"]


def doctor(config: Path) -> tuple[int, list[str]]:
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "doctor", "--config", str(config)],
                         capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout.splitlines()


def test_a_sound_config_passes_and_each_broken_piece_is_named(tmp_path: Path) -> None:
    with LocalFederation(tmp_path, BANKS, dealer=True) as fed:
        fed.start()
        fed.stop("bank-d")
        sound = fed.config_path("bank-a").read_text().replace(f'bank-d = "{fed.addresses["bank-d"]}"\n', "")
        here = fed.config_path("bank-a").parent  # (relative paths resolve against the config's folder)
        (here / "sound.toml").write_text(sound)
        code, lines = doctor(here / "sound.toml")
        assert code == 0, lines
        assert [line.split(":")[0] for line in lines] == [
            "ok    config", "ok    certificate", "ok    CA certificate", "ok    data directory",
            "ok    database folder", "ok    peer bank-b", "ok    peer bank-c", "ok    peer dealer"]
        assert "lists bank-a, clock" in lines[5], lines

        pki.issue(fed.pki_dir, "mallory")  # the federation's CA, but no gateway lists it
        stranger = sound.replace('party_id = "bank-a"', 'party_id = "mallory"').replace("bank-a.crt", "mallory.crt")
        (here / "stranger.toml").write_text(stranger.replace("bank-a.key", "mallory.key"))
        code, lines = doctor(here / "stranger.toml")
        assert code == 1 and "does not list mallory as a peer" in lines[5], lines

        pki.init_ca(here / "other-ca")  # a certificate of another CA: every peer refuses it
        pki.issue(here / "other-ca", "bank-a", out_dir=here / "other")
        (here / "foreign.toml").write_text(sound.replace(str(fed.pki_dir / "bank-a.crt"), str(here / "other" / "bank-a.crt"))
                                           .replace(str(fed.pki_dir / "bank-a.key"), str(here / "other" / "bank-a.key")))
        code, lines = doctor(here / "foreign.toml")
        assert code == 1 and "refuses this party's certificate" in lines[5], lines

        broken = (fed.config_path("bank-a").read_text()
                  .replace(f'bank-b = "{fed.addresses["bank-b"]}"', f'bank-b = "{fed.addresses["bank-c"]}"')
                  .replace(f'bank-c = "{fed.addresses["bank-c"]}"', 'bank-c = "no-such-host.invalid:7000"')
                  .replace(f'bank-d = "{fed.addresses["bank-d"]}"', f'bank-d = "127.0.0.1:{fed.metrics_ports["bank-b"]}"')
                  .replace(f'address = "{fed.dealer_address}"', f'address = "{fed.addresses["bank-d"]}"'))
        (here / "broken.toml").write_text(broken)  # (bank-d's own gateway is stopped)
        code, lines = doctor(here / "broken.toml")
        assert code == 1
        failed = {line.split(":")[0].removeprefix("FAIL  "): line for line in lines if line.startswith("FAIL")}
        assert set(failed) == {"peer bank-b", "peer bank-c", "peer bank-d", "peer dealer"}, lines
        assert "is party 'bank-c', not 'bank-b'" in failed["peer bank-b"]
        assert "cannot resolve no-such-host.invalid:7000" in failed["peer bank-c"]
        assert f"TLS with 127.0.0.1:{fed.metrics_ports['bank-b']} failed" in failed["peer bank-d"]
        assert f"cannot connect to {fed.addresses['bank-d']}" in failed["peer dealer"]

        code, lines = doctor(fed.root / "dealer" / "dealer.toml")  # the dealer's config; bank-d is down
        assert code == 1 and lines[0].startswith("ok    config") and "(dealer dealer)" in lines[0], lines
        assert [line.split(":")[0] for line in lines[1:]] == [
            "ok    certificate", "ok    CA certificate", "ok    party bank-a", "ok    party bank-b", "ok    party bank-c",
            "FAIL  party bank-d"], lines
        assert "is bank-a, mutual TLS accepted" in lines[3] and "cannot connect to" in lines[6], lines

        wrong_cert = sound.replace("bank-a.crt", "bank-b.crt")
        (here / "wrong-cert.toml").write_text(wrong_cert)
        code, lines = doctor(here / "wrong-cert.toml")
        assert code == 1 and "names party 'bank-b', the config says 'bank-a'" in lines[1], lines
        assert all(line.startswith("FAIL  peer") for line in lines if "peer" in line), lines


def test_an_unreadable_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("party_id = 'bank-a'\nlisten = 'nowhere'\n")
    code, lines = doctor(tmp_path / "bad.toml")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("FAIL  config:"), lines


def test_an_unreachable_peer_is_named_with_its_address_at_start_up_and_at_submit(tmp_path: Path) -> None:
    import time

    from gateway import demo_data
    from gateway.api.gateway.v1 import datasets_pb2 as dpb
    from mpc.errors import MpcgateError

    with LocalFederation(tmp_path, ["bank-a", "bank-b"]) as fed:
        fed.start("bank-a")  # bank-b is not up
        expected = f"peer bank-b is not reachable yet: party bank-b ({fed.addresses['bank-b']})"
        deadline = time.monotonic() + 30
        while expected not in fed.log_path("bank-a").read_text():
            assert time.monotonic() < deadline, fed.log_path("bank-a").read_text()[-2000:]
            time.sleep(0.2)
        demo_data.write_csv(fed.data_dir("bank-a") / "loans.csv", demo_data.loans("bank-a", 50))
        policy = dpb.Policy(allowed_parties=["bank-a", "bank-b"], allowed_job_kinds=["stats.summary"],
                            allowed_columns=demo_data.COLUMNS, allowed_result_receivers=["bank-a"], min_rows=10,
                            approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
        with fed.client("bank-a") as client:
            client.register_dataset("loans", "loans.csv", policy)
            inputs = [("bank-a", "loans", demo_data.COLUMNS), ("bank-b", "loans", demo_data.COLUMNS)]
            try:
                job = client.submit("stats.summary", inputs, receivers=["bank-a"], provider="TFP")
                message = job.wait(timeout=60).record.error.message
            except MpcgateError as err:
                message = err.message
        assert f"party bank-b ({fed.addresses['bank-b']})" in message, message
