"""What each job kind reveals, to whom: the release declaration data owners read
before they approve (`mpcgate kinds`; the README's table says the same, held
alike by tests/mpc/test_kinds.py). Besides these, every party of a job learns
each party's row count and the columns' names; nothing else leaves a party
unencrypted."""

from __future__ import annotations

RELEASES: dict[str, tuple[str, str]] = {
    "stats.describe": (
        'count, sum, mean, variance, std per column; min and max with `extremes`. With `dp`, noisy sum, mean,'
        " variance, std and each sum's noise deviation (`sum_noise_std`)",
        "see below; with `dp`, each party's `dp_bounds` for its columns",
    ),
    "stats.covariance": (
        'count, covariance matrix',
        'see below',
    ),
    "stats.correlation": (
        'count, correlation matrix',
        'see below',
    ),
    "stats.summary": (
        "describe's statistics, covariance, correlation",
        'see below',
    ),
    "stats.histogram": (
        "count, rows per bin and column; a bin holding 1 to k-1 rows of any party's dataset is withheld (NaN,"
        " listed in `suppressed`), k that party's `min_group_size` (or the job refused, if its `small_groups "
        '= "refuse"`). With `dp`, noisy rows per bin (below)',
        'which bins are withheld',
    ),
    "stats.crosstab": (
        "count; the contingency table of two categorical columns (or one column's frequencies); a cell holding 1 to"
        " k-1 rows of any party (vertical: 1 to k-1 rows, k the strictest party's) is withheld as histogram bins"
        " are, and one more cell where the withheld ones together would hold 1 to k-1 rows; `chi2`, `dof`,"
        " `p_value` where nothing is withheld",
        "the columns' categories (listed, or each party's with at least k rows); which cells are withheld",
    ),
    "features.woe_iv": (
        "count; the information value (IV) of every feature column; with `woe` (default), each column's bins "
        "merged until each holds at least k events and k non-events (k the strictest data party's "
        '`min_group_size`; horizontal: none or at least k of either at each party) and per bin its WOE, rows '
        "and events: horizontal, to every receiver; vertical, a column's table only to its owner where the "
        'owner is a receiver (its bins are its own cuts); a column even one bin cannot protect is withheld '
        '(IV NaN, listed in `suppressed`)',
        "one bit: labels are 0/1; vertical: each column's bin count; horizontal: the cut points of the numeric "
        "columns without `splits` (pooled quantiles, each in a grid cell of its column's frame holding at least k "
        "rows); which bins "
        'merged (so which held fewer than k events or non-events) and which columns are withheld; with `min_share`, '
        "`monotone` or `max_bins`, which bins each of them merged; vertical, per party, whether its own columns' "
        "merged bins single out a row (a leverage in them at the strictest `max_leverage`: the job is then refused)",
    ),
    "features.binning": (
        "as features.woe_iv's, with its defaults for a risk team's binning: 20 equal-frequency bins per numeric "
        "column, merged (after the k-row merges) until each holds at least `min_share` of the rows (0.05), the "
        "event rate runs one way (`monotone`) and at most `max_bins` remain (10)",
        "as features.woe_iv's; and which bins each constraint merged (so which were below the share, which "
        "adjacent event rates ran against the trend, the trend's direction, which pair held the fewest rows)",
    ),
    "features.select": (
        "`selected`: per feature column 1 (kept) or 0: down the columns by information value (as "
        "features.woe_iv's, same bins), a column is kept if its IV is at least `iv_min` and its absolute correlation "
        "with every numeric column kept before it is at most `max_correlation`; then, with `max_vif`, while the "
        "largest variance inflation factor of the kept numeric columns is above it, that column is dropped; no IV, "
        "correlation or VIF is released",
        "as features.woe_iv's (labels 0/1, bin counts or cut points, merges, withheld columns); as the statistics' "
        "correlations: which numeric columns are constant, and the columns' public frames (horizontal) or each "
        "numeric column's farthest value from its mean in standard deviations, to a power of two (vertical); with "
        "`max_vif`, that every pass's inverse converged (else the job is refused)",
    ),
    "model.scorecard": (
        "count (training rows); `iv` per feature column (as features.woe_iv's); the loss per epoch; on held-out rows "
        'the metrics of model.logistic_regression (AUC, Gini, KS, Brier, accuracy, lift); horizontal: `coefficients` '
        'per WOE unit, `intercept` and per model column `points.<column>` (per bin: points, WOE, rows, events; bins '
        "as features.binning's, merged until each holds at least k events and k non-events); vertical: a column's "
        "`points.<column>` table and coefficient only to its owner where the owner is a receiver (a row's score is "
        "the sum of its banks' points)",
        "as features.binning's (labels 0/1, bin counts or cut points, merges, withheld columns); per model column, "
        "its WOE's variance to a power of four; the loss per epoch and whether each step lowered the objective (as "
        "logistic regression's); one bit each: every row's leverage below the strictest `max_leverage`, both classes "
        'present',
    ),
    "stats.stability": (
        "count; the population stability index of every feature column between its baseline (`period` 0) and "
        "recent (`period` 1) rows; with `table` (default), each column's bins merged until each holds at least "
        "k baseline and k recent rows (k the strictest data party's `min_group_size`; horizontal: none or at "
        "least k of either at each party) and per bin its baseline and recent rows: horizontal, to every "
        "receiver; vertical, a column's table only to its owner where the owner is a receiver; a column even "
        "one bin cannot protect is withheld (index NaN, listed in `suppressed`)",
        "one bit: periods are 0/1; vertical: each column's bin count; horizontal: the cut points of the numeric "
        "columns without `splits` (the pooled baseline rows' quantiles, each in a grid cell of its column's "
        "frame holding at least k rows); which bins merged and which columns are withheld",
    ),
    "psi.intersect": (
        "the intersection's size; unless `cardinality_only`, the common keys in the common order",
        "the intersection's size and every party's key count; whether a party refused it "
        '(`min_intersection_size`, `max_key_ratio`: not which rule); each party also learns which of its own '
        "keys are common (the protocol's output: bounded by `intersections_per_day`)",
    ),
    "model.linear_regression": (
        "the model: coefficients in the features' units, intercept, the features' and label's means and "
        'standard deviations; `r2` on the training rows, `r2_holdout` on held-out rows (with `holdout`). With'
        ' `keep_shared`, the R²s only. With `own_coefficients` (vertical), each party receives only its own '
        "features' coefficients and its part of the intercept (the parts sum to the model's), every party the"
        ' R²s',
        "one bit: the normal equations were well-conditioned enough to solve (where not, which features' variance "
        'inflation passes the limit: the refusal names them); horizontal: the frames below, '
        'each tightened until its variance in it is at least 1/16 (so its binade); held-out row counts; which '
        "features are constant (coefficient 0); kept shared or not, one bit: every training row's leverage is "
        "below the parties' `max_leverage` (vertical: and, per party, whether its own columns alone reach it) (below)",
    ),
    "model.logistic_regression": (
        'the model as above (population deviations), the loss per epoch; on held-out rows the metrics of '
        "`model.evaluate` at threshold 0.5 except log-loss and confusion (accuracy, AUC, Gini, KS, Brier, the lift "
        'table, deciles merged alike). With `classes` above 2 (one-vs-rest): coefficients and intercept per class, '
        'the loss per class and epoch, held-out accuracy and confusion counts (withheld as `model.evaluate`\'s). '
        'With `keep_shared`, the metrics only; `own_coefficients` as above',
        'the training loss each epoch, its step length (a power of two) and whether the step lowered the '
        "objective; at the third and sixth step, one bit: the Hessian was invertible; one bit: labels are binary (or classes); one bit: both classes occur (or: which declared "
        "classes have no rows); which features are constant; which held-out deciles merged (or confusion counts "
        "withheld); "
        "kept shared or not, one bit each, before training: every row's leverage "
        'below `max_leverage` (vertical: and, per party, whether its own columns alone reach it), each class large '
        'enough (below)',
    ),
    "model.mlp": (
        "the network's parameters (`layer.<name>`), its input standardization (frame, shift and scale; the "
        "features' means and deviations), loss and accuracy per epoch, held-out accuracy (for a sigmoid "
        "output, logistic regression's held-out metrics). With `keep_shared`, the metrics only",
        'loss and accuracy each epoch; per feature, the input frame: the power of two of its spread and its '
        "mean rounded to an eighth of it (horizontal: pooled, as the statistics programs'; vertical: each "
        "owner's own); one bit: labels valid; one bit: two classes or more occur; which held-out deciles merged "
        "(sigmoid); the two leverage bits as logistic regression's",
    ),
    "model.predict": (
        "each row's probabilities (or the network's output), or with `reveal: classes` the predicted class "
        "only; a receiver that owns the rows sees them by its dataset's key column, any other by position",
        "the network's architecture (an asset's graph without its weights; an MLP's widths and input frame); "
        "who holds the model and the rows; one bit: inputs within the model's fixed-point range; whether a "
        "holder's policy refused the job (`min_rows_per_job`, `max_rows_per_party`, and the rows left)",
    ),
    "model.evaluate": (
        'metrics against a label column some party holds: log-loss, accuracy and confusion counts at `threshold` '
        "(a count of 1 to k-1 rows withheld, k the strictest data party's `min_group_size`); for a binary model "
        'also AUC, Gini, KS, the Brier score and a lift table by decile of score (rows, events, mean score; event '
        'rate, gain and lift), deciles merged until each holds 0 or at least k events and non-events — never a '
        'prediction',
        'as predict; which confusion counts are withheld and which deciles merged; one bit: both classes occur',
    ),
}
"""Per kind: (what the result receivers get, what every party also learns)."""

EVERY_JOB = "each party's row count and the job's columns' names"
"""What every party of every job learns (besides each kind's public values)."""

FRAMES = (
    "horizontal: per column, the power of two of the pooled range, the pooled mean rounded to an eighth of it and "
    "one bit (spread sufficient for the documented accuracy); with a variance, deviation, covariance or "
    "correlation, also how many factors of 4 the pooled variance lies below 3e-4 of the range's power of two "
    "squared (0 to 8); vertical, with covariance or correlation: per column, the power of two of its largest "
    "distance from the mean in standard deviations"
)
"""The statistics programs' public frames (the README's "Public for horizontal jobs")."""


def public(kind: str) -> str:
    """What every party of a `kind` job learns, in words, whole (the table's "see below" spelled out)."""
    text = RELEASES[kind][1]
    if text.startswith("see below"):
        text = FRAMES + text[len("see below"):]
    return f"{text}; {EVERY_JOB}"

