"""Prometheus metrics of a gateway: requests, latencies and errors per RPC, and the
bytes its exchange relays per peer. Served over HTTP when the config names
`metrics_listen`."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
from prometheus_client import Counter, Histogram

from gateway.transport.rpc import wrap_handler

REQUESTS = Counter("mpcgate_requests_total", "RPCs handled", ["method", "code"])
LATENCY = Histogram("mpcgate_request_seconds", "RPC handling time", ["method"])
EXCHANGE_BYTES = Counter("mpcgate_exchange_bytes_total", "Bytes of tensor frames relayed", ["direction", "peer"])


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC (outermost, so refused calls count too)."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        def finish(request: Any, context: Any, started: float, error: BaseException | None) -> None:
            code = context.code() if hasattr(context, "code") else None
            REQUESTS.labels(method, getattr(code, "name", None) or ("CANCELLED" if error else "OK")).inc()
            LATENCY.labels(method).observe(time.perf_counter() - started)

        return wrap_handler(handler, lambda request, context: time.perf_counter(), finish)
