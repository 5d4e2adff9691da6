"""Job programs: what a joint job computes, by kind (the kinds, their parameters
and checks: mpc.catalogue.kinds). Each program takes a JobContext and returns the
revealed results on result receivers (None elsewhere); its docstring says what
every party learns. Importing this package readies CrypTen (mpc.runtime): only a
job's worker process does."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import mpc.runtime  # noqa: F401  (CrypTen on modern torch, before any program imports it)

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.kinds import KINDS
from mpc.catalogue.rules import refusals
from mpc.errors import FailedPrecondition
from mpc.programs import categories, missing

Program = Callable[[JobContext], "dict[str, Result] | None"]


def program(kind: str) -> Program:
    """The function that computes `kind` (the catalogue names it)."""
    module, _, name = KINDS[kind].program.partition(":")
    found: Program = getattr(importlib.import_module(module), name)
    return found


def preload() -> None:
    """Imports every kind's program (a warm worker does, ahead of its job)."""
    for kind in KINDS:
        program(kind)


def run(ctx: JobContext) -> dict[str, Result] | None:
    """A job's program at this party: vertical jobs first intersect and align the
    parties' rows (mpc.programs.intersection), the parties agree on categorical
    columns' categories, missing cells are handled as the job says
    (mpc.programs.missing), categorical columns are one-hot encoded
    (mpc.programs.categories), then the kind's program runs."""
    found = refusals(ctx.rules, ctx.parameters, ctx.layout[ctx.rank].columns)  # this party's own rules, again
    if found:
        raise FailedPrecondition("; ".join(refusal.describe("this party's policy") for refusal in found))
    if ctx.partitioning == "vertical" and not ctx.aligned:
        from mpc.programs.intersection.align import align

        ctx = align(ctx)
    return program(ctx.kind)(categories.encode(missing.prepare(categories.announce(ctx))))
