"""The gateway's public API on a real server (real port, mutual TLS, real signed
tokens): every scope on every RPC, every kind of bad token, and who may connect."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    datasets_pb2,
    datasets_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
)
from gateway.auth.interceptor import SCOPES
from gateway.auth.jwt import SCOPES as ALL_SCOPES
from gateway.auth.jwt import generate_issuer_key, issue_token
from gateway.federation import OPERATOR, LocalFederation
from gateway.transport import pki, rpc
from gateway.transport.tls import TlsIdentity

PARTY = "bank-a"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    with LocalFederation(tmp_path_factory.mktemp("auth"), [PARTY, "bank-b"]) as federation:
        federation.start(PARTY)
        yield federation


@pytest.fixture(scope="module")
def channel(fed: LocalFederation) -> Iterator[grpc.Channel]:
    with rpc.secure_channel(TlsIdentity.from_dir(fed.pki_dir, OPERATOR), fed.addresses[PARTY], PARTY) as ch:
        yield ch


def _call(channel: grpc.Channel, method: str, token: str | None) -> grpc.StatusCode:
    """Calls `method` with an empty request; returns the status code it ended with."""
    service, name = method.rsplit("/", 1)
    module, stubs = next((m, g) for key, (m, g) in {
        "JobService": (jobs_pb2, jobs_pb2_grpc), "DatasetService": (datasets_pb2, datasets_pb2_grpc),
        "ModelService": (models_pb2, models_pb2_grpc), "AuditService": (audit_pb2, audit_pb2_grpc)}.items()
        if key in service)
    stub = getattr(stubs, f"{service.rsplit('.', 1)[-1]}Stub")(channel)
    request = getattr(module, f"{name}Request")()
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    try:
        response = getattr(stub, name)(request, metadata=metadata, timeout=10)
        if name == "WatchJob":
            list(response)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", sorted(SCOPES))
def test_every_rpc_needs_its_scope(fed: LocalFederation, channel: grpc.Channel, method: str) -> None:
    needed = SCOPES[method]
    others = [s for s in ALL_SCOPES if s != needed]
    assert _call(channel, method, fed.token(PARTY, scopes=others)) == grpc.StatusCode.PERMISSION_DENIED
    allowed = _call(channel, method, fed.token(PARTY, scopes=[needed]))
    assert allowed not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def _forge(claims: dict, key: object, algorithm: str, kid: str = "k1") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def _claims(fed: LocalFederation, **overrides: object) -> dict:
    now = int(time.time())
    claims = {"iss": fed.issuer(PARTY), "sub": "mallory", "aud": PARTY, "iat": now, "nbf": now, "exp": now + 600,
              "scope": " ".join(ALL_SCOPES)}
    claims.update(overrides)
    return claims


def _signing_key(fed: LocalFederation) -> object:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key((fed.issuer_dir(PARTY) / "k1.key").read_bytes(), password=None)


def test_bad_tokens_are_unauthenticated(fed: LocalFederation, channel: grpc.Channel, tmp_path: Path) -> None:
    key = _signing_key(fed)
    now = int(time.time())
    other_key, _ = generate_issuer_key(tmp_path / "rogue", "k1")
    good = fed.token(PARTY)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    cases = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": _forge(_claims(fed, iat=now - 7200, nbf=now - 7200, exp=now - 3600), key, "EdDSA"),
        "not yet valid": _forge(_claims(fed, nbf=now + 3600, exp=now + 7200), key, "EdDSA"),
        "wrong audience": _forge(_claims(fed, aud="bank-b"), key, "EdDSA"),
        "wrong issuer": issue_token(other_key, "k1", "rogue-idp", "mallory", PARTY, ALL_SCOPES, 600),
        "trusted issuer name, wrong key": issue_token(other_key, "k1", fed.issuer(PARTY), "mallory", PARTY, ALL_SCOPES, 600),
        "unknown kid": _forge(_claims(fed), key, "EdDSA", kid="k9"),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "alg none": jwt.encode(_claims(fed), None, algorithm="none", headers={"kid": "k1"}),
        "HMAC": jwt.encode(_claims(fed), "a-shared-secret-of-32-bytes-long!!", algorithm="HS256", headers={"kid": "k1"}),
        "ES256 key not trusted": _forge(_claims(fed), ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "no subject": _forge({k: v for k, v in _claims(fed).items() if k != "sub"}, key, "EdDSA"),
    }
    for name, token in cases.items():
        assert _call(channel, "/mpcgate.gateway.v1.DatasetService/ListDatasets", token) == grpc.StatusCode.UNAUTHENTICATED, name
    assert _call(channel, "/mpcgate.gateway.v1.DatasetService/ListDatasets", good) == grpc.StatusCode.OK


def test_clients_need_a_federation_certificate(fed: LocalFederation, tmp_path: Path) -> None:
    rogue = tmp_path / "rogue-pki"
    pki.init_ca(rogue)
    pki.issue(rogue, "ops", client=True)
    request = datasets_pb2.ListDatasetsRequest()
    metadata = (("authorization", f"Bearer {fed.token(PARTY)}"),)
    with grpc.insecure_channel(fed.addresses[PARTY]) as plaintext:
        with pytest.raises(grpc.RpcError) as err:
            datasets_pb2_grpc.DatasetServiceStub(plaintext).ListDatasets(request, metadata=metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with rpc.secure_channel(TlsIdentity.from_dir(rogue, "ops"), fed.addresses[PARTY], PARTY) as other_ca:
        with pytest.raises(grpc.RpcError) as err:
            datasets_pb2_grpc.DatasetServiceStub(other_ca).ListDatasets(request, metadata=metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_peer_services_refuse_operator_certificates(fed: LocalFederation, channel: grpc.Channel) -> None:
    from gateway.api.gateway.v1 import coordination_pb2, coordination_pb2_grpc

    with pytest.raises(grpc.RpcError) as err:
        coordination_pb2_grpc.CoordinationServiceStub(channel).StopJob(coordination_pb2.StopJobRequest(job_id="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_reflection_and_metrics(fed: LocalFederation, channel: grpc.Channel) -> None:
    import urllib.request

    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="mpcgate.gateway.v1.JobService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reply = next(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    services = {s.name for s in reply.list_services_response.service}
    assert {"mpcgate.gateway.v1.JobService", "mpcgate.exchange.v1.ExchangeService"} <= services
    # independent clients look for reflection v1 (same messages, new package)
    v1 = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                               request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                               response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    reply = next(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    assert "grpc.reflection.v1.ServerReflection" in {s.name for s in reply.list_services_response.service}
    _call(channel, "/mpcgate.gateway.v1.DatasetService/ListDatasets", "bad-token")
    text = urllib.request.urlopen(f"http://127.0.0.1:{fed.metrics_ports[PARTY]}/metrics", timeout=5).read().decode()
    assert 'mpcgate_requests_total{code="UNAUTHENTICATED",method="/mpcgate.gateway.v1.DatasetService/ListDatasets"}' in text
    assert "mpcgate_request_seconds_bucket" in text


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    with LocalFederation(tmp_path, ["solo"]) as federation:
        federation.start()
        assert federation.stop() == {"solo": 0}
        assert "shutting down" in federation.log_path("solo").read_text()


def test_calls_are_audited_with_caller_and_outcome(fed: LocalFederation, channel: grpc.Channel) -> None:
    from gateway.audit import verify_file

    _call(channel, "/mpcgate.gateway.v1.DatasetService/GetDataset", fed.token(PARTY, subject="carol"))
    _call(channel, "/mpcgate.gateway.v1.JobService/ListJobs", fed.token(PARTY, subject="dave"))
    database = fed.root / PARTY / "gateway.db"
    import sqlite3

    rows = sqlite3.connect(database).execute("SELECT actor, action, outcome FROM audit_log").fetchall()
    assert (f"{fed.issuer(PARTY)}/carol", "GetDataset", "NOT_FOUND") in rows
    assert (f"{fed.issuer(PARTY)}/dave", "ListJobs", "OK") in rows
    assert verify_file(database).ok
    assert not any("Bearer" in str(r) or "ey" == str(r[0])[:2] for r in rows)  # no token in the log
