"""What a job program gets from the worker: the job's public description, this
party's own data, and this party's own release rules. Programs run after
crypten.init() on every party."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mpc.catalogue.schemas import Parameters

P = TypeVar("P", bound=Parameters)


@dataclass(frozen=True)
class PartyLayout:
    """Public metadata of one party's input, identical on every party."""

    rank: int
    party_id: str
    columns: list[str]
    rows: int  # -1 where unknown to this party; programs learn it from the parties


@dataclass(frozen=True)
class Vocabulary:
    """A categorical column's categories at its owner (its cells are codes into
    them), and whether categories a job does not list count as "other"."""

    categories: tuple[str, ...]
    other: bool = False


@dataclass(frozen=True)
class ReleaseRules:
    """This party's own rules for what may leave it, from its dataset policy. Each
    party applies its own; no other party can loosen them."""

    min_group_size: int = 1  # fewest of this party's rows behind a released cell
    small_groups: str = "suppress"  # "suppress" | "refuse"
    allow_extremes: bool = False  # may min/max (one row's exact value) be released?
    min_intersection: int = 0  # fewest common entities a vertical job may run on
    max_key_ratio: float = 0.0  # largest another party's key count may be beside the intersection (0: any)
    require_dp: bool = False  # every release must be differentially private
    dp_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> clipping range
    max_leverage: float = 1.0  # a revealed model's largest leverage of one training row (1: unbounded)


@dataclass(frozen=True)
class Result:
    """One revealed statistic: float64 values, the labels of their rows (and of
    their columns where those differ), and the flat indices of suppressed entries."""

    values: np.ndarray
    labels: list[str]
    column_labels: list[str] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)


@dataclass
class JobContext:
    kind: str
    partitioning: str  # "horizontal" | "vertical"
    rank: int
    world_size: int
    layout: list[PartyLayout]
    receivers: list[int]
    parameters: Parameters  # typed by the catalogue (mpc.catalogue.kinds.parse)
    table: np.ndarray  # this party's rows x its columns, float64
    keys: np.ndarray | None = None
    aligned: bool = False  # vertical: rows already intersected and ordered alike (mpc.programs.intersection)
    rules: ReleaseRules = field(default_factory=ReleaseRules)
    progress: Callable[[str, float], None] = field(default=lambda phase, percent: None)
    before_release: Callable[[], None] = field(default=lambda: None)
    """Asks this party's gateway, right before anything is revealed, whether the
    release is still allowed (its policy may have changed); raises if not."""
    audit: Callable[[str, dict[str, str]], None] = field(default=lambda action, details: None)
    """Records an event of the job in this party's audit log (action, details)."""
    kept: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)
    """This party's shares of values kept secret-shared (keep_shared models):
    name -> (int64 share, encoder scale). They never leave this party's gateway."""

    categories: dict[str, Vocabulary] = field(default_factory=dict)
    """This party's own categorical columns' vocabularies (mpc.programs.categories)."""
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every categorical column's categories as the job encodes them (public, agreed)."""
    missing_counts: np.ndarray | None = None
    """This party's missing cells per column before the job's `missing` parameter
    handled them (mpc.programs.missing); None before that."""

    model: dict[str, Any] | None = None
    """model.predict / model.evaluate at a party holding the model: its kind
    ("asset" | "mlp"), architecture, and the ONNX file, revealed values or shares."""
    public: dict[str, np.ndarray] = field(default_factory=dict)
    """Values every party of the job knows that belong with what it keeps (a
    model's public input frame); stored with the model at every party."""

    def settings(self, schema: type[P]) -> P:
        """The job's parameters as `schema` (the catalogue pairs each kind with its own)."""
        if not isinstance(self.parameters, schema):
            raise TypeError(f"{self.kind} takes {type(self.parameters).__name__}, not {schema.__name__}")
        return self.parameters

    def keep_shares(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.kept[name] = (value._tensor.share.numpy().copy(), int(value.encoder.scale))
