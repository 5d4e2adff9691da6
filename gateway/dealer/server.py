"""`mpcgate dealer`: serves CrypTen's TTP protocol for every job session a party's
gateway asks it to join, one worker process per session (CrypTen's state is
per process), sessions isolated by the exchange. Its one port carries the
DealerService and the exchange, which relays each session to its worker."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.api.dealer.v1 import dealer_pb2, dealer_pb2_grpc
from gateway.api.exchange.v1 import exchange_pb2_grpc
from gateway.dealer.config import DealerConfig
from gateway.exchange.inbox import Inbox
from gateway.exchange.service import ExchangeServicer, Sessions
from gateway.transport import rpc
from gateway.transport.rpc import map_errors
from gateway.transport.tls import TlsIdentity, authenticated_peer
from gateway.workers.plan import WorkerPlan
from gateway.workers.runner import WorkerRunner
from mpc.catalogue.schemas import Parameters
from mpc.errors import InvalidArgument, MpcgateError

log = logging.getLogger("mpcgate.dealer")


class DealerServicer(dealer_pb2_grpc.DealerServiceServicer):
    def __init__(self, config: DealerConfig, runner: WorkerRunner) -> None:
        self._config = config
        self._runner = runner
        self._tasks: set[asyncio.Task[Any]] = set()

    @map_errors
    async def JoinSession(self, request: dealer_pb2.JoinSessionRequest, context: Any) -> dealer_pb2.JoinSessionResponse:
        caller = authenticated_peer(context, set(self._config.parties))
        order = [m.party_id for m in sorted(request.parties, key=lambda m: m.rank)]
        if caller not in order:
            raise InvalidArgument(f"party {caller!r} asked for a session it is not in")
        unknown = [p for p in order if p not in self._config.parties]
        if unknown or len(set(order)) != len(order) or len(order) < 2:
            raise InvalidArgument(f"session parties must be distinct known parties; unknown: {unknown}")
        plan = WorkerPlan(
            job_id=request.session_id, session_id=request.session_id, party_id=self._config.dealer_id,
            parties=order, addresses={p: self._config.parties[p] for p in order},
            tls=(str(self._config.tls.ca), str(self._config.tls.cert), str(self._config.tls.key)),
            kind="", partitioning="", receivers=[], layout=[], parameters=Parameters(), source=None,
            failure_timeout=self._config.failure_timeout, provider="TTP", dealer=self._config.dealer_id,
        )
        log.info("dealer joins session=%s for=%s parties=%s", request.session_id, caller, ",".join(order))
        task = asyncio.ensure_future(self._serve(plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dealer_pb2.JoinSessionResponse()

    async def _serve(self, plan: WorkerPlan) -> None:
        async def ignore(*_: Any) -> None:
            return None

        try:
            await self._runner.run(plan, ignore)
            log.info("dealer finished session=%s", plan.session_id)
        except MpcgateError as err:
            log.warning("dealer session=%s failed: %s", plan.session_id, err.message)


async def serve(config: DealerConfig) -> None:
    identity = TlsIdentity.load(config.tls)
    server, port = rpc.aio_server(identity, config.listen, config.failure_timeout)
    sessions = Sessions()
    runner = WorkerRunner(sessions, config.warm_workers)
    dealer_pb2_grpc.add_DealerServiceServicer_to_server(DealerServicer(config, runner), server)
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
        ExchangeServicer(config.dealer_id, set(config.parties), sessions, Inbox(), relay_identity=identity), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("dealer %s listening port=%d parties=%s", config.dealer_id, port, ",".join(sorted(config.parties)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    runner.kill_all()
    await server.stop(5)


def run(config: DealerConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(config))
