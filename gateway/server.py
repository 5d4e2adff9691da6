"""`mpcgate serve`: one gateway process per institution, one public port, mutual
TLS always on. It hosts the DatasetService, the JobService, the gateways'
CoordinationService and the ExchangeService (which relays job sessions to worker
processes), plus gRPC health and reflection. SIGTERM drains: health turns
NOT_SERVING, new jobs are refused, running jobs get `drain_grace_s` to finish
(the port keeps serving their exchange and coordination), the rest fail with
GATEWAY_SHUTDOWN, then the server stops. Reflection is served as v1 and v1alpha."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from gateway import config as gateway_config
from gateway.api.exchange.v1 import exchange_pb2
from gateway.api.gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    coordination_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    jobs_pb2,
    models_pb2,
    models_pb2_grpc,
)
from gateway.audit import AuditInterceptor, AuditLog, AuditServicer
from gateway.auth.interceptor import SCOPES, ScopeInterceptor, current_identity
from gateway.auth.jwt import TokenVerifier
from gateway.config import GatewayConfig
from gateway.contract.states import TERMINAL
from gateway.jobs import wiring
from gateway.jobs.contracts import SchedulerConfig
from gateway.metrics import MetricsInterceptor
from gateway.notify import Notifier
from gateway.registry.datasets import DatasetServicer, Registry
from gateway.registry.model_store import ModelServicer, ModelStore
from gateway.transport import rpc
from gateway.transport.tls import TlsIdentity
from mpc.catalogue.parameters import Limits
from mpc.errors import MpcgateError, Unauthenticated

log = logging.getLogger("mpcgate.gateway")
SHUTDOWN_GRACE_S = 5.0
KEY_REFRESH_CHECK_S = 1.0


def caller_of(context: Any) -> str:
    """Who is calling a token-protected RPC: the verified token's issuer/subject."""
    identity = current_identity()
    if identity is None:
        raise Unauthenticated("no verified caller")
    return str(identity)


def audit_recorder(log_: AuditLog, party: str) -> Callable[[str, str, str, dict[str, str]], None]:
    """audit(action, subject, outcome, details): the actor is the verified caller of
    the RPC being served, else this gateway itself (peer calls, background work)."""
    def record(action: str, subject: str, outcome: str, details: dict[str, str]) -> None:
        identity = current_identity()
        actor = str(identity) if identity is not None else f"gateway:{party}"
        log_.append(actor, action, subject, outcome, details)
        log.info("audit actor=%s action=%s subject=%s outcome=%s", actor, action, subject, outcome)
    return record


async def serve(config: GatewayConfig, ready: asyncio.Event | None = None) -> None:
    identity = TlsIdentity.load(config.tls)
    verifier = TokenVerifier(config.party_id, config.issuers)
    audit_log = AuditLog(config.database)
    auditing = AuditInterceptor(audit_log, set(SCOPES))
    interceptors = [MetricsInterceptor(), ScopeInterceptor(verifier, audit_log.append), auditing]
    server, port = rpc.aio_server(identity, config.listen, config.failure_timeout, interceptors=interceptors)
    if config.metrics_listen:
        import prometheus_client

        host, _, metrics_port = config.metrics_listen.rpartition(":")
        prometheus_client.start_http_server(int(metrics_port), addr=host or "127.0.0.1")
    record = audit_recorder(audit_log, config.party_id)
    registry = Registry(config.database, config.data_dir, config.party_id)
    datasets_pb2_grpc.add_DatasetServiceServicer_to_server(DatasetServicer(registry), server)
    audit_servicer = AuditServicer(audit_log)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(audit_servicer, server)
    model_store = ModelStore(config.database)
    models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(model_store), server)
    jobs = wiring.install(
        server,
        SchedulerConfig(
            party_id=config.party_id, peer_addresses=config.peers,
            tls_files=(str(config.tls.ca), str(config.tls.cert), str(config.tls.key)),
            max_concurrent_jobs=config.max_concurrent_jobs, default_deadline_s=config.default_deadline_s,
            allow_insecure_providers=config.allow_insecure_providers, failure_timeout=config.failure_timeout,
            dealer=config.dealer, limits=Limits(config.max_columns, config.max_bins), drain_grace_s=config.drain_grace_s,
            submit_wait_s=config.submit_wait_s,
            warm_workers=config.warm_workers, quotas=config.quotas,
        ),
        identity, config.database, registry, record, caller_of, audit_log.head, model_store,
    )
    audit_servicer.records = lambda job_id: jobs.records.checked(job_id, identity.ca_pem)
    if config.notify is not None:
        jobs.scheduler.notify = Notifier(config.notify, config.party_id, record).send
    registry.budgets.ended = lambda job_id: (job := jobs.store.find(job_id)) is not None and job.state in TERMINAL
    registry.budgets.on_charge = lambda dataset, job_id, epsilon, unit: record(
        "dp.charge", job_id, "charged", {"dataset": dataset, "epsilon": repr(epsilon), "unit": unit})
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = [
        datasets_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name,
        jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
        models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
        audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
        coordination_pb2.DESCRIPTOR.services_by_name["CoordinationService"].full_name,
        exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
    ]
    _enable_reflection([*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
    await server.start()
    await jobs.start()
    for name in ["", *services]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gateway party=%s listening port=%d peers=%s", config.party_id, port, ",".join(sorted(config.peers)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_issuers(config, verifier)))
    refresher = asyncio.create_task(_refresh_keys(verifier))
    console = await _start_console(config, identity, verifier, port) if config.console_listen else None
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("gateway party=%s shutting down", config.party_id)
    refresher.cancel()
    if console is not None:
        await console.stop()
    for name in ["", *services]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await jobs.drain()
    await jobs.stop_work()
    await server.stop(SHUTDOWN_GRACE_S)  # calls in flight end against an open database
    await auditing.settle(SHUTDOWN_GRACE_S)  # and the calls it cancelled are recorded
    await jobs.close()
    model_store.close()
    audit_log.close()
    log.info("gateway party=%s stopped", config.party_id)


class _Console:
    """The web console beside the gRPC port (gateway/console)."""

    def __init__(self, runner: Any, sessions: Any) -> None:
        self._runner, self._sessions = runner, sessions

    async def stop(self) -> None:
        await self._runner.cleanup()
        self._sessions.close()


async def _start_console(config: GatewayConfig, identity: TlsIdentity, verifier: TokenVerifier, port: int) -> _Console:
    """The console's pages call this gateway's own gRPC port, on loopback when it
    listens on every address, with this gateway's certificate for the TLS and the
    signed-in person's token for everything else."""
    from gateway.console import app
    from gateway.console.oidc import Logins
    from gateway.console.sessions import Sessions

    host = config.listen.rpartition(":")[0]
    own = f"{'127.0.0.1' if host in ('', '0.0.0.0', '[::]') else host}:{port}"
    sessions = Sessions(verifier, identity, own, config.party_id)
    logins = Logins(list(config.issuers.values()))
    return _Console(await app.start(config.console_listen, identity, sessions, config.party_id, logins), sessions)


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(services: list[str], server: grpc.aio.Server) -> None:
    """Server reflection as v1alpha (grpcio-reflection) and as v1, which independent
    clients look for: v1's messages are v1alpha's under a new package name, the
    same bytes on the wire, so the one servicer answers both."""
    names = [*services, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection_aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),))


async def _refresh_keys(verifier: TokenVerifier) -> None:
    """Identity providers' keys, fetched again as each issuer's refresh_s says."""
    while True:
        await asyncio.to_thread(verifier.refresh_due)
        await asyncio.sleep(KEY_REFRESH_CHECK_S)


async def _reload_issuers(config: GatewayConfig, verifier: TokenVerifier) -> None:
    """SIGHUP: the config's [issuers] read again and their keys reloaded, without a
    restart; a bad config keeps the current issuers (and says why)."""
    try:
        fresh = gateway_config.load(config.source) if config.source else config
        await asyncio.to_thread(verifier.reload, fresh.issuers)
    except MpcgateError as err:
        log.error("gateway party=%s kept its token issuers: %s", config.party_id, err.message)
        return
    log.info("gateway party=%s reloaded token issuers=%s", config.party_id, ",".join(sorted(fresh.issuers)))


def run(config: GatewayConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(config))


__all__ = ["serve", "run"]
