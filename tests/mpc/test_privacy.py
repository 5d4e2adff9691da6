"""Differential privacy inside MPC (mpc.programs.noise.laplace, stats.describe with dp):
the noise follows the two-sided geometric distribution it is calibrated to, no
single party's randomness fixes it, the difference attack that recovered a row no
longer does, and each party's own policy decides the clipping and whether exact
results may leave it. Real CrypTen, one process per party."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statskit import Session, Task

from gateway.exchange import local_parties as parties

pytestmark = pytest.mark.multiprocess

ALPHA = 1e-4
"""Each statistical test below fails a correct implementation with probability at
most ALPHA (or the smaller figure its comment gives): about ten such assertions run
in every CI, so a chance failure stays near one run in a thousand."""


def _noise(rank: int, world_size: int, args: Any) -> dict[str, Any]:
    """Noise draws in grid steps, opened for the test only (jobs never open noise)."""
    import os

    from mpc.programs import secure
    from mpc.programs.noise import laplace

    scales, fixed = args
    if rank in fixed:  # this party's randomness is all zeros
        laplace.os = type("FixedRandomness", (), {"urandom": staticmethod(lambda n: bytes(n))})
    else:
        laplace.os = os
    secure.configure()
    return {t: (secure.opened(laplace.discrete_laplace(count, t, secure.PRECISION_BITS)) / laplace.GRID).tolist()
            for t, count in scales}


def geometric_pmf(k: np.ndarray, t: float) -> np.ndarray:
    r = np.exp(-1 / t)
    return (1 - r) / (1 + r) * r ** np.abs(k)


def test_the_noise_follows_the_two_sided_geometric_distribution() -> None:
    draws = parties.run_parties(_noise, 3, ([(2.0, 4000), (4096.0, 3000)], set()), transport="grpc", timeout=300)[0]
    small = np.array(draws[2.0])
    assert np.all(small == np.round(small))  # whole grid steps: the sums' grid
    edges = np.arange(-8, 10) - 0.5  # k = -8..8, the tails folded into the end bins
    observed = np.histogram(np.clip(small, -8, 8), edges)[0]
    expected = geometric_pmf(np.arange(-8, 9), 2.0)
    expected[0] += geometric_pmf(np.arange(-200, -8), 2.0).sum()
    expected[-1] += geometric_pmf(np.arange(9, 200), 2.0).sum()
    assert stats.chisquare(observed, expected * len(small)).pvalue > ALPHA
    large = np.array(draws[4096.0]) / 4096.0  # a lattice finer than 1/4096 of the scale: Laplace(1)
    assert stats.kstest(large, stats.laplace.cdf).pvalue > ALPHA


def test_no_single_party_s_randomness_fixes_the_noise() -> None:
    """The noise is a function of every party's bits: fixing one party's leaves it
    distributed as before; fixing every party's makes it the same each time."""
    for fixed in ({0}, {1}, {2}):
        draws = np.array(parties.run_parties(_noise, 3, ([(4096.0, 1000)], fixed), transport="grpc", timeout=300)[0][4096.0])
        assert stats.kstest(draws / 4096.0, stats.laplace.cdf).pvalue > ALPHA / 3, fixed
    everyone = [parties.run_parties(_noise, 3, ([(4096.0, 50)], {0, 1, 2}), transport="grpc", timeout=300)[0][4096.0]
                for _ in range(2)]
    assert everyone[0] == everyone[1]  # (so the party fixed above really was fixed)


def _transcript(rank: int, world_size: int, args: Any) -> list[tuple[np.ndarray, int, int]]:
    """Per repetition: every byte party 0 received while the parties sampled one
    noise value (as 64-bit words), party 0's share of it, and the value (opened
    for the test only, after the recorded transcript)."""
    import crypten.communicator as comm

    from mpc.programs import secure
    from mpc.programs.noise import laplace

    scale, repeats = args
    secure.configure()
    session, received = comm.get().wire.session, []
    if rank == 0:  # a tap on party 0's exchange: each frame that reaches it
        recv_any = session.recv_any

        def tapped(parties: list[str], tag: str) -> Any:
            party, frame = recv_any(parties, tag)
            received.append(np.ascontiguousarray(frame.array).reshape(-1).view(np.uint8).copy())
            return party, frame

        session.recv_any = tapped
    out = []
    for _ in range(repeats):
        received.clear()
        noise = laplace.discrete_laplace(1, scale, 0, step_bits=0)
        heard = np.concatenate(received) if received else np.zeros(0, np.uint8)
        share = int(noise._tensor.share.item())
        out.append((heard[: len(heard) // 8 * 8].view(np.int64), share, int(secure.opened(noise)[0])))
    return out


def test_one_party_s_transcript_and_share_say_nothing_about_the_noise() -> None:
    """Two parties and the dealer sample noise 300 times. Everything party 0
    received (the dealer's and the other party's frames) and its own share of the
    noise are independent of the noise: no 64-bit word of its transcript, nor its
    share, nor any word plus its share (an opening of the noise would be one),
    correlates with the noise (value or sign) beyond what chance gives among that
    many (Bonferroni at ALPHA), while both parties' shares together are the noise
    exactly."""
    repeats, scale = 300, 64.0
    runs = parties.run_parties(_transcript, 2, (scale, repeats), transport="grpc", provider="TTP", timeout=600)
    (party0, party1) = runs
    noise = np.array([value for _, _, value in party0], dtype=np.float64)
    assert [value for _, _, value in party1] == list(noise.astype(int))
    assert np.std(noise) > scale  # (two-sided geometric: std sqrt(2) t)
    shares = np.array([[s0, s1] for (_, s0, _), (_, s1, _) in zip(party0, party1)], dtype=np.int64)
    assert np.array_equal(shares.sum(axis=1), noise.astype(np.int64))  # together: the noise (mod 2^64)
    # the same protocol each time, but for the dealer's wrong guesses (an extra answer) while it learns the pattern
    common = Counter(len(heard) for heard, _, _ in party0).most_common(1)[0][0]
    kept = [i for i, (heard, _, _) in enumerate(party0) if len(heard) == common]
    assert len(kept) >= repeats - 10
    noise, shares = noise[kept], shares[kept]
    words = np.stack([party0[i][0] for i in kept])  # repetitions x word positions
    assert words.shape[1] > 200
    with np.errstate(over="ignore"):
        combined = words + shares[:, :1]  # each word with party 0's share (mod 2^64): what an opening would give
    features = np.column_stack([words / 2.0**63, words < 0, combined / 2.0**63, combined < 0,
                                shares[:, 0] / 2.0**63, shares[:, 0] < 0]).astype(np.float64)
    varying = np.ptp(features, axis=0) > 0  # (an answer's request digest is the same every time)
    assert varying.sum() > 200
    centered = features[:, varying] - features[:, varying].mean(axis=0)
    z = centered / centered.std(axis=0)
    limit = stats.norm.ppf(1 - ALPHA / (4 * varying.sum())) / np.sqrt(len(kept))  # |corr| of independent columns
    for target in (noise, np.sign(noise)):
        t = (target - target.mean()) / target.std()
        correlation = np.abs(z.T @ t) / len(kept)
        assert correlation.max() < limit, (correlation.max(), limit)


BOUNDS = {"balance": (0.0, 100.0), "age": (18.0, 98.0)}
RULES = {"dp_bounds": BOUNDS}


def describe(session: Session, tables: list[np.ndarray], epsilon: float, wanted: str = "describe") -> dict[str, Any]:
    status, result = session.run(Task("stats.describe", "horizontal", tables, [["balance", "age"]] * 2,
                                      {"dp": {"epsilon": epsilon}}, RULES))
    assert status == "ok", result
    return result


def test_private_statistics_are_the_clipped_truth_plus_calibrated_noise(two: Session) -> None:
    rng = np.random.default_rng(3)
    tables = [np.column_stack([rng.uniform(0, 120, 400), rng.uniform(18, 98, 400)]) for _ in range(2)]
    result = describe(two, tables, epsilon=4.0)
    pooled = np.vstack(tables)
    clipped = np.clip(pooled, [0, 18], [100, 98])  # the policy's bounds: balances above 100 count as 100
    assert list(result["count"][0]) == [800, 800]
    half = np.array([50.0, 40.0])
    noise_std = np.sqrt(2) * 2 / (4.0 / 4) * half  # 4 releases (sums, sums of squares), each epsilon / 4
    assert np.allclose(result["sum_noise_std"][0], noise_std)
    assert np.all(np.abs(result["sum"][0] - clipped.sum(axis=0)) < 8 * noise_std)  # 8 sigma: ~1e-5 false failures
    assert np.all(np.abs(result["mean"][0] - clipped.mean(axis=0)) < 8 * noise_std / 800)
    assert np.all(result["variance"][0] >= 0)
    assert np.allclose(result["std"][0], np.sqrt(result["variance"][0]))
    assert np.all(np.abs(result["std"][0] - clipped.std(axis=0, ddof=1)) < 0.2 * clipped.std(axis=0, ddof=1))


def test_the_difference_attack_no_longer_recovers_a_row(two: Session) -> None:
    """The trial: one row appended, the same sum run twice, the difference was the
    row's value to 1e-3. With dp, the difference is the value plus noise of the
    calibrated scale: each sum's noise has std sqrt(2) b * 50 (bounds [0, 100]),
    b = 2 / (epsilon / 4) over describe's four releases. The noise is Laplace, whose
    sample spread varies more than a normal's: 48 differences keep the bounds below
    tight and a chance failure rarer than 1 in 30,000 (simulated)."""
    rng = np.random.default_rng(5)
    base = [np.column_stack([rng.uniform(0, 100, 300), rng.uniform(18, 98, 300)]) for _ in range(2)]
    row = np.array([[17.777, 40.0]])
    errors = []
    for _ in range(48):
        before = describe(two, base, epsilon=2.0)["sum"][0][0]
        after = describe(two, [np.vstack([base[0], row]), base[1]], epsilon=2.0)["sum"][0][0]
        errors.append(after - before - row[0, 0])
    expected = np.sqrt(2) * np.sqrt(2) * 2 / (2.0 / 4) * 50  # the difference of two noisy sums
    assert not np.all(np.abs(errors) < 1.0)
    spread = np.std(errors, ddof=1) / expected
    assert 0.55 < spread < 1.8, (spread, errors)


def test_a_column_without_bounds_and_exact_jobs_under_require_dp_are_refused(two: Session) -> None:
    table = np.column_stack([np.arange(100.0), np.arange(100.0)])
    status, message = two.run(Task("stats.describe", "horizontal", [table, table], [["balance", "age"]] * 2,
                                   {"dp": {"epsilon": 1.0}}, {"dp_bounds": {"balance": (0.0, 100.0)}}))
    assert status == "refused" and "no dp_bounds for columns age" in message
    status, message = two.run(Task("stats.describe", "horizontal", [table, table], [["balance", "age"]] * 2,
                                   {}, {"require_dp": True, **RULES}))
    assert status == "refused" and "requires differential privacy" in message


def test_vertical_private_statistics(two: Session) -> None:
    """Each party's own column, clipped to its own bounds, noise added jointly."""
    rng = np.random.default_rng(9)
    keys = np.array([f"c{i}" for i in range(500)])
    balance, age = rng.uniform(0, 100, 500), rng.uniform(18, 98, 500)
    status, result = two.run(Task("stats.describe", "vertical", [balance[:, None], age[:, None]], [["balance"], ["age"]],
                                  {"dp": {"epsilon": 4.0}}, RULES, [keys, keys[::-1]]))
    assert status == "ok", result
    noise_std = np.sqrt(2) * 2 / (4.0 / 4) * np.array([50.0, 40.0])
    assert np.allclose(result["sum_noise_std"][0], noise_std)
    assert np.all(np.abs(result["sum"][0] - [balance.sum(), age.sum()]) < 8 * noise_std)
    assert np.all(np.abs(result["std"][0] - [balance.std(ddof=1), age.std(ddof=1)]) < 0.1 * np.array([29.0, 23.0]))


def test_a_party_clips_to_its_own_bounds_inside_the_union_frame() -> None:
    from mpc.programs.noise import laplace

    x = np.array([[-5.0], [20.0], [70.0], [100.0]])
    z = laplace.clipped(x, [(0.0, 50.0)], [(0.0, 100.0)])  # its own bounds [0, 50]; the union [0, 100]
    assert np.allclose(z[:, 0], [-1.0, -0.6, 0.0, 0.0], atol=laplace.GRID / 2)  # -0.6 on the grid
    assert np.all(laplace.on_grid(np.array([0.1234567])) / laplace.GRID % 1 == 0)


def test_private_histograms_are_noisy_counts_withheld_below_the_group_size(two: Session) -> None:
    rng = np.random.default_rng(13)
    tables = [np.column_stack([rng.uniform(0, 100, 600), rng.uniform(18, 98, 600)]) for _ in range(2)]
    edges = [0, 20, 40, 60, 80, 100, 1000]  # nobody in the last bin
    status, result = two.run(Task("stats.histogram", "horizontal", tables, [["balance", "age"]] * 2,
                                  {"bin_edges": edges, "dp": {"epsilon": 2.0}}, {**RULES, "min_group_size": 20}))
    assert status == "ok", result
    truth = np.stack([np.histogram(np.vstack(tables)[:, j], bins=edges)[0] for j in range(2)])
    counts, _, _, suppressed = result["histogram"]
    noise_std = np.sqrt(2) * 2 / (2.0 / 2)  # epsilon split over the two columns
    assert np.allclose(result["count_noise_std"][0], noise_std)
    shown = ~np.isnan(counts)
    assert np.all(np.abs(counts[shown] - truth[shown]) < 8 * noise_std)
    assert np.all(counts[shown] == np.round(counts[shown])) and np.all(counts[shown] >= 20)
    assert not shown[0, -1] and 5 in suppressed  # the empty bin, noise alone: below 20 but with probability 2e-5


def test_vertical_private_histograms(two: Session) -> None:
    rng = np.random.default_rng(17)
    keys = np.array([f"c{i}" for i in range(400)])
    balance, age = rng.uniform(0, 100, 400), rng.uniform(18, 98, 400)
    edges = [0, 25, 50, 75, 100]
    status, result = two.run(Task("stats.histogram", "vertical", [balance[:, None], age[:, None]], [["balance"], ["age"]],
                                  {"bin_edges": edges, "dp": {"epsilon": 4.0}}, RULES, [keys, keys[::-1]]))
    assert status == "ok", result
    truth = np.stack([np.histogram(balance, edges)[0], np.histogram(age, edges)[0]])
    assert np.all(np.abs(result["histogram"][0] - truth) < 8 * np.sqrt(2) * 2 / 2.0)


def _moment_noise(epsilon: float, d: int, n: int) -> float:
    """A bound on the std of the noise on one covariance entry in z units (values
    mapped to [-1, 1]): the noisy sum of products, and twice the noisy sums
    (|mean z| <= 1), over n - 1; d + d (d + 1) / 2 releases share epsilon."""
    releases = d + d * (d + 1) / 2
    return (np.sqrt(2) * 2 * releases / epsilon + 2 * np.sqrt(2) * 2 * releases / epsilon) / (n - 1)


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_private_covariance_and_correlation(two: Session, partitioning: str) -> None:
    """stats.summary with dp: the clipped data's covariance and correlation within
    8 noise deviations (covariance entries; both parties' rows pooled or aligned)."""
    rng = np.random.default_rng(21)
    n = 1500
    balance = rng.uniform(-10, 110, n)  # some beyond the bounds: clipped to [0, 100]
    age = np.clip(18 + 0.6 * balance + rng.normal(0, 12, n), 0, 120)
    truth = np.column_stack([np.clip(balance, 0, 100), np.clip(age, 18, 98)])
    if partitioning == "horizontal":
        task = Task("stats.summary", "horizontal", [np.column_stack([balance, age])[: n // 2],
                                                     np.column_stack([balance, age])[n // 2:]],
                    [["balance", "age"]] * 2, {"dp": {"epsilon": 8.0}}, RULES)
    else:
        keys = np.array([f"c{i}" for i in range(n)])
        order = rng.permutation(n)
        task = Task("stats.summary", "vertical", [balance[:, None], age[order][:, None]], [["balance"], ["age"]],
                    {"dp": {"epsilon": 8.0}}, RULES, [keys, keys[order]])
    status, result = two.run(task)
    assert status == "ok", result
    half = np.array([50.0, 40.0])
    bound = 8 * _moment_noise(8.0, 2, n) * np.outer(half, half)
    covariance = np.cov(truth, rowvar=False)
    assert np.all(np.abs(result["covariance"][0] - covariance) < bound), (result["covariance"][0], covariance)
    correlation = np.corrcoef(truth, rowvar=False)
    assert abs(result["correlation"][0][0, 1] - correlation[0, 1]) < 0.05
    assert np.allclose(np.diag(result["correlation"][0]), 1.0)
    assert np.allclose(result["variance"][0], np.diag(result["covariance"][0]))
    assert abs(result["correlation"][0][0, 1] - correlation[0, 1]) > 0  # noisy, not exact


def _gaussian_draws(rank: int, world_size: int, args: Any) -> list[int]:
    from mpc.programs import secure
    from mpc.programs.noise import gaussian

    sigma2, count = args
    secure.configure()
    return secure.opened(gaussian.discrete_gaussian(count, gaussian.Gaussian(sigma2, 1))).tolist()


def test_the_gaussian_noise_follows_the_discrete_gaussian_distribution() -> None:
    """600 draws of variance 9 under MPC (2 parties): a chi-square fit to
    P(k) ~ exp(-k^2 / 18) over the integers (bins with at least 5 expected, the
    rest pooled), failing a correct sampler with probability ALPHA."""
    draws = np.array(parties.run_parties(_gaussian_draws, 2, (9, 600), transport="grpc", timeout=600)[0])
    support = np.arange(-40, 41)
    pmf = np.exp(-support**2 / 18.0)
    pmf /= pmf.sum()
    expected = pmf * len(draws)
    kept = expected >= 5
    observed = np.array([(draws == k).sum() for k in support[kept]])
    observed = np.append(observed, len(draws) - observed.sum())
    expected = np.append(expected[kept], len(draws) - expected[kept].sum())
    assert stats.chisquare(observed, expected).pvalue > ALPHA
    assert np.all(draws == np.round(draws))


def test_the_gaussian_calibration_matches_the_accountant_s_conversion() -> None:
    """rho-zCDP to (epsilon, delta) as dp-accounting's RDP accountant converts a
    Gaussian's (its orders are coarser: ours is as tight or tighter); and the plan
    spends the job's epsilon at its delta, over every release."""
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant

    from mpc.catalogue.kinds import parse
    from mpc.privacy import accounting, plan

    for z in (1.0, 5.0, 20.0):
        accountant = rdp_privacy_accountant.RdpAccountant()
        accountant.compose(dp_event.GaussianDpEvent(z))
        theirs, ours = accountant.get_epsilon(1e-6), accounting.epsilon_of(1 / (2 * z * z), 1e-6)
        assert 0.9 * theirs < ours <= theirs * (1 + 1e-6), (z, ours, theirs)
    parts = plan.plan("stats.summary", parse("stats.summary", {"dp": {"epsilon": 1.0, "delta": 1e-6, "mechanism": "gaussian"}}),
                           ["a", "b", "c"])
    rho = sum(part.count * part.sensitivity**2 / (2 * part.gaussian.sigma2 * part.gaussian.divisor**2)
              for part in parts.values() if part.gaussian.divisor == 1)
    spent = sum(part.count * part.rho for part in parts.values())
    assert rho <= spent * (1 + 1e-9) and accounting.epsilon_of(spent, 1e-6) == pytest.approx(1.0, rel=1e-6)


def test_gaussian_private_statistics(two: Session) -> None:
    """stats.describe with the gaussian mechanism: the clipped sums within 8 noise
    deviations, the deviation the calibrated one."""
    from mpc.catalogue.kinds import parse
    from mpc.privacy import plan

    rng = np.random.default_rng(4)
    tables = [np.column_stack([rng.uniform(0, 120, 400), rng.uniform(18, 98, 400)]) for _ in range(2)]
    dp = {"epsilon": 4.0, "delta": 1e-6, "mechanism": "gaussian"}
    status, result = two.run(Task("stats.describe", "horizontal", tables, [["balance", "age"]] * 2, {"dp": dp}, RULES))
    assert status == "ok", result
    clipped = np.clip(np.vstack(tables), [0, 18], [100, 98])
    part = plan.plan("stats.describe", parse("stats.describe", {"dp": dp}), ["balance", "age"])["sums"]
    noise_std = part.std / plan.STEP * np.array([50.0, 40.0])
    assert np.allclose(result["sum_noise_std"][0], noise_std)
    assert np.all(np.abs(result["sum"][0] - clipped.sum(axis=0)) < 8 * noise_std)


def test_the_dp_parameter_names_its_mechanism_s_delta() -> None:
    from mpc.catalogue import parameters
    from mpc.errors import InvalidArgument

    parameters.dp("dp", {"epsilon": 1.0, "delta": 1e-6, "mechanism": "gaussian"}, parameters.Limits())
    with pytest.raises(InvalidArgument, match="delta must be a number from 1e-12 to 1e-3"):
        parameters.dp("dp", {"epsilon": 1.0, "mechanism": "gaussian"}, parameters.Limits())
    with pytest.raises(InvalidArgument, match="delta applies to the gaussian mechanism"):
        parameters.dp("dp", {"epsilon": 1.0, "delta": 1e-6}, parameters.Limits())
