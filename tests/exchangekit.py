"""Helpers for exchange tests: a throw-away federation and nodes on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.exchange.node import ExchangeConfig, ExchangeNode, Session
from gateway.transport import pki
from gateway.transport.tls import TlsIdentity


def federation(directory: Path, *parties: str) -> Path:
    pki.init_ca(directory)
    for party in parties:
        pki.issue(directory, party)
    return directory


@contextmanager
def nodes(directory: Path, parties: list[str], config: ExchangeConfig = ExchangeConfig()) -> Iterator[dict[str, ExchangeNode]]:
    started = {
        p: ExchangeNode(TlsIdentity.from_dir(directory, p), set(parties) - {p}, config=config).start() for p in parties
    }
    try:
        yield started
    finally:
        for node in started.values():
            node.stop(0)


def addresses(started: dict[str, ExchangeNode]) -> dict[str, str]:
    return {p: f"127.0.0.1:{n.port}" for p, n in started.items()}


def open_sessions(started: dict[str, ExchangeNode], session_id: str) -> dict[str, Session]:
    """Opens one session on every node at once (each waits for the others)."""
    book = addresses(started)
    opened: dict[str, Session] = {}
    errors: list[BaseException] = []

    def join(party: str) -> None:
        try:
            opened[party] = started[party].open_session(session_id, book)
        except BaseException as err:  # noqa: BLE001  (re-raised below in the test thread)
            errors.append(err)

    threads = [threading.Thread(target=join, args=(p,)) for p in started]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return opened
