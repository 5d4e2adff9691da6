"""The exchange service on real ports with real mutual TLS: who may connect, how
tensors travel (chunked, ordered, isolated per session), and bounded buffering."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from exchangekit import addresses, federation, nodes, open_sessions
from google.protobuf.message import DecodeError

from gateway.api.exchange.v1 import exchange_pb2, exchange_pb2_grpc
from gateway.exchange import frames
from gateway.exchange.inbox import Acknowledger
from gateway.exchange.node import ExchangeConfig, ExchangeNode, Session
from gateway.transport import pki, rpc
from gateway.transport.tls import TlsIdentity
from mpc.errors import DeadlineExceeded, PeerFailed
from mpc.transport import TENSOR


@pytest.fixture()
def pki_dir(tmp_path: Path) -> Path:
    return federation(tmp_path / "pki", "alice", "bob", "carol", "mallory")


def _call_exchange(channel: grpc.Channel, *messages: exchange_pb2.ExchangeRequest) -> list[exchange_pb2.ExchangeResponse]:
    stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
    return list(stub.Exchange(iter(messages), timeout=10))


def _open(session: str, destination: str) -> exchange_pb2.ExchangeRequest:
    return exchange_pb2.ExchangeRequest(open=exchange_pb2.OpenStream(session_id=session, destination_party=destination))


def test_tensors_round_trip_in_order_including_chunked_ones(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob"]) as started:
        sessions = open_sessions(started, "s1")
        big = np.arange(3 * 1024 * 1024, dtype=np.int64)  # 24 MiB: 24 chunks, over the message limit
        sent = [np.array(7, dtype=np.int64), big, np.ones((2, 3), dtype=np.float32), np.empty(0, dtype=np.int64),
                np.array([True, False]), np.arange(5, dtype=np.uint8)]
        for array in sent:
            sessions["alice"].send("bob", "t", array)
        for array in sent:
            got = sessions["bob"].recv("alice", "t").array
            assert got.dtype == array.dtype and got.shape == array.shape
            np.testing.assert_array_equal(got, array)
        for s in sessions.values():
            s.close()


def test_concurrent_sessions_are_isolated(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob"]) as started:
        first, second = open_sessions(started, "job-1"), open_sessions(started, "job-2")
        first["alice"].send("bob", "t", np.array([1], dtype=np.int64))
        second["alice"].send("bob", "t", np.array([2], dtype=np.int64))
        assert second["bob"].recv("alice", "t").array.tolist() == [2]
        assert first["bob"].recv("alice", "t").array.tolist() == [1]


def test_slow_receiver_bounds_the_senders_buffer(pki_dir: Path) -> None:
    config = ExchangeConfig(window_frames=4, recv_timeout=1.0)
    with nodes(pki_dir, ["alice", "bob"], config) as started:
        sessions = open_sessions(started, "s")
        for i in range(4):  # the window's worth goes out at once
            sessions["alice"].send("bob", "t", np.array([i], dtype=np.int64))
        with pytest.raises(PeerFailed, match="window full"):
            sessions["alice"].send("bob", "t", np.array([4], dtype=np.int64))
        assert sessions["bob"].recv("alice", "t").array.tolist() == [0]  # taking frees a slot
        sessions["alice"].send("bob", "t", np.array([4], dtype=np.int64))
        assert [sessions["bob"].recv("alice", "t").array[0] for _ in range(4)] == [1, 2, 3, 4]
        with pytest.raises(DeadlineExceeded):
            sessions["bob"].recv("alice", "t")


def test_certificate_from_another_ca_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    rogue = federation(tmp_path / "rogue", "bob")
    with nodes(pki_dir, ["alice", "bob"]) as started:
        identity = TlsIdentity.from_dir(rogue, "bob")
        with rpc.secure_channel(identity, addresses(started)["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("s", "alice"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails


def test_party_outside_the_peer_list_is_refused(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob"]) as started:
        open_sessions(started, "s")
        mallory = TlsIdentity.from_dir(pki_dir, "mallory")  # valid certificate, not a peer
        with rpc.secure_channel(mallory, addresses(started)["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("s", "alice"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "mallory" in err.value.details()


def test_operator_client_certificate_cannot_join_sessions(pki_dir: Path) -> None:
    pki.issue(pki_dir, "ops", client=True)
    with nodes(pki_dir, ["alice", "bob"]) as started:
        with rpc.secure_channel(TlsIdentity.from_dir(pki_dir, "ops"), addresses(started)["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("s", "alice"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_peer_outside_the_session_is_refused(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob", "carol"]) as started:
        book = addresses(started)
        started["alice"]._sessions.add("ab-only", ["alice", "bob"])
        carol = TlsIdentity.from_dir(pki_dir, "carol")
        with rpc.secure_channel(carol, book["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("ab-only", "alice"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_plaintext_client_is_refused(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob"]) as started:
        with grpc.insecure_channel(addresses(started)["alice"]) as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("s", "alice"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_malformed_frame_is_refused_and_fails_the_sender(pki_dir: Path) -> None:
    with nodes(pki_dir, ["alice", "bob"]) as started:
        started["alice"]._sessions.add("s", ["alice", "bob"])
        bob = TlsIdentity.from_dir(pki_dir, "bob")
        header = frames.encode(1, "t", TENSOR, np.arange(4, dtype=np.int64))[0]
        header.header.tensor.byte_size = 999  # lies about its size
        with rpc.secure_channel(bob, addresses(started)["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, _open("s", "alice"), header)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "needs 32 bytes" in err.value.details()
        with pytest.raises(PeerFailed, match="bob"):
            started["alice"].inbox.take("s", "bob", "t", timeout=5)


def test_a_stream_that_starts_with_a_chunk_is_refused_as_malformed(pki_dir: Path) -> None:
    """Found by the type checker: a first message that is a bare chunk (read as a
    view of its bytes) broke the open check with an AttributeError (UNKNOWN)."""
    with nodes(pki_dir, ["alice", "bob"]) as started:
        started["alice"]._sessions.add("s", ["alice", "bob"])
        bob = TlsIdentity.from_dir(pki_dir, "bob")
        with rpc.secure_channel(bob, addresses(started)["alice"], "alice") as channel:
            with pytest.raises(grpc.RpcError) as err:
                _call_exchange(channel, exchange_pb2.ExchangeRequest(chunk=bytes(8)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "must start with an open message" in err.value.details()


def test_reassembler_refuses_inconsistent_frames() -> None:
    messages = frames.encode(1, "t", TENSOR, np.arange(300_000, dtype=np.int64))
    assert len(messages) == 4  # header + 3 chunks of <= 1 MiB
    r = frames.Reassembler(max_frame_bytes=1 << 20)
    with pytest.raises(Exception, match="exceeds the limit"):
        r.header(messages[0].header)
    r = frames.Reassembler()
    with pytest.raises(Exception, match="outside a frame"):
        r.chunk(b"x")
    out_of_order = frames.encode(2, "t", TENSOR, np.arange(3, dtype=np.int64))[0]
    with pytest.raises(Exception, match="arrived after frame 0"):
        r.header(out_of_order.header)


def test_a_small_frame_is_one_message_and_must_carry_its_size() -> None:
    small, large = np.arange(4, dtype=np.int64), np.zeros(frames.CHUNK_BYTES // 8 + 1, dtype=np.int64)
    (message,) = frames.encode(1, "t", TENSOR, small)
    assert message.header.tensor.chunk_count == 0 and len(message.header.data) == 32
    assert frames.Reassembler().header(message.header).array.tolist() == [0, 1, 2, 3]
    assert len(frames.encode(1, "t", TENSOR, large)) == 3  # header + 2 chunks
    message.header.data = message.header.data[:-1]
    with pytest.raises(Exception, match="carries 31 bytes of a 32-byte frame"):
        frames.Reassembler().header(message.header)


def test_taken_frames_are_acknowledged_in_batches_and_before_a_wait() -> None:
    sent: list[int] = []
    acknowledger = Acknowledger(window=64, send=sent.append)
    for sequence in range(1, 16):
        acknowledger.delivered(sequence)
        acknowledger.taken(sequence)
    assert sent == []  # a round trip's frame is not answered by an ack of its own
    acknowledger.delivered(16)
    acknowledger.taken(16)
    assert sent == [16]  # a quarter window
    for sequence in range(17, 49):
        acknowledger.delivered(sequence)
    acknowledger.taken(17)
    acknowledger.before_wait()  # 32 unacknowledged: the sender may be near its window
    assert sent == [16, 17]
    acknowledger.before_wait()
    assert sent == [16, 17]


def _driven_party(pki_dir: Path, me: str, parties: list[str], book: dict[str, str], ready: threading.Barrier,
                  program: Callable[[Session], object], config: ExchangeConfig,
                  finished: threading.Barrier | None) -> object:
    """One party on a driven node: this thread makes every call and runs its loop.
    With `finished`, it stops its node only once every party has closed its session
    (a party that leaves fails the session of those still receiving)."""
    node = ExchangeNode(TlsIdentity.from_dir(pki_dir, me), set(parties) - {me}, config=config, driven=True).start()
    try:
        book[me] = f"127.0.0.1:{node.port}"
        ready.wait(30)
        session = node.open_session("s", dict(book))
        result = program(session)
        session.close()
        if finished is not None:
            finished.wait(60)
        return result
    finally:
        node.stop(0)


def _run_driven(pki_dir: Path, programs: dict[str, Callable[[Session], object]],
                config: ExchangeConfig = ExchangeConfig(), together: bool = True) -> dict[str, object]:
    book: dict[str, str] = {}
    ready = threading.Barrier(len(programs))
    finished = threading.Barrier(len(programs)) if together else None
    with ThreadPoolExecutor(len(programs)) as pool:
        futures = {p: pool.submit(_driven_party, pki_dir, p, list(programs), book, ready, f, config, finished)
                   for p, f in programs.items()}
        return {p: f.result(60) for p, f in futures.items()}


def test_driven_nodes_keep_order_and_window_with_no_loop_thread(pki_dir: Path) -> None:
    """alice -> bob -> carol -> alice, 10 windows' worth: a sender waits for acks,
    which only its own loop reads, while it waits."""

    def alice(session: Session) -> object:
        for i in range(40):
            session.send("bob", "t", np.full(3, i, dtype=np.int64))
        session.send("bob", "big", np.arange(300_000, dtype=np.int64))  # chunked
        return session.recv("carol", "done").array.tolist()

    def bob(session: Session) -> object:
        for _ in range(40):
            session.send("carol", "t", session.recv("alice", "t").array)
        return int(session.recv("alice", "big").array.sum())

    def carol(session: Session) -> object:
        got = [int(session.recv("bob", "t").array[0]) for _ in range(40)]
        session.send("alice", "done", np.array(got, dtype=np.int64))
        return got

    config = ExchangeConfig(window_frames=4, recv_timeout=20)  # a wait that never reads acks fails, not hangs
    results = _run_driven(pki_dir, {"alice": alice, "bob": bob, "carol": carol}, config)
    assert results == {"alice": list(range(40)), "bob": sum(range(300_000)), "carol": list(range(40))}


def test_a_driven_node_names_a_peer_that_left_while_it_waits(pki_dir: Path) -> None:
    def waits(session: Session) -> object:
        session.send("bob", "hello", np.zeros(1, dtype=np.int64))  # bob leaves once alice's session is open
        with pytest.raises(PeerFailed, match="bob"):
            session.recv("bob", "t")
        return "raised"

    def leaves(session: Session) -> object:
        session.recv("alice", "hello")
        session.send("alice", "other", np.zeros(1, dtype=np.int64))
        return "left"

    assert _run_driven(pki_dir, {"alice": waits, "bob": leaves}, together=False) == {"alice": "raised", "bob": "left"}


def test_chunks_take_a_fast_path_on_the_same_wire_format() -> None:
    """Chunk messages are written and read without the generated class, in its
    format: each side parses the other's bytes; anything else is the class's."""
    data = np.arange(200_000, dtype=np.int64)
    *_, last = frames.encode(1, "t", TENSOR, data)
    chunk = exchange_pb2.ExchangeRequest.FromString(frames.serialize(last)).chunk
    assert chunk == data.tobytes()[-len(chunk):]
    wire = exchange_pb2.ExchangeRequest(chunk=chunk).SerializeToString()
    view = frames.parse(wire)
    assert isinstance(view, memoryview) and bytes(view) == chunk and frames.wire_size(view) == len(wire)
    assert frames.outgoing(view) == wire  # a relay forwards a chunk as it came
    header = exchange_pb2.ExchangeRequest(header=exchange_pb2.FrameHeader(sequence=7)).SerializeToString()
    assert frames.parse(header).header.sequence == 7
    assert frames.parse(wire + header).WhichOneof("payload") == "header"  # the last of a oneof wins, as in protobuf
    with pytest.raises(DecodeError):
        frames.parse(wire[:-1])


def test_a_peer_waits_for_a_worker_that_is_slow_to_start(pki_dir: Path) -> None:
    """Defect 14 of the partner-API issue: after a restart, on a loaded machine, a
    party's worker took longer to start than its gateway waited for the session,
    and its peers' streams were refused "no session". A gateway now knows a job's
    session from the moment the job starts there, and holds peers' streams until
    its worker listens."""
    from gateway.exchange.inbox import Inbox
    from gateway.exchange.service import ExchangeServicer, Sessions, register

    alice = TlsIdentity.from_dir(pki_dir, "alice")
    sessions = Sessions()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def serve() -> tuple[object, int]:
        server, port = rpc.aio_server(alice, "127.0.0.1:0")
        register(ExchangeServicer("alice", {"bob"}, sessions, Inbox(), open_timeout=1.0, relay_identity=alice), server)
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    sessions.expect("job-1", ["alice", "bob"])  # the job started at alice's gateway; its worker is not up yet
    bob = ExchangeNode(TlsIdentity.from_dir(pki_dir, "bob"), {"alice"}).start()
    opened: dict[str, Session] = {}
    dialing = threading.Thread(target=lambda: opened.update(bob=bob.open_session("job-1", {"alice": f"127.0.0.1:{port}",
                                                                          "bob": f"127.0.0.1:{bob.port}"})))
    dialing.start()
    time.sleep(3)  # three times the gateway's open timeout
    worker = ExchangeNode(alice, {"bob"}, accept_relayed=True).start()
    sessions.add("job-1", ["alice", "bob"], worker=f"127.0.0.1:{worker.port}")
    opened["alice"] = worker.open_session("job-1", {"alice": f"127.0.0.1:{worker.port}",
                                                      "bob": f"127.0.0.1:{bob.port}"})
    dialing.join(30)
    opened["bob"].send("alice", "t", np.arange(3))
    np.testing.assert_array_equal(opened["alice"].recv("bob", "t").array, np.arange(3))
    for node_session in opened.values():
        node_session.close()
    for node in (bob, worker):
        node.stop(0)
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)  # type: ignore[attr-defined]
    loop.call_soon_threadsafe(loop.stop)
