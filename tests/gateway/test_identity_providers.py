"""Enterprise identity: token issuers found by OIDC discovery at a real HTTPS
identity provider on loopback, RS256 and PS256 keys, scopes in `scp`, keys
refreshed on schedule, and issuers reloaded on SIGHUP without a restart."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from idpkit import Provider

from gateway.auth.issuers import IssuerConfig, parse_issuers
from gateway.auth.jwt import TokenVerifier
from gateway.client.sdk import Client
from gateway.federation import LocalFederation
from gateway.transport.tls import TlsIdentity
from mpc.errors import InvalidArgument, Unauthenticated


@pytest.fixture()
def idp(tmp_path: Path) -> Iterator[Provider]:
    provider = Provider(tmp_path / "idp")
    yield provider
    provider.close()


def test_discovered_keys_rsa_tokens_scp_scopes_and_rotation(idp: Provider) -> None:
    idp.add_key("r1")  # no "alg": an RSA key takes RS256 and PS256 tokens
    issuer = IssuerConfig(idp.url, discovery=True, refresh_s=0.5, scope_claim="scp", audience="api://mpcgate", ca=idp.ca)
    verifier = TokenVerifier("bank-a", {idp.url: issuer})
    for algorithm in ("RS256", "PS256"):
        who = verifier.verify(idp.token("r1", "api://mpcgate", ["jobs:read", "datasets:read"], algorithm))
        assert who.subject == "alice@bank-a.example" and who.scopes == {"jobs:read", "datasets:read"}
    assert verifier.verify(idp.token("r1", "api://mpcgate", "jobs:read jobs:submit")).scopes == {"jobs:read", "jobs:submit"}
    with pytest.raises(Unauthenticated, match="not for this gateway"):
        verifier.verify(idp.token("r1", "bank-a", ["jobs:read"]))

    idp.add_key("r2", alg="PS256")  # the provider rotates in a key that takes PS256 only
    with pytest.raises(Unauthenticated, match="no key 'r2'"):
        verifier.verify(idp.token("r2", "api://mpcgate", ["jobs:read"], "PS256"))
    time.sleep(0.6)
    verifier.refresh_due()
    assert verifier.verify(idp.token("r2", "api://mpcgate", ["jobs:read"], "PS256")).scopes == {"jobs:read"}
    with pytest.raises(Unauthenticated, match="algorithm does not match"):
        verifier.verify(idp.token("r2", "api://mpcgate", ["jobs:read"], "RS256"))


@pytest.mark.filterwarnings("ignore:The RSA key is 1024 bits")
def test_weak_or_unreachable_providers_are_named(idp: Provider, tmp_path: Path) -> None:
    idp.add_key("weak", bits=1024)
    with pytest.raises(InvalidArgument, match="1024 bits"):
        TokenVerifier("bank-a", {idp.url: IssuerConfig(idp.url, discovery=True, ca=idp.ca)})
    down = IssuerConfig("https://127.0.0.1:9", discovery=True)  # nothing listens: start, refuse its tokens, retry
    verifier = TokenVerifier("bank-a", {down.name: down})
    with pytest.raises(Unauthenticated, match="has no key"):
        verifier.verify(idp.token("weak", "bank-a", ["jobs:read"], issuer=down.name))
    for raw, says in (({"x": {"jwks_url": "http://idp/keys"}}, "https://"), ({"x": {"discovery": True}}, "https://"),
                      ({"x": {"scope_claim": "roles", "jwks_url": "https://idp/keys"}}, "scope_claim"),
                      ({"x": {}}, "needs jwks_files")):
        with pytest.raises(InvalidArgument, match=says):
            parse_issuers(raw, lambda p: tmp_path / p)


@pytest.mark.multiprocess
def test_a_gateway_trusts_a_discovered_provider_and_reloads_issuers_on_sighup(idp: Provider, tmp_path: Path) -> None:
    idp.add_key("r1")
    entry = f'[issuers."{idp.url}"]\ndiscovery = true\nscope_claim = "scp"\nca = "{idp.ca}"\nrefresh_s = 60\n'
    with LocalFederation(tmp_path / "fed", ["bank-a", "bank-b"], party_config={"bank-a": entry}) as fed:
        fed.start()
        operator = TlsIdentity.from_dir(fed.pki_dir, "operator")
        token = idp.token("r1", "bank-a", ["datasets:read", "jobs:read"], "PS256")
        with Client(fed.addresses["bank-a"], token, operator, server_party="bank-a") as client:
            assert client.list_jobs() == []
        config = fed.config_path("bank-a")
        config.write_text(config.read_text().replace(entry, ""))  # the bank stops trusting the provider
        os.kill(fed.pid("bank-a"), signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reloaded token issuers" not in fed.log_path("bank-a").read_text():
            assert time.monotonic() < deadline, "no reload logged"
            time.sleep(0.2)
        with Client(fed.addresses["bank-a"], token, operator, server_party="bank-a") as client, \
                pytest.raises(Unauthenticated, match="not trusted"):
            client.list_jobs()
