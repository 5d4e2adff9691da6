"""A dataset policy's review of one proposed job: a pure function of the policy,
the dataset's metadata and the job spec, every refusal with its reason; and the
policy as the release rules its party applies while the job runs."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract.policies import max_leverage
from gateway.jobs.contracts import Review, participants
from mpc.catalogue.context import ReleaseRules
from mpc.catalogue.kinds import KINDS
from mpc.catalogue.rules import refusals
from mpc.catalogue.schemas import (
    BinnedParameters,
    LinearParameters,
    Parameters,
    ScorecardParameters,
    SupervisedParameters,
    label_of,
    missing_choice,
    private,
)


def review(policy: dpb.Policy, dataset: dpb.Dataset, spec: pb.JobSpec, parameters: Parameters,
           columns: Iterable[str], me: str) -> Review:
    """Whether a job may use `columns` of `dataset`: a pure function of the policy,
    the dataset's metadata and the job spec (its parameters typed). Every refusal
    gives its reason."""
    columns = list(columns)
    reasons = []
    others = sorted(set(participants(spec)) - {me})
    strangers = [p for p in others if p not in policy.allowed_parties]
    if strangers:
        reasons.append(f"parties {', '.join(strangers)} may not use dataset {dataset.name!r}")
    if spec.kind not in policy.allowed_job_kinds:
        reasons.append(f"job kind {spec.kind!r} is not allowed on dataset {dataset.name!r}")
    hidden = [c for c in columns if c not in policy.allowed_columns]
    if hidden:
        reasons.append(f"columns {', '.join(hidden)} of dataset {dataset.name!r} are not allowed")
    receivers = [r for r in spec.result_receivers if r not in policy.allowed_result_receivers]
    if receivers:
        reasons.append(f"result receivers {', '.join(receivers)} are not allowed for dataset {dataset.name!r}")
    if policy.min_rows <= 0:
        reasons.append(f"dataset {dataset.name!r}'s policy sets no min_rows (0): it allows no job until it sets the "
                       "fewest rows behind any released aggregate (1 or more)")
    elif dataset.row_count < policy.min_rows:
        reasons.append(f"dataset {dataset.name!r} has {dataset.row_count} rows; its policy needs at least "
                       f"{policy.min_rows} behind any released aggregate")
    owner = f"dataset {dataset.name!r}'s policy"
    if policy.require_purpose and not spec.purpose.strip():
        reasons.append(f"{owner} requires every job to state its purpose (purpose)")
    reasons += [refusal.describe(owner) for refusal in refusals(release_rules(policy), parameters, columns)]
    shared = _shared(parameters)  # (a vertical scorecard gives each bank its own columns' points only)
    own = isinstance(parameters, ScorecardParameters) or (isinstance(parameters, LinearParameters)
                                                          and parameters.own_coefficients)
    if spec.kind.startswith("model.") and policy.shared_models_only and not shared:
        reasons.append(f"{owner} allows only models kept secret-shared (keep_shared)")
    if spec.partitioning == pb.PARTITIONING_VERTICAL and policy.forbid_intersection:
        reasons.append(f"dataset {dataset.name!r}'s policy forbids private set intersection (vertical jobs)")
    vertical_model = spec.kind.startswith("model.") and spec.partitioning == pb.PARTITIONING_VERTICAL
    if vertical_model and policy.own_coefficients_only and not (shared or own):
        reasons.append(f"dataset {dataset.name!r}'s policy reveals a model's coefficients only to the party whose "
                       "features they weigh (own_coefficients) or to nobody (keep_shared)")
    reasons += _label_rules(policy, dataset, spec, parameters, columns)
    reasons += _imputation_rules(policy, dataset, spec, parameters, columns, others)
    if reasons:
        return Review("reject", reasons)
    return Review("manual" if policy.approval_mode == dpb.APPROVAL_MODE_MANUAL else "approve")


def _label_rules(policy: dpb.Policy, dataset: dpb.Dataset, spec: pb.JobSpec, parameters: Parameters,
                 columns: list[str]) -> list[str]:
    """How a model trained on one of this dataset's columns as its label may leave
    (label_release; WOE tables only where it is exact); own_coefficients_only at a label holder: no other party
    receives coefficients, which all rest on its labels."""
    label = label_of(parameters)
    if label is None or label not in columns:
        return []
    if isinstance(parameters, BinnedParameters):  # WOE, stability or points tables: each bin's events (recent rows)
        reasons = []
        if parameters.tables and policy.label_release in (dpb.LABEL_RELEASE_DP, dpb.LABEL_RELEASE_SHARED_ONLY):
            reasons.append(f"dataset {dataset.name!r}'s policy does not release exact aggregates of its label "
                           f"{label!r}: bin tables (each bin's events) are refused; ask for {parameters.without_tables}")
        vertical = spec.partitioning == pb.PARTITIONING_VERTICAL
        if isinstance(parameters, ScorecardParameters) and policy.own_coefficients_only and vertical:
            reasons.append(f"dataset {dataset.name!r} holds the label {label!r} and its policy reveals coefficients "
                           "only to their own party: every bank's scorecard points rest on its labels")
        return reasons
    if not KINDS[spec.kind].trains_model:
        return []
    shared = _shared(parameters)
    reasons = []
    if policy.label_release == dpb.LABEL_RELEASE_SHARED_ONLY and not shared:
        reasons.append(f"dataset {dataset.name!r}'s policy releases models trained on its label "
                       f"{label!r} only as secret shares (keep_shared)")
    if policy.label_release == dpb.LABEL_RELEASE_DP and not (private(parameters) is not None or shared):
        reasons.append(f"dataset {dataset.name!r}'s policy releases models trained on its label "
                       f"{label!r} only with differential privacy (parameter dp) or kept shared")
    if policy.own_coefficients_only and spec.partitioning == pb.PARTITIONING_VERTICAL and not shared:
        reasons.append(f"dataset {dataset.name!r} holds the label {label!r} and its policy reveals "
                       "coefficients only to their own party: every party's coefficients rest on its labels, so "
                       "only keep_shared models may be trained on it")
    return reasons


def _imputation_rules(policy: dpb.Policy, dataset: dpb.Dataset, spec: pb.JobSpec, parameters: Parameters,
                      columns: list[str], others: list[str]) -> list[str]:
    """A horizontal job imputing a column with its pooled mean or median tells that
    value to every party of the job (mpc.programs.missing): each must be an
    allowed receiver, and a policy that requires differential privacy refuses it."""
    imputed = [c for c in columns if missing_choice(parameters, c) in ("mean", "median", "indicator")]
    if spec.partitioning == pb.PARTITIONING_VERTICAL or not imputed:
        return []
    reasons = []
    strangers = [p for p in others if p not in policy.allowed_result_receivers]
    if strangers:
        reasons.append(f"imputing columns {', '.join(imputed)} of dataset {dataset.name!r} tells their pooled mean "
                       f"or median to every party, and {', '.join(strangers)} may not receive its results")
    if policy.require_dp:
        reasons.append(f"dataset {dataset.name!r}'s policy requires differential privacy: the pooled mean or median "
                       f"that imputes columns {', '.join(imputed)} would be released without it")
    return reasons


def _shared(parameters: Parameters) -> bool:
    return isinstance(parameters, SupervisedParameters) and parameters.keep_shared


def release_rules(policy: dpb.Policy) -> ReleaseRules:
    """One dataset's policy as the release rules its party applies."""
    return ReleaseRules(
        min_group_size=max(policy.min_group_size or policy.min_rows, 1),
        small_groups="refuse" if policy.small_groups == dpb.SMALL_GROUP_ACTION_REFUSE else "suppress",
        allow_extremes=policy.allow_extremes,
        min_intersection=policy.min_intersection_size,
        max_key_ratio=policy.max_key_ratio,
        require_dp=policy.require_dp,
        dp_bounds={c: (b.lower, b.upper) for c, b in policy.dp_bounds.items()},
        max_leverage=max_leverage(policy),
    )
