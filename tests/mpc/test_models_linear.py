"""model.linear_regression against scikit-learn on the pooled rows: synthetic data
with known coefficients, horizontal and vertical, 2 and 3 parties, OLS and ridge;
keep_shared (the parties' shares, and only they, reconstruct the model); the label
holder's bytes carry no label; bad inputs refused clearly. Real CrypTen, one
process per party."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge
from statskit import Session, Task, capture_sends, encodings_sent

from mpc.programs.models.holdout import entity_draws

pytestmark = pytest.mark.multiprocess


def data(rng: np.random.Generator, rows: int, d: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    true = rng.normal(size=d) * 3
    x = rng.normal(size=(rows, d)) * rng.uniform(0.2, 5, d) + offset
    x[:, 1:] += 0.5 * x[:, :1]  # correlated features
    return x, x @ true + 7.0 + rng.normal(0, 0.3, rows)


def intercept_scale(reference: Ridge | LinearRegression, x: np.ndarray, y: np.ndarray) -> float:
    """|b_0| + sum max(|b_j|, s_y / s_j / 10) |mean_j|: the intercept is
    mean_y - sum b_j mean_j, so it carries each coefficient's error bound times its
    feature's mean (a feature far from zero with a coefficient near zero moves it)."""
    floor = y.std() / x.std(axis=0) / 10
    return abs(reference.intercept_) + float(np.sum(np.maximum(np.abs(reference.coef_), floor) * np.abs(x.mean(axis=0))))


def assert_matches(result: dict, reference: Ridge | LinearRegression, x: np.ndarray, y: np.ndarray) -> None:
    """Documented accuracy: each coefficient within 1e-3 of max(|b_j|, s_y / s_j / 10)
    relative, the intercept within 1e-3 of intercept_scale, R^2 within 1e-3."""
    coef = result["coefficients"][0]
    floor = y.std() / x.std(axis=0) / 10
    assert np.all(np.abs(coef - reference.coef_) <= 1e-3 * np.maximum(np.abs(reference.coef_), floor)), \
        (coef, reference.coef_)
    assert abs(result["intercept"][0][0] - reference.intercept_) <= 1e-3 * intercept_scale(reference, x, y)
    assert abs(result["r2"][0][0] - reference.score(x, y)) <= 1e-3


@pytest.mark.parametrize("d, alpha, offset", [(1, 0.0, 0.0), (4, 0.0, 50.0), (8, 2.5, 0.0), (30, 10.0, 1e4)])
def test_horizontal_matches_scikit_learn(session: Session, d: int, alpha: float, offset: float) -> None:
    if session.world_size == 3 and d != 30:
        pytest.skip("three parties pool their rows as two do: the widest case at three (the others at two)")
    rng = np.random.default_rng(d)
    parts = [data(rng, 200 + 50 * r, d, offset) for r in range(session.world_size)]
    names = [f"x{j}" for j in range(d)] + ["y"]
    tables = [np.column_stack([x, y]) for x, y in parts]
    status, result = session.run(Task("model.linear_regression", "horizontal", tables, [names] * session.world_size,
                                      {"label": "y", "alpha": alpha}))
    assert status == "ok", result
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    assert_matches(result, (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(x, y), x, y)
    assert result["coefficients"][1] == names[:-1]


@pytest.mark.parametrize("d, alpha", [(2, 0.0), (9, 1.0)])
def test_vertical_matches_scikit_learn_with_the_label_at_one_party(session: Session, d: int, alpha: float) -> None:
    rng = np.random.default_rng(10 + d)
    x, y = data(rng, 400, d)
    columns = np.array_split(np.arange(d), session.world_size)
    tables = [x[:, c] for c in columns]
    tables[-1] = np.column_stack([tables[-1], y])  # the label at the last party
    names = [[f"x{j}" for j in c] for c in columns]
    names[-1].append("y")
    keys = [np.array([f"k{i}" for i in range(400)])] * session.world_size
    status, result = session.run(Task("model.linear_regression", "vertical", tables, names, {"label": "y", "alpha": alpha},
                                      {}, keys))
    assert status == "ok", result
    assert_matches(result, (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(x, y), x, y)


def test_keep_shared_reveals_only_r2_and_the_shares_rebuild_the_model(session: Session) -> None:
    rng = np.random.default_rng(5)
    parts = [data(rng, 300, 3) for _ in range(session.world_size)]
    tables = [np.column_stack([x, y]) for x, y in parts]
    names = ["a", "b", "c", "y"]
    status, result = session.run(Task("model.linear_regression", "horizontal", tables, [names] * session.world_size,
                                      {"label": "y", "keep_shared": True}))
    assert status == "ok" and set(result) == {"r2"}, result
    shares = session.shares
    assert set(shares) == set(range(session.world_size)) and all(shares[r] for r in shares)
    for name in ("coefficients_z", "mean", "scale"):
        single = shares[0][name][0]
        total = sum(shares[r][name][0] for r in shares)  # int64 ring arithmetic
        assert not np.array_equal(single, total), "one party's share alone is not the value"
    scale = shares[0]["coefficients_z"][1]
    gamma = sum(shares[r]["coefficients_z"][0] for r in shares) / scale
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    reference = LinearRegression().fit(x, y)
    # coefficients in z units: b_j = g_j * c_y / c_j, with the public frame's power-of-two c
    rebuilt = gamma * np.exp2(np.round(np.log2(reference.coef_ / gamma)))
    floor = y.std() / x.std(axis=0) / 10
    assert np.all(np.abs(rebuilt - reference.coef_) <= 1e-3 * np.maximum(np.abs(reference.coef_), floor))


def _split(session: Session, partitioning: str, x: np.ndarray, y: np.ndarray) -> tuple[list, list, list | None]:
    """The pooled rows as the parties' tables, names and keys (vertical: the label at the last party)."""
    d, parties = x.shape[1], session.world_size
    if partitioning == "horizontal":
        names = [[f"x{j}" for j in range(d)] + ["y"]] * parties
        return [np.column_stack([x, y])[part] for part in np.array_split(np.arange(len(y)), parties)], names, None
    columns = np.array_split(np.arange(d), parties)
    tables = [x[:, c] for c in columns]
    tables[-1] = np.column_stack([tables[-1], y])
    names = [[f"x{j}" for j in c] for c in columns]
    names[-1].append("y")
    return tables, names, [np.array([f"k{i}" for i in range(len(y))])] * parties


@pytest.mark.parametrize("partitioning, alpha", [("horizontal", 0.0), ("vertical", 1.5)])
def test_without_an_intercept_matches_scikit_learn(session: Session, partitioning: str, alpha: float) -> None:
    if session.world_size == 3 and partitioning == "horizontal":
        pytest.skip("three parties pool their rows as two do: the vertical case at three (both at two)")
    rng = np.random.default_rng(31)
    x, y = data(rng, 600, 4, offset=3.0)
    tables, names, keys = _split(session, partitioning, x, y)
    status, result = session.run(Task("model.linear_regression", partitioning, tables, names,
                                      {"label": "y", "alpha": alpha, "fit_intercept": False}, {}, keys))
    assert status == "ok", result
    reference = (Ridge(alpha=alpha, fit_intercept=False) if alpha else LinearRegression(fit_intercept=False)).fit(x, y)
    assert result["intercept"][0][0] == 0.0 and set(result) == {"coefficients", "intercept", "r2"}
    assert_matches(result, reference, x, y)


@pytest.mark.parametrize("intercept", [True, False])
def test_own_coefficients_gives_each_party_only_its_part(session: Session, intercept: bool) -> None:
    if session.world_size == 3 and intercept:
        pytest.skip("the intercept's share is the label holder's at any count: three parties without it")
    rng = np.random.default_rng(33)
    x, y = data(rng, 500, 2 * session.world_size, offset=4.0)
    tables, names, keys = _split(session, "vertical", x, y)
    everyone = list(range(session.world_size))
    status, _ = session.run(Task("model.linear_regression", "vertical", tables, names,
                                 {"label": "y", "alpha": 0.5, "own_coefficients": True, "fit_intercept": intercept},
                                 {}, keys, everyone))
    assert status == "ok"
    reference = Ridge(alpha=0.5, fit_intercept=intercept).fit(x, y)
    floor = y.std() / x.std(axis=0) / 10
    intercept_parts = 0.0
    for rank, result in session.results.items():
        own = [c for c in names[rank] if c != "y"]
        assert result["coefficients"][1] == own, "a party receives its own features' coefficients only"
        index = [int(c[1:]) for c in own]
        assert np.all(np.abs(result["coefficients"][0] - reference.coef_[index])
                      <= 1e-3 * np.maximum(np.abs(reference.coef_[index]), floor[index]))
        assert abs(result["r2"][0][0] - reference.score(x, y)) <= 1e-3
        intercept_parts += result["intercept"][0][0]
    assert abs(intercept_parts - reference.intercept_) <= 1e-3 * intercept_scale(reference, x, y)


@pytest.mark.parametrize("partitioning, intercept", [("horizontal", True), ("vertical", True), ("horizontal", False),
                                                     ("vertical", False)])
def test_held_out_r2_matches_scikit_learn(session: Session, partitioning: str, intercept: bool) -> None:
    if session.world_size == 3 and (intercept or partitioning == "horizontal"):
        pytest.skip("the held-out draw does not depend on the party count: three parties vertically without an "
                    "intercept only")
    rng = np.random.default_rng(34)
    x, y = data(rng, 900, 5, offset=2.0)
    y += rng.normal(0, 2.0, len(y))  # a noisier fit: R^2 visibly below 1
    tables, names, keys = _split(session, partitioning, x, y)
    status, result = session.run(Task("model.linear_regression", partitioning, tables, names,
                                      {"label": "y", "alpha": 1.0, "holdout": 0.25, "seed": 4,
                                       "fit_intercept": intercept}, {}, keys))
    assert status == "ok", result
    if partitioning == "vertical":
        test = entity_draws(keys[0], 4, "mpcgate") < 0.25  # the same entities at every party
    else:  # each party's own draw over its rows
        test = np.concatenate([np.random.default_rng([4, r]).random(len(t)) < 0.25 for r, t in enumerate(tables)])
    reference = Ridge(alpha=1.0, fit_intercept=intercept).fit(x[~test], y[~test])
    assert_matches(result, reference, x[~test], y[~test])
    assert abs(result["r2_holdout"][0][0] - reference.score(x[test], y[test])) <= 1e-3, \
        (result["r2_holdout"][0][0], reference.score(x[test], y[test]))


@pytest.mark.parametrize("partitioning, factor", [("horizontal", 30.0), ("horizontal", 60.0), ("vertical", 60.0)])
def test_without_an_intercept_r2_holds_for_a_label_far_from_zero(session: Session, partitioning: str,
                                                                 factor: float) -> None:
    """R^2's error grows with F = mean(y^2) / var(y) (r2.MAX_LABEL_FACTOR is 64): a
    good fit through the origin whose label's mean is 5-8 standard deviations."""
    if session.world_size == 3 and partitioning == "horizontal":
        pytest.skip("one party count is enough horizontally: three parties pool their rows as two do")
    rng = np.random.default_rng(int(factor))
    x = rng.normal(size=(600, 3)) * [1, 3, 0.5] + np.sqrt((factor - 1) * 5.25) / 2.5
    y = x @ [1.0, -0.5, 2.0] + rng.normal(0, 1.0, 600)
    assert 0.9 * factor < np.mean(y**2) / np.var(y) < min(factor * 1.1, 64)
    tables, names, keys = _split(session, partitioning, x, y)
    status, result = session.run(Task("model.linear_regression", partitioning, tables, names,
                                      {"label": "y", "fit_intercept": False}, {}, keys))
    assert status == "ok", result
    assert_matches(result, LinearRegression(fit_intercept=False).fit(x, y), x, y)


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_without_an_intercept_a_label_far_from_zero_is_refused(session: Session, partitioning: str) -> None:
    if session.world_size == 3 and partitioning == "horizontal":
        pytest.skip("three parties pool their rows as two do: the vertical case at three (both at two)")
    rng = np.random.default_rng(32)
    x = rng.normal(size=(300, 2))
    y = 1000 + x @ [1.0, 2.0] + rng.normal(0, 0.1, 300)  # mean^2 ~ 2e5 x variance
    tables, names, keys = _split(session, partitioning, x, y)
    status, answer = session.run(Task("model.linear_regression", partitioning, tables, names,
                                      {"label": "y", "fit_intercept": False}, {}, keys))
    assert status == "refused" and "too far from zero" in answer and "fit_intercept" in answer, answer


@pytest.mark.parametrize("parameters, partitioning, message", [
    ({"label": "nope"}, "horizontal", "label column 'nope'"),
    ({"label": "y", "alpha": -1}, "horizontal", "alpha"),
])
def test_bad_inputs_are_refused_clearly(session: Session, parameters: dict, partitioning: str, message: str) -> None:
    from mpc.catalogue.kinds import validate_parameters
    from mpc.catalogue.parameters import Limits
    from mpc.errors import InvalidArgument

    tables = [np.ones((10, 2))] * session.world_size
    try:
        validate_parameters("model.linear_regression", parameters, Limits())
    except InvalidArgument as err:  # the gateway refuses these at submit
        assert message in str(err)
        return
    status, answer = session.run(Task("model.linear_regression", partitioning, tables, [["x", "y"]] * session.world_size,
                                      parameters))
    assert status == "refused" and message in answer


def test_more_features_than_rows_are_refused(session: Session) -> None:
    rng = np.random.default_rng(3)
    wide = [rng.normal(size=(2, 8))] * session.world_size
    names = [f"x{j}" for j in range(7)] + ["y"]
    status, answer = session.run(Task("model.linear_regression", "horizontal", wide, [names] * session.world_size,
                                      {"label": "y"}))
    assert status == "refused" and "more features than rows" in answer


@pytest.mark.parametrize("partitioning", ["horizontal", "vertical"])
def test_collinear_features_are_refused_by_name_at_alpha_0_and_fitted_as_ridge_with_a_penalty(
        session: Session, partitioning: str) -> None:
    """c = 2a + b exactly: with alpha = 0 the system is singular and the refusal
    names the three columns (and not d, which is independent of them); with alpha =
    1 the model is scikit-learn's Ridge on the same rows."""
    rng = np.random.default_rng(4)
    x, y = data(rng, 300, 4)
    x[:, 2] = x[:, 0] * 2 + x[:, 1]
    x[:, 3] = rng.normal(size=300)
    names = ["a", "b", "c", "d", "y"]
    table = np.column_stack([x, y])
    for alpha in (0.0, 1.0):
        if partitioning == "horizontal":
            task = Task("model.linear_regression", "horizontal", np.array_split(table, session.world_size),
                        [names] * session.world_size, {"label": "y", "alpha": alpha})
        else:
            keys = [np.array([f"k{i}" for i in range(300)])] * session.world_size
            cuts = np.array_split(np.arange(5), session.world_size)
            task = Task("model.linear_regression", "vertical", [table[:, c] for c in cuts],
                        [[names[i] for i in c] for c in cuts], {"label": "y", "alpha": alpha}, {}, keys)
        status, answer = session.run(task)
        if alpha == 0:
            assert status == "refused" and "the columns 'a', 'b', 'c' are (nearly) collinear" in answer, answer
        else:
            assert status == "ok", answer
            assert_matches(answer, Ridge(alpha=alpha).fit(x, y), x, y)


def _train_capturing(rank: int, world_size: int, args: tuple) -> list[np.ndarray]:
    """Trains a vertical model over the gRPC exchange, recording every array this
    party sends (before TLS)."""
    from mpc.catalogue.context import JobContext, PartyLayout
    from mpc.catalogue.kinds import parse
    from mpc.programs import program

    tables, names = args
    captured = capture_sends()
    keys = np.array([f"k{i}" for i in range(len(tables[rank]))])
    ctx = JobContext("model.linear_regression", "vertical", rank, world_size,
                     [PartyLayout(r, f"party{r}", names[r], -1) for r in range(world_size)], [0], parse("model.linear_regression", {"label": "y"}),
                     tables[rank], keys)
    program("model.linear_regression")(ctx)
    return captured


def test_the_label_holder_sends_no_label_in_plaintext_or_fixed_point() -> None:
    from gateway.exchange import local_parties as parties

    rng = np.random.default_rng(8)
    x, y = data(rng, 64, 2)
    tables = [x, y.reshape(-1, 1)]
    sent = parties.run_parties(_train_capturing, 2, (tables, [["a", "b"], ["y"]]), transport="grpc", timeout=180)[1]
    assert sum(array.nbytes for array in sent) > 64 * 8, "the capture must hold the label holder's real traffic"
    centered = y - y[0]
    standardized = (centered - centered.mean()) / centered.std(ddof=1)
    candidates = [y, centered, standardized, standardized / 2, standardized / 4, standardized / 8]
    leaked = encodings_sent(sent, np.concatenate(candidates), bits=(16, 24, 32))
    assert not leaked, f"the label holder sent {leaked} encodings of its labels"


@pytest.mark.parametrize("parameters, vertical, receivers, message", [
    ({"own_coefficients": True}, False, ["a", "b"], "applies to vertical jobs"),
    ({"own_coefficients": True, "keep_shared": True}, True, ["a", "b"], "choose one"),
    ({"own_coefficients": True}, True, ["a"], "add b to the result receivers"),
])
def test_own_coefficients_is_checked_at_submit(parameters: dict, vertical: bool, receivers: list[str],
                                               message: str) -> None:
    from mpc.catalogue.kinds import parse, validate_inputs
    from mpc.errors import InvalidArgument

    inputs = [("a", ["x", "y"]), ("b", ["z"])] if vertical else [("a", ["x", "y"]), ("b", ["x", "y"])]
    with pytest.raises(InvalidArgument, match=message):
        validate_inputs("model.linear_regression", parse("model.linear_regression", {"label": "y", **parameters}),
                        vertical, inputs, receivers)


def test_a_holdout_too_small_for_a_metric_is_refused(session: Session) -> None:
    rng = np.random.default_rng(35)
    x, y = data(rng, 12, 1)
    tables, names, keys = _split(session, "horizontal", x, y)
    status, answer = session.run(Task("model.linear_regression", "horizontal", tables, names,
                                      {"label": "y", "holdout": 0.01}, {}, keys))
    assert status == "refused" and "held-out rows" in answer, answer
