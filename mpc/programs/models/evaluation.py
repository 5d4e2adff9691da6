"""The evaluation a risk team reads, of a binary classifier's scores against 0/1
labels, under encryption: the KS statistic, AUC and Gini, the Brier score, and a
lift table by decile of score (rows, events, mean score: the calibration by
decile; the receivers derive event rates, cumulative gain and lift).

Ranking without sorting. The scores are put on a grid (a sigmoid model's logits
at 2^-10 over [-128, 128), else probabilities at 2^-16) and QUANTILES - 1
thresholds found by an oblivious search (two bits per step, 9 or 8 steps, each
comparing every row with three candidates per threshold and every count with
its target; no bit is opened): threshold j is the highest grid value that at
least ceil(j n / QUANTILES) rows reach. A row belongs to the first group whose threshold it
reaches, so the groups hold n / QUANTILES rows each, except where scores tie at
a threshold (the tied rows all go to the higher group). Deciles are pairs of
groups. AUC is computed over the groups (pairs within a group count half, as
scikit-learn counts tied scores): the error is at most half the share of pairs
within a group, much less in practice. KS is the largest gap at the groups'
edges and at QUANTILES - 1 finer edges (a second search with shared targets)
between the two edges around the largest: exact to 1/400 of the rows near the
maximum. Every count is an exact integer and each ratio one secure division
(`ratios.quotient`). Cost: about 2 x 9 x 3 x 19 comparisons per row, in 2 x 9 steps of
two comparisons each (rounds matter more than bytes between banks).

What a receiver learns about one row: nothing but its part in these aggregates;
every released decile holds either no events or at least k, and either no
non-events or at least k (k the strictest data party's min_group_size): deciles
that do not are merged with their neighbour, lower scores first, until all do.
Every party learns which deciles were merged and whether both classes occur
(AUC, Gini and KS are NaN where one does not).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import compare, ratios, secure
from mpc.programs import groups as small_groups

QUANTILES = 20
DECILES = 10
GRID_BITS = 16  # probabilities ranked on a 2^-16 grid
LOGIT_BITS, LOGIT_STEPS = 10, 18  # logits on a 2^-10 grid over [-128, 128)
BATCH = 1 << 20  # elements per comparison batch (memory)
MAX_ROWS = 1 << 23
LIFT_COLUMNS = ["rows", "events", "event rate", "mean score", "cumulative events", "gain", "lift", "cumulative lift"]


@dataclasses.dataclass
class Scored:
    """Shared aggregates of one evaluation, before anything is opened."""

    auc: Any  # at ratios.QUOTIENT_BITS
    ks: Any
    brier: Any
    both_classes: Any  # 0/1, precision 0
    rows: Any  # per decile, highest scores first, precision 0
    events: Any  # per decile, precision 0
    scores: Any  # per decile, the sum of its scores


def scored(p: Any, y: Any, n: int, logits: Any | None = None) -> Scored:
    """The aggregates of probabilities `p` (n, within [0, 1]) against labels `y`
    (n, 0/1, any precision), the rows ranked by `logits` where given (a sigmoid
    model's: they do not saturate, so fewer rows tie than at p's grid near 0 and 1)."""
    import crypten

    label = secure.greater_than(y, 0.5)  # exact 0/1 at precision 0
    grid, steps = (_on_grid(p, GRID_BITS, 0), GRID_BITS) if logits is None else (
        _on_grid(logits, LOGIT_BITS, 1 << (LOGIT_STEPS - 1)), LOGIT_STEPS)
    edges = QUANTILES - 1
    above = _reaching(grid, _thresholds(grid, torch.tensor([-(-j * n // QUANTILES) for j in range(1, QUANTILES)]), steps))
    member = crypten.cat([above[:, :1], above[:, 1:] - above[:, :-1], 1 - above[:, -1:]], dim=1)  # n x QUANTILES
    rows = member.sum(0)
    events = (member * label.unsqueeze(1).expand(n, QUANTILES)).sum(0)
    positives = events.sum()
    negatives = positives.neg() + n
    pairs = positives * negatives
    # AUC = sum_g pos_g (2 neg_below_g + neg_g) / (2 P N), groups from the highest scores
    non_events = rows - events
    below = negatives.unsqueeze(0).expand(QUANTILES) - _running(non_events)
    auc_numerator = (events * (below * 2 + non_events)).sum()
    # KS = max_t |TPR_t - FPR_t| = max_t |cum_pos_t N - cum_neg_t P| / (P N): at the groups' edges, then
    # at QUANTILES - 1 finer edges between the two edges around the largest
    coarse, reached = _gaps(above, label, positives, negatives)
    ends = crypten.cat([rows[:1].mul(0), reached, rows[:1].mul(0) + n])  # rows reaching edge e - 1, e + 1
    first = _first_largest(coarse)
    lower, upper = (first * ends[:-2]).sum(), (first * ends[2:]).sum()
    shares = secure.times_integers((upper - lower).unsqueeze(0).expand(edges), list(range(1, QUANTILES)))
    finer = _reaching(grid, _thresholds(grid, lower.unsqueeze(0).expand(edges) + shares.div(QUANTILES), steps))
    fine, _ = _gaps(finer, label, positives, negatives)
    auc_ks = ratios.quotient(crypten.stack([auc_numerator, _largest(crypten.cat([coarse, fine]))]),
                             crypten.stack([pairs * 2, pairs]))
    error = secure.lowered(p, GRID_BITS) - secure.lowered(y, GRID_BITS)
    brier = (error * error).sum().div(n)
    both = (1 - compare.less_than(positives, 1)) * (1 - compare.less_than(negatives, 1))
    pairs_of_groups = torch.zeros(QUANTILES, DECILES, dtype=torch.long)
    pairs_of_groups[torch.arange(QUANTILES), torch.arange(QUANTILES) // 2] = 1
    score_sums = (member * secure.lowered(p, GRID_BITS).unsqueeze(1).expand(n, QUANTILES)).sum(0)
    per_decile = (small_groups.summed(v, pairs_of_groups) for v in (rows, events, score_sums))
    return Scored(auc_ks[0], auc_ks[1], brier, both, *per_decile)


@dataclasses.dataclass
class Evaluation:
    """A binary classifier's metrics, shared until the receivers open `shared`
    (in order: AUC, KS, Brier, accuracy, then the lift table's rows, events and
    score sums per merged decile group)."""

    shared: list[Any]
    groups: list[list[int]]
    both_classes: bool
    guess: Any  # each row's predicted class at the threshold (0/1, precision 0), for callers' confusion counts

    def results(self, opened: list[np.ndarray], rows: str = "all rows") -> dict[str, Result]:
        """The receivers' view: scalars, and the lift table from the merged deciles'
        counts (empty where even all rows together are a small group)."""
        auc, ks, brier, accuracy = (float(np.asarray(v).reshape(-1)[0]) for v in opened[:4])
        if not all(-0.01 <= v <= 1.01 for v in (auc, ks, brier, accuracy)):  # each a share of rows or pairs
            raise FailedPrecondition("the held-out metrics: a fixed-point truncation failed (a share outside [0, 1]); "
                                     "nothing was released, please resubmit the job")
        if not self.both_classes:
            auc = ks = math.nan
        out = {name: Result(np.array([value]), [rows]) for name, value in
               (("accuracy", accuracy), ("auc", auc), ("gini", 2 * auc - 1), ("ks", ks), ("brier", brier))}
        out["lift"] = _lift(opened[4:7], self.groups) if self.groups else Result(np.zeros((0, len(LIFT_COLUMNS))), [],
                                                                                 LIFT_COLUMNS)
        return out


def evaluation(ctx: JobContext, p: Any, y: Any, n: int, logits: Any | None = None, threshold: float = 0.5) -> Evaluation:
    """The metrics of probabilities `p` against 0/1 labels `y` on `n` rows (accuracy
    at `threshold`); every party learns which deciles merge and whether both classes
    occur."""
    if n >= MAX_ROWS:
        raise InvalidArgument(f"the metrics take at most {MAX_ROWS - 1:,} rows (their exact counts' products stay below "
                              f"2^{ratios.COUNT_BITS}); these are {n:,}")
    report = scored(p, y, n, logits)
    table, groups = lift_table(ctx, report)
    both_classes = bool(secure.open_bits_to_all(ctx, report.both_classes.unsqueeze(0))[0])
    guess = secure.greater_than(p, threshold)
    accuracy = (guess * y + (1 - guess) * (1 - y)).sum().div(n)
    return Evaluation([report.auc, report.ks, report.brier, accuracy, *table], groups, both_classes, guess)


def lift_table(ctx: JobContext, scored: Scored) -> tuple[list[Any], list[list[int]]]:
    """The deciles merged until each holds no events or at least k of them, and no
    non-events or at least k (every party learns the merges): the shared rows,
    events and score sums per merged group, and each group's deciles (none where
    all rows together are still a small group)."""
    import crypten

    floor, _ = small_groups.floor(ctx)  # merged, never withheld: nothing to refuse
    groups = [[d] for d in range(DECILES)]
    while True:
        merge = small_groups.membership(groups, DECILES)
        rows, events = small_groups.summed(scored.rows, merge), small_groups.summed(scored.events, merge)
        counts = crypten.cat([events, rows - events])
        small = secure.open_bits_to_all(ctx, secure.greater_than(counts, 0.5) * secure.less_than(counts, floor - 0.5))
        small = small[: len(groups)] | small[len(groups):]
        if not small.any():
            return [rows, events, small_groups.summed(scored.scores, merge)], groups
        if len(groups) == 1:
            return [], []
        groups = small_groups.merged(groups, small)


def _lift(opened: list[np.ndarray], groups: list[list[int]]) -> Result:
    rows, events, scores = (np.asarray(v, dtype=np.float64).reshape(-1) for v in opened)
    cumulative = np.cumsum(events)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate, base = events / rows, events.sum() / rows.sum()
        table = np.column_stack([rows, events, rate, scores / rows, cumulative, cumulative / events.sum(),
                                 rate / base, (cumulative / np.cumsum(rows)) / base])
    names = [f"decile {g[0] + 1}" if len(g) == 1 else f"deciles {g[0] + 1}-{g[-1] + 1}" for g in groups]
    return Result(table, names, LIFT_COLUMNS)


# -- ranking ------------------------------------------------------------------------------

def _on_grid(value: Any, bits: int, offset: int) -> Any:
    """floor(value 2^bits) + offset (within one unit) as shared integers (precision 0)."""
    from crypten.encoder import FixedPointEncoder

    grid = secure.raised(secure.lowered(value, bits), bits).clone()
    grid._tensor.encoder = FixedPointEncoder(precision_bits=0)
    return grid + offset


def _thresholds(grid: Any, targets: Any, steps: int) -> Any:
    """Per target (public or shared integers), the highest value in [0, 2^steps)
    that at least that many rows reach: a search two bits at a time (three
    candidates per target and step: half the rounds of a bisection), nothing opened."""
    import crypten

    edges = int(targets.size(0))
    found = crypten.cryptensor(torch.zeros(edges), precision=0)
    wanted = targets.unsqueeze(1).expand(edges, 3)
    for shift in reversed(range(0, steps, 2)):
        candidates = found.unsqueeze(1).expand(edges, 3) + torch.tensor([1 << shift, 2 << shift, 3 << shift])
        reached = _counts_reaching(grid, candidates.reshape(edges * 3)).reshape(edges, 3)
        enough = 1 - compare.less_than(reached, wanted)  # nested: the number of 1s is the next two bits
        found = found + secure.times_integers(enough.sum(1), [1 << shift] * edges)
    return found


def _counts_reaching(grid: Any, thresholds: Any) -> Any:
    """How many rows reach each threshold, in batches of at most BATCH elements."""
    n, k = int(grid.size(0)), int(thresholds.size(0))
    rows = max(1, BATCH // k)
    return secure.total([_reaching(grid[start : start + rows], thresholds).sum(0) for start in range(0, n, rows)])


def _reaching(grid: Any, thresholds: Any) -> Any:
    """n x thresholds: whether each row's score reaches each threshold (0/1)."""
    n, edges = int(grid.size(0)), int(thresholds.size(0))
    return 1 - compare.less_than(grid.unsqueeze(1).expand(n, edges), thresholds.unsqueeze(0).expand(n, edges))


def _gaps(above: Any, label: Any, positives: Any, negatives: Any) -> tuple[Any, Any]:
    """Per threshold, |cum_pos N - cum_neg P| (KS's numerator) and the rows reaching it."""
    n, edges = int(above.size(0)), int(above.size(1))
    reached = above.sum(0)
    hits = (above * label.unsqueeze(1).expand(n, edges)).sum(0)
    gaps = hits * negatives.unsqueeze(0).expand(edges) - (reached - hits) * positives.unsqueeze(0).expand(edges)
    return _magnitude(gaps), reached


def _first_largest(values: Any) -> Any:
    """One-hot at the first largest entry of a shared vector of integers."""
    top = 1 - compare.less_than(values, _largest(values).unsqueeze(0).expand(int(values.size(0))))
    return top * compare.less_than(_running(top), 2)


def _running(values: Any) -> Any:
    """Cumulative sums of a shared vector (exact: integer weights on each share)."""
    out = values.clone()
    out._tensor.share = values._tensor.share @ torch.triu(torch.ones(values.size(0), values.size(0), dtype=torch.long))
    return out


def _magnitude(values: Any) -> Any:
    return values - values * compare.less_than(values, 0) * 2


def _largest(values: Any) -> Any:
    """The largest entry of a shared vector: a tree of comparisons, ceil(log2 n) rounds."""
    import crypten

    while values.size(0) > 1:
        if values.size(0) % 2:
            values = crypten.cat([values, values[-1:]])
        a, b = values[0::2], values[1::2]
        values = a + (b - a) * compare.less_than(a, b)
    return values[0]
