"""Dataset registration refuses bad files with messages naming file, column and row,
and leaves nothing half-registered; the policy review is a pure, default-deny
function whose every refusal carries a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.jobs.contracts import parameters_of
from gateway.registry.datasets import Registry
from gateway.registry.review import review
from mpc.errors import AlreadyExists, InvalidArgument, NotFound

ME = "bank-a"


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    (tmp_path / "data").mkdir()
    return Registry(tmp_path / "gateway.db", tmp_path / "data", ME)


def _register(registry: Registry, name: str, path: str, **kw: object) -> dpb.Dataset:
    return registry.register(dpb.RegisterDatasetRequest(name=name, path=path, policy=dpb.Policy(), **kw))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("a,b\n", "the table has no rows"),
        ("a,b\n1,2\n3,oops\n", "column 'b', row 3: not a number"),
        ("a,b\n1,2\n-inf,4\n", "column 'a', row 3: -inf is not a finite number"),
        ("a,b\n1,2\n3,n/a?\n", "column 'b', row 3: not a number \\(nor a missing cell"),
        ("a,b\n1,2\n3\n", "row 3 has 1 fields"),
    ],
)
def test_bad_files_are_refused_and_nothing_remains(registry: Registry, tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "data" / "t.csv").write_text(content)
    with pytest.raises(InvalidArgument, match=message) as err:
        _register(registry, "t", "t.csv")
    assert "t.csv" in err.value.message
    assert registry.list() == []


def test_files_outside_the_data_directory_are_refused(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n2\n")
    for path in ("../secret.csv", str(tmp_path / "secret.csv")):
        with pytest.raises(InvalidArgument, match="inside the gateway's data directory"):
            _register(registry, "t", path)


def test_registration_reads_schema_and_key(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "data" / "t.csv").write_text("id,x,y\nk1,1,2\nk2,3,4.5\n")
    dataset = _register(registry, "t", "t.csv", key_column="id")
    assert dataset.row_count == 2 and dataset.key_column == "id"
    assert [(c.name, c.type) for c in dataset.columns] == [("x", dpb.COLUMN_TYPE_NUMERIC), ("y", dpb.COLUMN_TYPE_NUMERIC), ("id", dpb.COLUMN_TYPE_KEY)]
    with pytest.raises(AlreadyExists):
        _register(registry, "t", "t.csv", key_column="id")
    (tmp_path / "data" / "dup.csv").write_text("id,x\nk1,1\nk1,2\n")
    with pytest.raises(InvalidArgument, match="appears more than once"):
        _register(registry, "dup", "dup.csv", key_column="id")
    registry.delete("t")
    with pytest.raises(NotFound):
        registry.get("t")


def test_missing_cells_are_counted_stored_as_nulls_and_refused_where_declared_complete(registry: Registry,
                                                                                      tmp_path: Path) -> None:
    (tmp_path / "data" / "t.csv").write_text("id,x,y,z\nk1,1,,2\nk2, NA ,4,2\nk3,3,?,NaN\nk4,.,null,2\n")
    dataset = _register(registry, "t", "t.csv", key_column="id")
    assert [(c.name, c.nullable, c.missing_count) for c in dataset.columns[:3]] == [
        ("x", True, 2), ("y", True, 3), ("z", True, 1)]
    source = registry.load(pb.Job(spec=pb.JobSpec(kind="stats.describe")),
                           pb.JobInput(dataset="t", columns=["x", "y", "z"])).source
    values, _ = source.read()
    assert values.shape == (4, 3) and int(np.isnan(values).sum()) == 6 and values[2, 0] == 3.0
    with pytest.raises(InvalidArgument, match="t.csv: column 'y', row 2: a cell is missing, and the column is "
                                              "declared complete"):
        _register(registry, "t2", "t.csv", key_column="id", complete_columns=["y"])
    with pytest.raises(InvalidArgument, match="complete column 'id' is not among the registered columns"):
        _register(registry, "t2", "t.csv", key_column="id", complete_columns=["id"])
    (tmp_path / "data" / "u.csv").write_text("x,y\n1,2\n3,4\n")
    assert not _register(registry, "u", "u.csv", complete_columns=["x"]).columns[0].nullable


def test_text_columns_register_as_categorical_with_their_vocabulary(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "data" / "t.csv").write_text("x,region,code,mixed\n1, north,3,a\n2,south,1,2\n3,NA,3,b\n4,north,2,c\n")
    with pytest.raises(InvalidArgument, match="column 'mixed', row 2: not a number"):
        _register(registry, "t", "t.csv")  # a numeric column with a stray text cell, or text with a number
    dataset = _register(registry, "t", "t.csv", numeric_columns=["x", "region", "code"],
                        categorical_columns=["code"], other_columns=["region"])
    shown = {c.name: (c.type, list(c.categories), c.other, c.missing_count) for c in dataset.columns}
    assert shown == {"x": (dpb.COLUMN_TYPE_NUMERIC, [], False, 0),
                     "region": (dpb.COLUMN_TYPE_CATEGORICAL, ["north", "south"], True, 1),
                     "code": (dpb.COLUMN_TYPE_CATEGORICAL, ["1", "2", "3"], False, 0)}
    source = registry.load(pb.Job(spec=pb.JobSpec(kind="model.mlp")),
                           pb.JobInput(dataset="t", columns=["region", "code"])).source
    values, _ = source.read()
    np.testing.assert_array_equal(values, [[0, 2], [1, 0], [np.nan, 2], [0, 1]])
    assert source.categories["region"].categories == ("north", "south") and source.categories["region"].other
    with pytest.raises(InvalidArgument, match="other column 'x' is not among the categorical columns"):
        _register(registry, "t2", "t.csv", numeric_columns=["x"], other_columns=["x"])
    registry.update_policy("t", _policy(allowed_columns=["x", "region"], allowed_job_kinds=["stats.describe"]))
    spec = pb.JobSpec(kind="stats.describe", result_receivers=[ME], partitioning=pb.PARTITIONING_HORIZONTAL,
                      inputs=[pb.JobInput(party_id=ME, dataset="t", columns=["x", "region"])])
    with pytest.raises(InvalidArgument, match="column 'region' of dataset 't' at 'bank-a' is categorical: "
                                              "stats.describe reads numeric columns"):
        registry.review(pb.Job(job_id="j", spec=spec), ME)


def test_a_job_must_say_what_to_do_with_a_column_s_missing_cells(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "data" / "t.csv").write_text("x,y\n1,\n2,3\n4,5\n")
    _register(registry, "t", "t.csv")
    registry.update_policy("t", _policy(allowed_columns=["x", "y"], min_rows=1, allowed_result_receivers=[ME, "bank-b"]))

    def job(columns: list[str], **parameters: object) -> pb.Job:
        spec = pb.JobSpec(kind="stats.describe", result_receivers=[ME], partitioning=pb.PARTITIONING_HORIZONTAL,
                          inputs=[pb.JobInput(party_id=p, dataset="t", columns=columns) for p in (ME, "bank-b")])
        spec.parameters.update(parameters)
        return pb.Job(job_id="j1", spec=spec)

    assert registry.review(job(["x"]), ME).decision == "approve"  # (x is complete)
    with pytest.raises(InvalidArgument, match="column 'y' of dataset 't' at 'bank-a' has 1 missing cells \\(of 3\\): "
                                              "say what the job does with them, parameter missing"):
        registry.review(job(["x", "y"]), ME)
    assert registry.review(job(["x", "y"], missing="drop"), ME).decision == "approve"
    assert registry.review(job(["x", "y"], missing={"y": "median"}), ME).decision == "approve"


# -- the policy review -------------------------------------------------------------------

def _dataset(rows: int = 1000) -> dpb.Dataset:
    return dpb.Dataset(name="loans", party_id=ME, row_count=rows)


def _policy(**overrides: object) -> dpb.Policy:
    fields = dict(allowed_parties=["bank-b", "bank-c"], allowed_job_kinds=["stats.describe"],
                  allowed_columns=["income", "debt"], allowed_result_receivers=["bank-a"], min_rows=100,
                  approval_mode=dpb.APPROVAL_MODE_AUTOMATIC)
    fields.update(overrides)
    return dpb.Policy(**fields)


def _spec(parties: list[str] = ["bank-a", "bank-b"], kind: str = "stats.describe",
          receivers: list[str] = ["bank-a"], partitioning: int = pb.PARTITIONING_VERTICAL,
          **parameters: object) -> pb.JobSpec:
    spec = pb.JobSpec(kind=kind, inputs=[pb.JobInput(party_id=p, dataset="loans", columns=["income"]) for p in parties],
                      result_receivers=receivers, partitioning=partitioning)
    spec.parameters.update(parameters)
    return spec


def _purposed(purpose: str) -> pb.JobSpec:
    spec = _spec()
    spec.purpose = purpose
    return spec


MODELS = dict(allowed_job_kinds=["model.linear_regression"])


@pytest.mark.parametrize(
    ("policy", "spec", "columns", "rows", "decision", "reason"),
    [
        (_policy(), _spec(), ["income"], 1000, "approve", ""),
        (_policy(approval_mode=dpb.APPROVAL_MODE_MANUAL), _spec(), ["income"], 1000, "manual", ""),
        (_policy(), _spec(["bank-a", "bank-z"]), ["income"], 1000, "reject", "parties bank-z may not"),
        (_policy(), _spec(kind="stats.correlation"), ["income"], 1000, "reject", "job kind 'stats.correlation'"),
        (_policy(), _spec(), ["income", "ssn"], 1000, "reject", "columns ssn"),
        (_policy(), _spec(receivers=["bank-b"]), ["income"], 1000, "reject", "result receivers bank-b"),
        (_policy(), _spec(), ["income"], 99, "reject", "needs at least 100"),
        (dpb.Policy(), _spec(), ["income"], 1000, "reject", "may not use"),  # default deny
        (_policy(shared_models_only=True, **MODELS), _spec(kind="model.linear_regression", label="debt"), ["income"], 1000,
         "reject", "only models kept secret-shared"),
        (_policy(own_coefficients_only=True, **MODELS), _spec(kind="model.linear_regression", label="debt"), ["income"], 1000,
         "reject", "only to the party whose features"),
        (_policy(own_coefficients_only=True, **MODELS), _spec(kind="model.linear_regression", label="debt", own_coefficients=True),
         ["income"], 1000, "approve", ""),
        (_policy(own_coefficients_only=True, **MODELS), _spec(kind="model.linear_regression", label="debt", keep_shared=True),
         ["income"], 1000, "approve", ""),
        (_policy(forbid_intersection=True), _spec(), ["income"], 1000, "reject", "forbids private set intersection"),
        (_policy(require_dp=True), _spec(), ["income"], 1000, "reject", "requires differential privacy"),
        (_policy(require_dp=True, dp_bounds={"income": dpb.ClipBounds(lower=0, upper=1e6)}),
         _spec(dp={"epsilon": 1.0}), ["income"], 1000, "approve", ""),
        (_policy(dp_bounds={"income": dpb.ClipBounds(lower=0, upper=1e6)}), _spec(dp={"epsilon": 1.0}),
         ["income", "debt"], 1000, "reject", "no dp_bounds for columns debt"),
        (_policy(), _spec(missing="mean", partitioning=pb.PARTITIONING_HORIZONTAL), ["income"], 1000, "reject",
         "tells their pooled mean or median to every party, and bank-b may not receive"),
        (_policy(allowed_result_receivers=["bank-a", "bank-b"]), _spec(missing="median",
         partitioning=pb.PARTITIONING_HORIZONTAL), ["income"], 1000, "approve", ""),
        (_policy(), _spec(missing="mean"), ["income"], 1000, "approve", ""),  # vertical: the owner fills its own
        (_policy(), _spec(missing="drop", partitioning=pb.PARTITIONING_HORIZONTAL), ["income"], 1000, "approve", ""),
        (_policy(require_purpose=True), _spec(), ["income"], 1000, "reject", "requires every job to state its purpose"),
        (_policy(require_purpose=True), _purposed(" \n"), ["income"], 1000, "reject", "state its purpose"),
        (_policy(require_purpose=True), _purposed("fraud model refresh"), ["income"], 1000, "approve", ""),
    ],
    ids=["allowed", "manual", "party", "kind", "column", "receiver", "rows", "empty policy", "shared only",
         "own only", "own given", "shared given", "no intersections", "exact under require_dp", "private",
         "unbounded column", "pooled fill to a stranger", "pooled fill to receivers", "own fill", "drop",
         "no purpose", "blank purpose", "purpose"],
)
def test_policy_decisions(policy: dpb.Policy, spec: pb.JobSpec, columns: list[str], rows: int, decision: str, reason: str) -> None:
    verdict = review(policy, _dataset(rows), spec, parameters_of(spec), columns, ME)
    assert verdict.decision == decision
    assert (reason in "; ".join(verdict.reasons)) if reason else verdict.reasons == []


NAMES = st.sampled_from(["bank-b", "bank-c", "bank-d", "uni-x"])
KINDS = st.sampled_from(["stats.describe", "stats.correlation", "stats.summary"])
COLS = st.sampled_from(["income", "debt", "age", "ssn"])


@settings(max_examples=300, deadline=None)
@given(
    allowed_parties=st.lists(NAMES, unique=True), allowed_kinds=st.lists(KINDS, unique=True),
    allowed_columns=st.lists(COLS, unique=True), allowed_receivers=st.lists(st.sampled_from([ME, "bank-b"]), unique=True),
    min_rows=st.integers(0, 2000), rows=st.integers(0, 2000),
    others=st.lists(NAMES, min_size=1, max_size=3, unique=True), kind=KINDS,
    columns=st.lists(COLS, min_size=1, max_size=4, unique=True),
    receivers=st.lists(st.sampled_from([ME, "bank-b"]), min_size=1, unique=True),
)
def test_nothing_outside_the_policy_is_ever_allowed(allowed_parties, allowed_kinds, allowed_columns, allowed_receivers,
                                                    min_rows, rows, others, kind, columns, receivers) -> None:  # type: ignore[no-untyped-def]
    policy = dpb.Policy(allowed_parties=allowed_parties, allowed_job_kinds=allowed_kinds, allowed_columns=allowed_columns,
                        allowed_result_receivers=allowed_receivers, min_rows=min_rows)
    spec = _spec([ME, *others], kind, receivers)
    verdict = review(policy, _dataset(rows), spec, parameters_of(spec), columns, ME)
    inside = (set(others) <= set(allowed_parties) and kind in allowed_kinds and set(columns) <= set(allowed_columns)
              and set(receivers) <= set(allowed_receivers) and 0 < min_rows <= rows)
    assert (verdict.decision != "reject") == inside
    if verdict.decision == "reject":
        assert verdict.reasons


def test_parquet_files_are_read_and_validated(registry: Registry, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b", "c"], "x": [1.0, 2.5, 3.0], "n": [1, 2, 3]}), tmp_path / "data" / "t.parquet")
    dataset = _register(registry, "t", "t.parquet", key_column="id")
    assert dataset.format == dpb.FILE_FORMAT_PARQUET and dataset.row_count == 3
    assert [c.name for c in dataset.columns if c.type == dpb.COLUMN_TYPE_NUMERIC] == ["x", "n"]
    pq.write_table(pa.table({"x": [1.0, None, 3.0], "y": [1.0, float("nan"), float("inf")]}),
                   tmp_path / "data" / "gap.parquet")
    with pytest.raises(InvalidArgument, match="gap.parquet: column 'y', row 3: inf is not a finite number"):
        _register(registry, "gap", "gap.parquet")
    pq.write_table(pa.table({"x": [1.0, None, 3.0], "y": [1.0, float("nan"), 2.0]}), tmp_path / "data" / "gap.parquet")
    gap = _register(registry, "gap", "gap.parquet")  # a null and a NaN are missing cells
    assert [(c.name, c.nullable, c.missing_count) for c in gap.columns] == [("x", True, 1), ("y", True, 1)]
    (tmp_path / "data" / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidArgument, match="cannot read as Parquet"):
        _register(registry, "junk", "junk.parquet")
    assert [d.name for d in registry.list()] == ["gap", "t"]
