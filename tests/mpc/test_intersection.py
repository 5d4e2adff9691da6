"""Private set intersection and row alignment for vertical jobs: unequal key sets
in different orders at 2 and 3 parties give the statistics of the inner join;
empty and too-small intersections are refused; psi.intersect reveals what it
says; what a party sends carries neither its keys nor unsalted hashes of them.
Real CrypTen over the gRPC exchange, one process per party."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from statskit import Session, Task, capture_sends

from mpc.catalogue import keys as keyspace
from mpc.errors import InvalidArgument

pytestmark = pytest.mark.multiprocess


def test_what_counts_as_the_same_key() -> None:
    assert keyspace.canonical(" A17 ") == keyspace.canonical("A17") == b"A17"
    assert keyspace.canonical("A17") != keyspace.canonical("a17")
    assert keyspace.canonical(17) == b"17" and keyspace.canonical("017") != keyspace.canonical("17")
    assert keyspace.canonical("e\u0301") == keyspace.canonical("\u00e9")  # NFC
    with pytest.raises(InvalidArgument, match="empty key"):
        keyspace.check(["a", " ", "b"], "loans.csv")
    with pytest.raises(InvalidArgument, match="'a' appears more than once"):
        keyspace.check(["a", "b", " a"], "loans.csv")


def _parties(world: int, rng: np.random.Generator, common: int = 300, extra: int = 60
             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Each party: the common entities plus some of its own, shuffled; its own
    column(s). Returns tables, keys, the inner join (rows of every party's columns,
    by entity) and each party's column of the join."""
    entities = np.array([f"cust-{i:05d}" for i in range(common + world * extra)])
    values = rng.normal(size=(len(entities), world)) * [10.0 ** r for r in range(world)] + 5
    values[:, -1] += 0.8 * values[:, 0]
    tables, keys = [], []
    for r in range(world):
        own = np.concatenate([np.arange(common), common + r * extra + np.arange(extra)])
        own = rng.permutation(own)
        tables.append(values[own, r : r + 1])
        keys.append(entities[own])
    return tables, keys, values[:common], [values[:common, r] for r in range(world)]


def test_vertical_statistics_run_on_the_inner_join(session: Session) -> None:
    rng = np.random.default_rng(session.world_size)
    tables, keys, joined, _ = _parties(session.world_size, rng)
    names = [[f"c{r}"] for r in range(session.world_size)]
    status, result = session.run(Task("stats.summary", "vertical", tables, names, {}, {}, keys))
    assert status == "ok", result
    assert result["count"][0][0] == 300
    assert np.allclose(result["mean"][0], joined.mean(axis=0), rtol=1e-6)
    assert np.allclose(result["correlation"][0], np.corrcoef(joined, rowvar=False), atol=1e-3)
    assert np.allclose(result["covariance"][0], np.cov(joined, rowvar=False),
                       atol=1e-3 * np.outer(joined.std(0), joined.std(0)))


def test_an_empty_intersection_is_refused(session: Session) -> None:
    tables = [np.arange(20.0).reshape(20, 1) + r for r in range(session.world_size)]
    keys = [np.array([f"p{r}-{i}" for i in range(20)]) for r in range(session.world_size)]
    status, answer = session.run(Task("stats.describe", "vertical", tables, [[f"c{r}"] for r in range(session.world_size)],
                                      {}, {}, keys))
    assert status == "refused" and "no entity in common" in answer


def test_a_policy_minimum_intersection_is_enforced_by_its_owner(session: Session) -> None:
    tables, keys, _, _ = _parties(session.world_size, np.random.default_rng(5), common=40)
    status, answer = session.run(Task("stats.describe", "vertical", tables, [[f"c{r}"] for r in range(session.world_size)],
                                      {}, {"min_intersection": 41}, keys))
    assert status == "refused" and "min_intersection_size" in answer and "40" not in answer  # the size is not told


def test_a_probe_with_few_hits_is_refused_by_the_key_ratio(session: Session) -> None:
    """max_key_ratio: another party's keys may be at most that many times the
    common ones; the refusal names neither the rule that fired nor a size."""
    tables, keys, _, _ = _parties(session.world_size, np.random.default_rng(6), common=40)
    columns = [[f"c{r}"] for r in range(session.world_size)]
    largest = max(len(k) for k in keys)
    status, answer = session.run(Task("stats.describe", "vertical", tables, columns, {},
                                      {"max_key_ratio": largest / 40 - 0.01}, keys))
    assert status == "refused" and "max_key_ratio" in answer and "40" not in answer and str(largest) not in answer
    status, answer = session.run(Task("stats.describe", "vertical", tables, columns, {},
                                      {"max_key_ratio": largest / 40 + 0.01}, keys))
    assert status == "ok", answer


@pytest.mark.parametrize("cardinality_only", [True, False])
def test_psi_intersect_reveals_the_size_and_optionally_the_common_keys(session: Session, cardinality_only: bool) -> None:
    tables, keys, _, _ = _parties(session.world_size, np.random.default_rng(7), common=120, extra=30)
    everyone = list(range(session.world_size))
    status, _ = session.run(Task("psi.intersect", "vertical", [t[:, :0] for t in tables],
                                 [[] for _ in tables], {"cardinality_only": cardinality_only}, {}, keys, everyone))
    assert status == "ok"
    expected = sorted(f"cust-{i:05d}" for i in range(120))
    orders = []
    for rank, result in session.results.items():
        assert result["intersection_size"][0][0] == 120
        if cardinality_only:
            assert set(result) == {"intersection_size"}
        else:
            assert sorted(result["keys"][1]) == expected
            orders.append(result["keys"][1])
    assert all(order == orders[0] for order in orders), "the same common order at every party"


def _intersect_capturing(rank: int, world_size: int, args: tuple) -> tuple[bytes, list[int]]:
    """Runs the intersection, recording every array this party sends (before TLS)."""
    from mpc.programs.intersection.protocol import intersect

    keys = args[rank]
    captured = capture_sends()
    found = intersect(rank, world_size, keys, b"salt")
    return b"".join(array.tobytes() for array in captured), [int(r) for r in found.rows]


def test_a_party_sends_neither_its_keys_nor_their_unsalted_hashes() -> None:
    from gateway.exchange.local_parties import run_parties

    own = [np.array([f"secret-{i:04d}" for i in range(0, 400)]), np.array([f"secret-{i:04d}" for i in range(200, 500)])]
    outs = run_parties(_intersect_capturing, 2, tuple(own), timeout=120, transport="grpc")
    for rank, (sent, rows) in enumerate(outs):
        assert [own[rank][r] for r in rows] == [own[1 - rank][r] for r in outs[1 - rank][1]], "aligned alike"
        assert len(rows) == 200
        for key in own[rank]:
            for needle in (key.encode(), hashlib.sha256(key.encode()).digest()[:16],
                           keyspace.points([key], b"salt").tobytes()[:16]):
                assert needle not in sent, key


def test_a_repeated_key_at_job_time_is_refused_naming_the_party(session: Session) -> None:
    tables, keys, _, _ = _parties(session.world_size, np.random.default_rng(9), common=50, extra=5)
    keys[-1] = keys[-1].astype(object)
    keys[-1][3] = f" {keys[-1][7]}"  # the same key once whitespace is removed
    status, answer = session.run(Task("stats.describe", "vertical", tables, [[f"c{r}"] for r in range(session.world_size)],
                                      {}, {}, keys))
    last = session.world_size - 1
    assert status == "refused" and f"party party{last}'s key column has an empty or repeated key" in answer, answer
    assert "appears more than once" in session.results[last]  # the details stay at the party they concern
