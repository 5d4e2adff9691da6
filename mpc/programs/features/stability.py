"""stats.stability: the population stability index (PSI; "stability" in the
API, to keep it apart from the set intersection) of every feature column between
the baseline rows (development: `period` 0) and the recent rows (`period` 1) of
the pooled population (horizontal: every party's rows; vertical: the common
customers, the period held by one party).

PSI = sum_b (a_b - e_b) ln(a_b / e_b), with e_b and a_b the shares of the
baseline and of the recent rows in bin b: the information value of the feature
against the period as a 0/1 label. The program is therefore features.woe_iv's
(mpc.programs.features.woe) with the period in the label's place: the same bins
(`splits`, or `bins` equal-frequency cuts, vertically by each column's owner, from
its baseline rows where it holds the period, else from all its rows), the same
merging (until every bin holds at least k baseline and k recent rows) and the
same exact counts and fixed-point logarithms: PSI within 1e-4 x the number of
bins. A model's scores are a column like any other (e.g. model.predict's output,
registered with a period column).

Released. To the receivers: `count`, the `stability` index of every column
(withheld columns NaN, listed in `suppressed`) and, with `table` (default),
`bins.<column>`: each merged bin's baseline and recent rows (horizontal: to every
receiver; vertical: a column's table only to its owner where it is a receiver).
What a receiver learns about one row: nothing beyond its bin's counts, each of at
least k rows of either period. Every party learns which bins merged and which
columns are withheld; vertically, each column's bin count.
"""

from __future__ import annotations

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import StabilityParameters
from mpc.programs.features import woe

PERIOD = woe.Role("the period column", "0 (baseline) and 1 (recent)", "recent or baseline rows", baseline=True)


def stability(ctx: JobContext) -> dict[str, Result] | None:
    settings = ctx.settings(StabilityParameters)
    found = woe.information(ctx, settings.period, dict(settings.splits), settings.bins, PERIOD)
    return woe.release(ctx, found, "stability", "bins" if settings.table else None, _periods, ["baseline", "recent"])


def _periods(table: np.ndarray) -> np.ndarray:
    """(woe, rows, events) -> (baseline rows, recent rows): the recent rows are the
    period's events."""
    return np.column_stack([table[:, 1] - table[:, 2], table[:, 2]])
