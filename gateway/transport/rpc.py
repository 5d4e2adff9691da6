"""gRPC servers and channels, made in one place: message limits, keepalive (which
bounds how long a dead peer goes unnoticed), TLS, and error mapping."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from gateway.transport.tls import TlsIdentity
from mpc.errors import MpcgateError, Unavailable

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Tensors travel in ~1 MiB chunks, so this only bounds a malformed message."""

DEFAULT_FAILURE_TIMEOUT = 20.0
"""Seconds within which a silent peer is declared dead (keepalive interval + timeout)."""


def _keepalive(failure_timeout: float) -> list[tuple[str, Any]]:
    interval_ms = max(1000, int(failure_timeout * 1000 / 2))
    return [
        ("grpc.keepalive_time_ms", interval_ms),
        ("grpc.keepalive_timeout_ms", interval_ms),
        ("grpc.http2.ping_timeout_ms", interval_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(failure_timeout: float = DEFAULT_FAILURE_TIMEOUT) -> list[tuple[str, Any]]:
    return [
        # gRPC defaults to SO_REUSEPORT: a second server on a used port would start
        # and steal connections; without it, binding a used port fails
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # accept the clients' keepalive pings at their rate
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
        *_keepalive(failure_timeout),
    ]


def channel_options(peer_party: str, failure_timeout: float = DEFAULT_FAILURE_TIMEOUT) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # verify the server's certificate names the party we mean to reach,
        # whatever address it listens on
        ("grpc.ssl_target_name_override", peer_party),
        # a call on a channel waiting to reconnect fails at once: keep that wait short,
        # so a peer that is back (or came up just after this gateway first dialled it)
        # is reachable within a second, not after gRPC's default backoff (1 s, growing to
        # 120 s). (Not grpc.min_reconnect_backoff_ms: gRPC also takes it as each connection
        # attempt's time limit, and a TLS handshake on a busy host took longer than 100 ms.)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        *_keepalive(failure_timeout),
    ]


def aio_server(
    identity: TlsIdentity, address: str, failure_timeout: float = DEFAULT_FAILURE_TIMEOUT,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An asyncio server with mTLS bound to `address` ('host:0' picks a free port)."""
    server = grpc.aio.server(options=server_options(failure_timeout), interceptors=interceptors or [])
    try:
        port = server.add_secure_port(address, identity.server_credentials())
    except RuntimeError:
        port = 0
    if not port:
        raise Unavailable(f"cannot listen on {address}: the port is in use or the address is not this host's")
    return server, port


def aio_channel(identity: TlsIdentity, address: str, peer_party: str, failure_timeout: float = DEFAULT_FAILURE_TIMEOUT) -> grpc.aio.Channel:
    """An asyncio channel with mTLS to the gateway of `peer_party`."""
    return grpc.aio.secure_channel(address, identity.channel_credentials(), options=channel_options(peer_party, failure_timeout))


def secure_channel(identity: TlsIdentity, address: str, peer_party: str, failure_timeout: float = DEFAULT_FAILURE_TIMEOUT) -> grpc.Channel:
    """A blocking channel with mTLS to the gateway of `peer_party`."""
    return grpc.secure_channel(address, identity.channel_credentials(), options=channel_options(peer_party, failure_timeout))


def wrap_handler(
    handler: Any,
    start: Callable[[Any, Any], Any],
    finish: Callable[[Any, Any, Any, BaseException | None], None] | None = None,
) -> Any:
    """The same RPC handler with `start(request, context) -> state` run first and
    `finish(request, context, state, error)` run last, for unary and streaming
    asyncio behaviors alike. An `MpcgateError` from `start` ends the call with its
    status before the handler runs. Interceptors build on this."""
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior is not None:
            break
    done = finish or (lambda request, context, state, error: None)

    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: Any) -> Any:
            try:
                state = start(request, context)
            except MpcgateError as err:
                await context.abort(err.code, err.message)
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as err:
                done(request, context, state, err)
                raise
            done(request, context, state, None)
        wrapped: Any = stream
    else:
        async def unary(request: Any, context: Any) -> Any:
            try:
                state = start(request, context)
            except MpcgateError as err:
                await context.abort(err.code, err.message)
            try:
                response = await behavior(request, context)
            except BaseException as err:
                done(request, context, state, err)
                raise
            done(request, context, state, None)
            return response
        wrapped = unary
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    return make(wrapped, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


F = TypeVar("F", bound=Callable[..., Any])


def map_errors(method: F) -> F:
    """Turns an `MpcgateError` raised by a servicer method into its gRPC status.

    Works for unary and streaming, sync and asyncio handlers; anything else
    propagates and gRPC reports it as UNKNOWN without leaking its text.
    """
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def agen(self: Any, request: Any, context: Any) -> Any:
            try:
                async for item in method(self, request, context):
                    yield item
            except MpcgateError as err:
                await context.abort(err.code, err.message)
        return agen  # type: ignore[return-value]
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def coro(self: Any, request: Any, context: Any) -> Any:
            try:
                return await method(self, request, context)
            except MpcgateError as err:
                await context.abort(err.code, err.message)
        return coro  # type: ignore[return-value]
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def gen(self: Any, request: Any, context: Any) -> Any:
            try:
                yield from method(self, request, context)
            except MpcgateError as err:
                context.abort(err.code, err.message)
        return gen  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: Any) -> Any:
        try:
            return method(self, request, context)
        except MpcgateError as err:
            context.abort(err.code, err.message)
    return unary  # type: ignore[return-value]
