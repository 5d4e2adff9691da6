"""Dataset policies as files: the TOML a data owner writes, and back.

    allowed_parties = ["bank-b", "bank-c"]        # who may take part in jobs on it
    allowed_job_kinds = ["stats.summary", "stats.histogram"]
    allowed_columns = ["income", "debt"]           # columns jobs may read
    allowed_result_receivers = ["bank-a"]          # who may receive results
    min_rows = 50                                  # rows the dataset needs for any job
    min_group_size = 10                            # rows behind each released cell (0: min_rows)
    small_groups = "suppress"                      # or "refuse": cells below min_group_size
    allow_extremes = false                         # may min/max (one row's value) be released?
    shared_models_only = false                     # models on it must be keep_shared
    own_coefficients_only = false                  # vertical models: only own coefficients to each party
    min_intersection_size = 0                      # vertical jobs: fewest entities common to all parties
    max_key_ratio = 0                              # vertical jobs: another party's keys / common ones (0: any)
    intersections_per_day = 0                      # vertical jobs per counterparty in 24 hours (0: any)
    forbid_intersection = false                    # no vertical jobs (no private set intersection) on it
    require_dp = false                             # every release must be differentially private
    require_purpose = false                        # every job on it must state its purpose
    dp_budget = { epsilon = 10.0, delta = 1e-6 }   # total privacy loss dp jobs may cause it (composed)
    max_leverage = 0.9                             # largest leverage of one row in a revealed model
    label_release = "exact"                        # or "dp", "shared_only": models with a label of it
    privacy_unit = "customer"                      # datasets with the same unit share one dp_budget
    approval = "automatic"                         # or "manual": the data owner approves each job

    [dp_bounds]                                    # clipping ranges for differentially private jobs
    income = [0, 500000]                           # (a dp job may read only columns listed here)

Every key is optional except that an empty list allows nothing (default deny);
an unknown key is refused, naming it.

A model's policy (`parse_model`: model assets, trained models) has its own keys:

    allowed_parties = ["bank-b"]                   # who may apply it to their rows
    allowed_datasets = ["bank-b/customers"]        # to which datasets ("bank-b/*": any of theirs)
    allowed_result_receivers = ["bank-b"]          # who may receive predictions or metrics
    allowed_job_kinds = ["model.predict", "model.evaluate"]
    approval = "automatic"                         # or "manual"
    min_rows_per_job = 20                          # fewest rows one job may apply it to (the default)
    max_rows_per_party = 100000                    # rows each party may have it applied to, in all (0: any)
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.contract.toml import read_toml, refuse_unknown
from mpc.errors import InvalidArgument

LISTS = ("allowed_parties", "allowed_job_kinds", "allowed_columns", "allowed_result_receivers")
APPROVAL = {"automatic": dpb.APPROVAL_MODE_AUTOMATIC, "manual": dpb.APPROVAL_MODE_MANUAL}
LABEL_RELEASE = {"exact": dpb.LABEL_RELEASE_EXACT, "dp": dpb.LABEL_RELEASE_DP,
                 "shared_only": dpb.LABEL_RELEASE_SHARED_ONLY}
DEFAULT_MAX_LEVERAGE = 0.9
"""A revealed model's largest leverage of one row where a policy sets none: an
indicator column (a row lookup) has 1; scikit-learn's bundled breast_cancer, on
80% of its rows, reaches 0.87 (models/influence.py)."""
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""A TOML key that needs no quotes."""
SMALL_GROUPS = {"suppress": dpb.SMALL_GROUP_ACTION_SUPPRESS, "refuse": dpb.SMALL_GROUP_ACTION_REFUSE}


def load(path: Path) -> dpb.Policy:
    return parse(read_toml(path), str(path))


def _lists(raw: dict[str, Any], where: str, policy: Any, lists: tuple[str, ...], others: set[str]) -> None:
    """Refuses unknown keys (naming them), then fills the policy's string lists."""
    try:
        refuse_unknown(raw, {"": {*lists, *others}})
    except InvalidArgument as err:
        raise InvalidArgument(f"{where}: {err.message.replace('config field', 'policy field')}") from None
    for key in lists:
        values = raw.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"{where}: policy field {key!r} must be a list of strings")
        getattr(policy, key).extend(values)


def parse(raw: dict[str, Any], where: str = "policy") -> dpb.Policy:
    policy = dpb.Policy()
    _lists(raw, where, policy, LISTS, {"min_rows", "min_group_size", "small_groups", "allow_extremes",
                                       "shared_models_only", "own_coefficients_only", "min_intersection_size",
                                       "forbid_intersection", "require_dp", "dp_bounds", "dp_budget",
                                       "approval", "max_leverage", "label_release",
                                       "privacy_unit", "max_key_ratio", "intersections_per_day",
                                       "require_purpose"})
    for key in ("min_rows", "min_group_size", "min_intersection_size", "intersections_per_day"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{where}: policy field {key!r} must be a whole number >= 0")
        setattr(policy, key, value)
    leverage = raw.get("max_leverage", DEFAULT_MAX_LEVERAGE)
    if not isinstance(leverage, (int, float)) or isinstance(leverage, bool) or not 0 < leverage <= 1:
        raise InvalidArgument(f"{where}: policy field 'max_leverage' must be a number in (0, 1]")
    policy.max_leverage = float(leverage)
    ratio = raw.get("max_key_ratio", 0)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not (ratio == 0 or 1 <= ratio < math.inf):
        raise InvalidArgument(f"{where}: policy field 'max_key_ratio' must be 0 (no limit) or a number >= 1")
    policy.max_key_ratio = float(ratio)
    unit = raw.get("privacy_unit", "")
    if not isinstance(unit, str) or len(unit) > 64:
        raise InvalidArgument(f"{where}: policy field 'privacy_unit' must be a name of at most 64 characters")
    policy.privacy_unit = unit
    for key, table, target in (("approval", APPROVAL, "approval_mode"), ("small_groups", SMALL_GROUPS, "small_groups"),
                               ("label_release", LABEL_RELEASE, "label_release")):
        value = raw.get(key, next(iter(table)))
        if value not in table:
            raise InvalidArgument(f"{where}: policy field {key!r} must be one of {', '.join(table)}")
        setattr(policy, target, table[value])
    for key in ("allow_extremes", "shared_models_only", "own_coefficients_only", "forbid_intersection", "require_dp",
                "require_purpose"):
        flag = raw.get(key, False)
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{where}: policy field {key!r} must be true or false")
        setattr(policy, key, flag)
    _dp_bounds(raw.get("dp_bounds", {}), where, policy)
    if "dp_budget" in raw:
        _dp_budget(raw["dp_budget"], where, policy)
    return policy


def _dp_budget(raw: Any, where: str, policy: dpb.Policy) -> None:
    numbers = isinstance(raw, dict) and set(raw) <= {"epsilon", "delta"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw.values())
    if numbers:
        policy.dp_budget.epsilon, policy.dp_budget.delta = float(raw.get("epsilon", 0)), float(raw.get("delta", 0))
    if not numbers or not _valid_budget(policy.dp_budget):
        raise InvalidArgument(f"{where}: policy field 'dp_budget' must be {{epsilon = e, delta = d}} "
                              "with e > 0 and 0 <= d < 1")


def _dp_bounds(raw: Any, where: str, policy: dpb.Policy) -> None:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: policy field 'dp_bounds' must be a table of column = [lower, upper]")
    for column, pair in raw.items():
        numbers = isinstance(pair, list) and len(pair) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
        if not numbers or not pair[0] < pair[1]:
            raise InvalidArgument(f"{where}: dp_bounds for column {column!r} must be [lower, upper], "
                                  "two finite numbers with lower < upper")
        policy.dp_bounds[column].lower, policy.dp_bounds[column].upper = float(pair[0]), float(pair[1])


MODEL_LISTS = ("allowed_parties", "allowed_datasets", "allowed_result_receivers", "allowed_job_kinds")


def parse_model(raw: dict[str, Any], where: str = "model policy") -> Any:
    from gateway.api.gateway.v1 import models_pb2 as mpb

    policy = mpb.ModelPolicy()
    _lists(raw, where, policy, MODEL_LISTS, {"approval", "min_rows_per_job", "max_rows_per_party"})
    for key in ("min_rows_per_job", "max_rows_per_party"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{where}: policy field {key!r} must be a whole number >= 0")
        setattr(policy, key, value)
    approval = raw.get("approval", "automatic")
    if approval not in APPROVAL:
        raise InvalidArgument(f"{where}: policy field 'approval' must be one of {', '.join(APPROVAL)}")
    policy.approval_mode = APPROVAL[approval]
    return policy


def describe(policy: dpb.Policy) -> dict[str, Any]:
    """The policy as the file format's fields (for `datasets show`)."""
    out: dict[str, Any] = {key: list(getattr(policy, key)) for key in LISTS}
    out.update(min_rows=policy.min_rows, min_group_size=policy.min_group_size,
               small_groups=next((k for k, v in SMALL_GROUPS.items() if v == policy.small_groups), "suppress"),
               allow_extremes=policy.allow_extremes, shared_models_only=policy.shared_models_only,
               own_coefficients_only=policy.own_coefficients_only,
               min_intersection_size=policy.min_intersection_size, forbid_intersection=policy.forbid_intersection,
               max_key_ratio=policy.max_key_ratio, intersections_per_day=policy.intersections_per_day,
               require_dp=policy.require_dp, require_purpose=policy.require_purpose,
               dp_bounds={c: [b.lower, b.upper] for c, b in sorted(policy.dp_bounds.items())},
               **({"dp_budget": {"epsilon": policy.dp_budget.epsilon, "delta": policy.dp_budget.delta}}
                  if policy.HasField("dp_budget") else {}),
               max_leverage=max_leverage(policy), privacy_unit=policy.privacy_unit,
               label_release=next((k for k, v in LABEL_RELEASE.items() if v == policy.label_release), "exact"),
               approval=next((k for k, v in APPROVAL.items() if v == policy.approval_mode), "automatic"))
    return out


def to_toml(policy: dpb.Policy) -> str:
    """The policy as the TOML file a data owner writes (`parse` reads it back to
    the same policy): the console's editor starts from it."""
    fields = describe(policy)
    bounds = fields.pop("dp_bounds")
    lines = [f"{key} = {_toml_value(value)}" for key, value in fields.items()]
    if bounds:
        lines += ["", "[dp_bounds]", *(f"{_toml_key(c)} = {_toml_value(pair)}" for c, pair in bounds.items())]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(value) if isinstance(value, str) else str(value)


def _toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    return '"' + "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F else c
                         for c in text) + '"'



def changes(old: dpb.Policy, new: dpb.Policy) -> list[tuple[str, str, str]]:
    """(field, before, after) for every field the new policy changes, as TOML values
    ("(none)" where a field is absent)."""
    before, after = describe(old), describe(new)
    return [(key, _toml_value(before[key]) if key in before else "(none)",
             _toml_value(after[key]) if key in after else "(none)")
            for key in dict.fromkeys([*after, *before]) if before.get(key) != after.get(key)]


def max_leverage(policy: dpb.Policy) -> float:
    """The policy's bound on one row's leverage in a revealed model (0: the default)."""
    return policy.max_leverage or DEFAULT_MAX_LEVERAGE


def _valid_budget(budget: dpb.PrivacyBudget) -> bool:
    return math.isfinite(budget.epsilon) and budget.epsilon > 0 and 0 <= budget.delta < 1
