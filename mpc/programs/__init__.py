"""Job programs: what a joint job computes, by kind. Each takes a JobContext and
returns the revealed results on result receivers (None elsewhere)."""

from __future__ import annotations

from collections.abc import Callable

from mpc.programs import stats
from mpc.programs.context import JobContext, Result

Program = Callable[[JobContext], "dict[str, Result] | None"]

PROGRAMS: dict[str, Program] = {
    "stats.describe": stats.describe,
    "stats.covariance": stats.covariance,
    "stats.correlation": stats.correlation,
    "stats.summary": stats.summary,
    "stats.histogram": stats.histogram,
}
