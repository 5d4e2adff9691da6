"""Prometheus metrics of a gateway: requests, latencies and errors per RPC, and the
bytes its exchange relays per peer. Served over HTTP when the config names
`metrics_listen`."""

from __future__ import annotations

import inspect
import time
from typing import Any

import grpc
import grpc.aio
from prometheus_client import Counter, Histogram

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
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                break
        make = getattr(grpc, f"{kind}_rpc_method_handler")

        def finish(context: Any, started: float) -> None:
            code = context.code() if hasattr(context, "code") else None
            REQUESTS.labels(method, getattr(code, "name", None) or "OK").inc()
            LATENCY.labels(method).observe(time.perf_counter() - started)

        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    finish(context, started)
            wrapped: Any = stream
        else:
            async def unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await behavior(request, context)
                finally:
                    finish(context, started)
            wrapped = unary
        return make(wrapped, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)
