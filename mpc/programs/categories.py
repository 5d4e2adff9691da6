"""Categorical columns, before a job's program runs: the parties agree on each
categorical column's categories (`announce`, right after vertical alignment),
and each party one-hot encodes its own columns (`encode`, after missing cells
are handled), so programs see numeric tables whose columns are named
"<column>=<category>".

A column's categories are the job's `categories` parameter where it names them;
otherwise every party holding the column announces its categories that hold at
least its min_group_size of its rows (the job's rows: vertical, the common
ones), and the column's categories are the union, sorted. A party's rows in
categories outside that list count as the category "other" where its schema
says so (the other column is then part of the encoding at every party), or the
job is refused. What every party learns: the categories so announced or listed,
which party's schema allows "other", and whether a party refused. Missing cells
of a categorical column are dropped (`missing: drop`) or encoded as no category
(all zeros; `indicator` adds its 0/1 column too).

Only models and stats.crosstab read categorical columns: a one-hot column's sum
is a category's count, which the other statistics would release without the
small-group rule (stats.crosstab applies it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpc.catalogue.context import JobContext
from mpc.catalogue.kinds import KINDS
from mpc.catalogue.schemas import label_of
from mpc.errors import FailedPrecondition
from mpc.programs import secure

OTHER = "other"


def announce(ctx: JobContext) -> JobContext:
    """`ctx` with `vocabularies`: every categorical column's categories (public),
    agreed by one exchange (two where a party must check its rows against them)."""
    columns = ctx.layout[ctx.rank].columns
    chosen = dict(ctx.parameters.categories)
    offers = {}
    for j, column in enumerate(columns):
        vocabulary = ctx.categories.get(column)
        if vocabulary is None:
            continue
        counts = np.bincount(ctx.table[~np.isnan(ctx.table[:, j]), j].astype(np.int64),
                             minlength=len(vocabulary.categories))
        common = [c for c, n in zip(vocabulary.categories, counts) if n >= ctx.rules.min_group_size]
        offers[column] = (None if column in chosen else common, vocabulary.other)
    everyone = secure.public(ctx, offers)
    declared = sorted({c for offer in everyone for c in offer})
    if not declared:
        return ctx
    problem = _misdeclared(ctx, everyone, declared)
    vocabularies = {}
    for column in declared:
        levels = list(chosen[column]) if column in chosen else sorted(
            {c for offer in everyone if column in offer for c in offer[column][0] or ()})
        if any(offer[column][1] for offer in everyone if column in offer) and OTHER not in levels:
            levels.append(OTHER)
        vocabularies[column] = tuple(levels)
    problem = problem or _unlisted(ctx, vocabularies)
    problems = [p for p in secure.public(ctx, problem) if p]
    if problems:
        raise FailedPrecondition(problems[0])
    return dataclasses.replace(ctx, vocabularies=vocabularies)


def _misdeclared(ctx: JobContext, everyone: list[dict[str, tuple[list[str] | None, bool]]], declared: list[str]) -> str:
    """Why the job cannot use these categorical columns ("" if it can)."""
    if not KINDS[ctx.kind].categorical:
        return (f"column {declared[0]!r} is categorical: only models and stats.crosstab read categorical columns "
                "(a one-hot column's sum is a category's count)")
    if label_of(ctx.parameters) in declared:
        return f"the label {label_of(ctx.parameters)!r} is categorical: a label holds numbers (classes 0, 1, ..)"
    if ctx.partitioning == "horizontal":
        for column in declared:
            holders = [r for r, e in enumerate(ctx.layout) if column in e.columns]
            numeric = [ctx.layout[r].party_id for r in holders if column not in everyone[r]]
            if numeric:
                return f"column {column!r} is categorical at some parties and numeric at {', '.join(numeric)}"
    return ""


def _unlisted(ctx: JobContext, vocabularies: dict[str, tuple[str, ...]]) -> str:
    """Whether this party holds rows in categories the job does not list and its
    schema has no "other" for them."""
    columns = ctx.layout[ctx.rank].columns
    for column, levels in vocabularies.items():
        vocabulary = ctx.categories.get(column)
        if vocabulary is None or vocabulary.other:
            continue
        codes = ctx.table[:, columns.index(column)]
        held = {vocabulary.categories[int(c)] for c in np.unique(codes[~np.isnan(codes)])}
        if held - set(levels):
            return (f"party {ctx.layout[ctx.rank].party_id} holds categories of column {column!r} that the job does "
                    "not list (name them in parameter categories, or let its schema count them as other)")
    return ""


def encode(ctx: JobContext) -> JobContext:
    """Each categorical column replaced, in place, by one 0/1 column per category
    ("<column>=<category>"), at its owner's table and in every party's layout."""
    if not ctx.vocabularies:
        return ctx
    columns = ctx.layout[ctx.rank].columns
    parts = []
    for j, column in enumerate(columns):
        levels = ctx.vocabularies.get(column)
        vocabulary = ctx.categories.get(column)
        if levels is None or vocabulary is None:
            parts.append(ctx.table[:, j : j + 1])
            continue
        index = {level: k for k, level in enumerate(levels)}
        lookup = np.array([index.get(c, index.get(OTHER, -1)) for c in vocabulary.categories], dtype=np.int64)
        codes = np.nan_to_num(ctx.table[:, j], nan=-1).astype(np.int64)  # (missing: -1, no category)
        mapped = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)
        one_hot = np.zeros((len(codes), len(levels)))
        present = mapped >= 0
        one_hot[np.flatnonzero(present), mapped[present]] = 1.0
        parts.append(one_hot)
    table = np.concatenate(parts, axis=1) if parts else ctx.table
    layout = [dataclasses.replace(e, columns=_encoded(e.columns, ctx.vocabularies)) for e in ctx.layout]
    return dataclasses.replace(ctx, table=table, layout=layout)


def _encoded(columns: list[str], vocabularies: dict[str, tuple[str, ...]]) -> list[str]:
    return [name for c in columns for name in ([f"{c}={level}" for level in vocabularies[c]] if c in vocabularies
                                                else [c])]
