"""A gateway config with a bad field fails at start with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import config
from gateway.cli import main
from gateway.transport import pki
from mpc.errors import InvalidArgument


@pytest.fixture()
def raw(tmp_path: Path) -> dict:
    pki.init_ca(tmp_path)
    pki.issue(tmp_path, "bank-a")
    (tmp_path / "data").mkdir()
    return {"party_id": "bank-a", "listen": "127.0.0.1:0", "data_dir": "data", "database": "g.db",
            "tls": {"ca": "ca.crt", "cert": "bank-a.crt", "key": "bank-a.key"}, "peers": {"bank-b": "127.0.0.1:1"}}


def test_valid_config_parses(raw: dict, tmp_path: Path) -> None:
    parsed = config.parse(raw, tmp_path)
    assert parsed.party_id == "bank-a" and parsed.tls.cert == tmp_path / "bank-a.crt" and parsed.notify is None
    (tmp_path / "hook.secret").write_text("sixteen or more bytes\n")
    hooked = config.parse({**raw, "notify": {"url": "https://dpo.example/hook", "secret_file": "hook.secret"}}, tmp_path)
    assert hooked.notify is not None and hooked.notify.secret == b"sixteen or more bytes"
    assert parsed.console_listen == "" and config.parse({**raw, "console_listen": "127.0.0.1:8443"},
                                                          tmp_path).console_listen == "127.0.0.1:8443"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("party_id"), "party_id"),
        (lambda r: r.update(party_id="Bank A"), "party_id"),
        (lambda r: r.update(listen="nowhere"), "listen"),
        (lambda r: r["tls"].update(cert="missing.crt"), "tls.cert"),
        (lambda r: r.update(peers={"bank-a": "127.0.0.1:1"}), "peers"),
        (lambda r: r.update(peers={"BAD_NAME": "x:1"}), "peers.BAD_NAME"),
        (lambda r: r.update(data_dir="nope"), "data_dir"),
        (lambda r: r.update(max_concurrent_jobs=0), "max_concurrent_jobs"),
        (lambda r: r.update(failure_timeout="soon"), "failure_timeout"),
        (lambda r: r.update(allow_insecure_providers="yes"), "allow_insecure_providers"),
        (lambda r: r.update(issuers={"idp": ["missing.json"]}), "issuers.idp"),
        # misspellings were silently ignored
        (lambda r: r.update(max_concurent_jobs=4), "max_concurent_jobs"),
        (lambda r: r.update(allow_insecure_provider=True), "allow_insecure_provider"),
        (lambda r: r["tls"].update(certificate="x"), "tls.certificate"),
        (lambda r: r.update(max_bins=0), "max_bins"),
        (lambda r: r.update(warm_workers=-1), "warm_workers"),
        (lambda r: r.update(drain_grace_s=-1), "drain_grace_s"),
        (lambda r: r.update(notify={"url": "http://dpo.example/hook"}), "notify.url"),  # plain http leaves the host
        (lambda r: r.update(notify={"url": "https://dpo.example/hook", "secret_file": "none"}), "notify.secret_file"),
        (lambda r: r.update(notify={"url": "https://dpo.example/hook"}), "notify.secret_file"),  # always signed
        (lambda r: r.update(notify={"url": "https://dpo.example/hook", "token": "x"}), "notify"),
        (lambda r: r.update(console_listen="8443"), "console_listen"),
        (lambda r: r.update(console_listen=8443), "console_listen"),
    ],
)
def test_bad_fields_are_named(raw: dict, tmp_path: Path, change, field: str) -> None:  # type: ignore[no-untyped-def]
    change(raw)
    with pytest.raises(InvalidArgument, match=field.replace(".", r"\.")):
        config.parse(raw, tmp_path)


def test_serve_fails_fast_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('party_id = "bank-a"\nlisten = 7443\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code != 0 and "'listen'" in result.output


def test_the_dealer_config_refuses_unknown_keys(tmp_path: Path) -> None:
    from gateway.dealer import config as dealer_config

    path = tmp_path / "dealer.toml"
    path.write_text('dealer_id = "dealer"\nlisten = "127.0.0.1:0"\nfailure_timout = 3\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
                    '[parties]\nbank-a = "127.0.0.1:1"\n')
    with pytest.raises(InvalidArgument, match="failure_timout"):
        dealer_config.load(path)


def test_policy_files_parse_and_refuse_unknown_keys(tmp_path: Path) -> None:
    from gateway.api.gateway.v1 import datasets_pb2 as dpb
    from gateway.contract import policies

    policy = policies.parse({"allowed_parties": ["bank-b"], "min_rows": 50, "min_group_size": 10,
                             "small_groups": "refuse", "allow_extremes": True, "approval": "manual"})
    assert policy.small_groups == dpb.SMALL_GROUP_ACTION_REFUSE and policy.approval_mode == dpb.APPROVAL_MODE_MANUAL
    assert policies.parse(policies.describe(policy)) == policy
    with pytest.raises(InvalidArgument, match="allowed_partys"):
        policies.parse({"allowed_partys": ["bank-b"]})
    with pytest.raises(InvalidArgument, match="small_groups"):
        policies.parse({"small_groups": "merge"})
    private = policies.parse({"require_dp": True, "dp_bounds": {"income": [0, 5e5], "age": [18, 100]},
                              "dp_budget": {"epsilon": 10, "delta": 1e-6}, "require_purpose": True})
    assert private.require_dp and private.require_purpose and private.dp_bounds["age"].upper == 100 and private.dp_budget.delta == 1e-6
    assert policies.parse(policies.describe(private)) == private
    for bad in ({"epsilon": 0}, {"epsilon": 1, "delta": 1}, {"epsilon": 1, "rho": 2}, {"epsilon": True}, 5):
        with pytest.raises(InvalidArgument, match="dp_budget"):
            policies.parse({"dp_budget": bad})
    for bad in ({"income": [5, 5]}, {"income": [0]}, {"income": [0, float("inf")]}, {"income": ["0", 1]}, [0, 1]):
        with pytest.raises(InvalidArgument, match="dp_bounds"):
            policies.parse({"dp_bounds": bad})


def test_model_policy_files_parse_and_refuse_unknown_keys() -> None:
    from gateway.api.gateway.v1 import datasets_pb2 as dpb
    from gateway.contract import policies

    policy = policies.parse_model({"allowed_parties": ["bank-b"], "allowed_datasets": ["bank-b/*"],
                                   "allowed_job_kinds": ["model.predict"], "approval": "manual"})
    assert list(policy.allowed_datasets) == ["bank-b/*"] and policy.approval_mode == dpb.APPROVAL_MODE_MANUAL
    assert not policy.allowed_result_receivers  # default deny
    with pytest.raises(InvalidArgument, match="min_rows"):
        policies.parse_model({"min_rows": 5})  # a dataset's key, not a model's
    with pytest.raises(InvalidArgument, match="allowed_parties.*list of strings"):
        policies.parse_model({"allowed_parties": "bank-b"})
