"""What a job program gets from the worker: the job's public description and this
party's own data. Programs run after crypten.init() on every party."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PartyLayout:
    """Public metadata of one party's input, identical on every party."""

    rank: int
    party_id: str
    columns: list[str]
    rows: int  # -1 where unknown to this party; programs learn it from the parties


@dataclass(frozen=True)
class Result:
    """One revealed statistic: float64 values and the labels of their entries."""

    values: np.ndarray
    labels: list[str]


@dataclass
class JobContext:
    kind: str
    partitioning: str  # "horizontal" | "vertical"
    rank: int
    world_size: int
    layout: list[PartyLayout]
    receivers: list[int]
    parameters: dict[str, Any]
    table: np.ndarray  # this party's rows x its columns, float64
    keys: np.ndarray | None = None
    progress: Callable[[str, float], None] = field(default=lambda phase, percent: None)
