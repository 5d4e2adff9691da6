"""The rules a party's policy sets on a job's releases, checked against the job's
typed parameters in one place: the registry calls this at review, start and
release (per dataset), and the worker again before the program reads any data
(mpc.programs.run), each party with its own rules."""

from __future__ import annotations

from dataclasses import dataclass

from mpc.catalogue.context import ReleaseRules
from mpc.catalogue.schemas import LogisticParameters, Parameters, StatsParameters, label_of, private


@dataclass(frozen=True)
class Refusal:
    rule: str  # "allow_extremes" | "require_dp" | "dp_bounds"
    columns: tuple[str, ...] = ()

    def describe(self, owner: str) -> str:
        """In words, `owner` naming whose policy it is ("dataset 'loans''s policy")."""
        if self.rule == "allow_extremes":
            return f"{owner} does not allow releasing extremes (min, max)"
        if self.rule == "require_dp":
            return f"{owner} requires differential privacy for every release (parameter dp)"
        return (f"{owner} declares no dp_bounds for columns {', '.join(self.columns)}: a differentially private "
                "job may read only columns with declared clipping bounds")


def refusals(rules: ReleaseRules, parameters: Parameters, columns: list[str]) -> list[Refusal]:
    """What in the job this party's rules refuse, for its input `columns`."""
    found = []
    if isinstance(parameters, StatsParameters) and parameters.extremes and not rules.allow_extremes:
        found.append(Refusal("allow_extremes"))
    dp = private(parameters)
    if rules.require_dp and dp is None:
        found.append(Refusal("require_dp"))
    if dp is not None:
        unbounded = tuple(c for c in columns if c not in rules.dp_bounds and c != unclipped(parameters))
        if unbounded:
            found.append(Refusal("dp_bounds", unbounded))
    return found


def unclipped(parameters: Parameters) -> str | None:
    """The column a dp job reads without clipping bounds: a logistic model's 0/1 label."""
    return label_of(parameters) if isinstance(parameters, LogisticParameters) else None
