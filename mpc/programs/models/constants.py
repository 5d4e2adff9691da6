"""A constant feature in a linear or logistic model: scikit-learn gives it
coefficient 0, and so does mpcgate instead of refusing the job.

Every party learns which features are constant (horizontal: one bit per feature,
`stats.horizontal.constant_columns`; vertical: each owner names its own). The
program fits the other features; the released model gets the constant ones back
with coefficient 0, deviation 0 and their value as the mean, which a party holding
it (the owner; horizontally the first party with rows) shares and only the
receivers open. A model kept shared (keep_shared) is refused instead: its shares
would not match the job's columns when it is applied. Without an intercept a
constant feature plays the intercept's part: it is fitted as any feature."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LinearParameters
from mpc.errors import InvalidArgument
from mpc.programs import secure
from mpc.programs.stats import horizontal

Program = Callable[[JobContext], dict[str, Result] | None]
PER_FEATURE = {"coefficients": 0.0, "feature_stds": 0.0, "feature_means": None}


def without_constant_features(ctx: JobContext, label: str, program: Program) -> dict[str, Result] | None:
    """`program` on the features that vary, the constant ones spliced back in."""
    secure.configure()
    if not ctx.settings(LinearParameters).fit_intercept:  # through the origin a constant feature is the intercept
        return program(ctx)
    constants = _constant_features(ctx, label)
    if not constants:
        return program(ctx)
    if ctx.settings(LinearParameters).keep_shared:
        raise InvalidArgument(f"feature {constants[0]!r} is constant: a model kept shared cannot leave it out; drop "
                              "it from the job")
    mine = ctx.layout[ctx.rank].columns
    reduced = dataclasses.replace(
        ctx, table=ctx.table[:, [j for j, c in enumerate(mine) if c not in constants]],
        layout=[dataclasses.replace(e, columns=[c for c in e.columns if c not in constants]) for e in ctx.layout])
    results = program(reduced)
    values = _values(ctx, constants)
    if results is None or values is None:
        return results
    features = [c for c in _all_columns(ctx) if c != label]
    return {name: _spliced(name, result, features, constants, values, mine) if name in PER_FEATURE else result
            for name, result in results.items()}


def _all_columns(ctx: JobContext) -> list[str]:
    if ctx.partitioning == "horizontal":
        return list(ctx.layout[0].columns)
    return [c for entry in ctx.layout for c in entry.columns]


def _constant_features(ctx: JobContext, label: str) -> list[str]:
    mine = [c for c in ctx.layout[ctx.rank].columns if c != label]
    x = ctx.table[:, [ctx.layout[ctx.rank].columns.index(c) for c in mine]]
    if ctx.partitioning == "horizontal":
        return [c for c, flat in zip(mine, horizontal.constant_columns(ctx, x)) if flat]
    own = [c for j, c in enumerate(mine) if len(x) and bool(np.all(x[:, j] == x[0, j]))]
    return [c for names in secure.public(ctx, own) for c in names]


def _values(ctx: JobContext, constants: list[str]) -> dict[str, float] | None:
    """Each constant feature's value, opened to the receivers only (exact: float64
    in limbs), from a party that holds it."""
    if ctx.partitioning == "vertical":
        holders = [next(e.rank for e in ctx.layout if name in e.columns) for name in constants]
    else:
        holders = [[bool(rows) for rows in secure.public(ctx, len(ctx.table))].index(True)] * len(constants)
    mine = ctx.layout[ctx.rank].columns
    shared = []
    for r in sorted(set(holders)):
        names = [c for c, h in zip(constants, holders) if h == r]
        local = secure.split(np.array([ctx.table[0, mine.index(c)] for c in names])) if r == ctx.rank else None
        shared.append((names, secure.share_from(ctx, r, local, (secure.SPLIT_ROWS, len(names)))))
    opened = secure.open_to_receivers(ctx, [value for _, value in shared])
    if opened is None:
        return None
    return {c: float(v) for (names, _), o in zip(shared, opened) for c, v in zip(names, secure.join(o))}


def _spliced(name: str, result: Result, features: list[str], constants: list[str], values: dict[str, float],
             mine: list[str]) -> Result:
    """A per-feature result with the constant features inserted in the job's order:
    all of them where it covers every varying feature, else (own_coefficients) this
    party's own."""
    fill = PER_FEATURE[name]
    if result.column_labels:  # classes x features (multiclass coefficients): columns spliced
        by_feature = dict(zip(result.column_labels, result.values.T))
        columns = [f for f in features if f in by_feature or f in constants]
        out2 = [by_feature[f] if f in by_feature else np.full(len(result.labels), fill) for f in columns]
        return dataclasses.replace(result, values=np.column_stack(out2), column_labels=columns)
    given = dict(zip(result.labels, result.values))
    varying = [f for f in features if f not in constants]
    everyone = set(result.labels) == set(varying)
    labels = [f for f in features if f in given or (f in constants and (everyone or f in mine))]
    out = [given[f] if f in given else (values[f] if fill is None else fill) for f in labels]
    return dataclasses.replace(result, values=np.array(out, dtype=np.float64), labels=labels)
