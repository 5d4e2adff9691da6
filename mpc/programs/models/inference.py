"""model.predict and model.evaluate: private inference. A model (an ONNX asset of
one party, a model.mlp a job revealed to one party, or one kept secret-shared by
the parties that trained it) is applied to rows another party holds (or to
vertically split rows, aligned by the private set intersection). The model's
weights and the rows stay secret-shared throughout.

Public to every party of the job: the network's architecture (an asset's graph
without its weights, a model.mlp's widths and input frame), which parties hold
the model and the rows, the number of rows. Revealed to the receivers only:
predict, each row's probabilities (or the network's output, or with `reveal:
classes` only the predicted class); evaluate, only metrics against a label
column some party holds (accuracy, AUC for binary models, log-loss, confusion
counts, a count below a data party's min_group_size suppressed), never a
prediction. Inputs enter the network at 16 fractional bits (network.py), after
the rows' owner applied the model's public frame (a model.mlp's training frame,
an asset's declared input standardization): they must then lie within
`FRAME_BOUND` (model.mlp) or +-`ASSET_BOUND` (assets), or the job is refused:
beyond that, CrypTen's truncation fails often enough to corrupt rows.

A model applied to crafted rows is an oracle (one-row queries trace a network's
local linear map; enough probabilities distil a surrogate), so each holder
applies its own policy's limits once the rows are public (`_holders_allow`: the
fewest rows per job, the rows each data party may still have it applied to);
every party learns whether a holder refused and why, and an allowed query is
audited and counted at the holder before any row is computed on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import EvaluateParameters, PredictParameters
from mpc.errors import FailedPrecondition, InvalidArgument, PolicyRefused
from mpc.programs import groups, secure
from mpc.programs.models import assets, evaluation, network, sigmoid
from mpc.programs.stats.request import validate_local

ASSET_BOUND = 64.0
FRAME_BOUND = 64.0
CHUNK_ROWS = 2048


@dataclasses.dataclass
class Applied:
    """A network's output on the job's rows, shared."""

    logits: Any  # rows x outputs
    output: str  # "sigmoid" | "softmax" | "identity"
    n: int
    labels: Any | None  # evaluate: the label column as targets (rows x 1, or one-hot rows x classes)
    row_names: list[str]


def predict(ctx: JobContext) -> dict[str, Result] | None:
    applied = _apply(ctx, label=None)
    p = network.activate(applied.output, applied.logits)
    width = int(p.size(1))
    names = [f"class {k}" for k in range(width)] if applied.output == "softmax" else (
        ["probability"] if applied.output == "sigmoid" else [f"output {k}" for k in range(width)])
    if ctx.settings(PredictParameters).reveal == "classes":
        if applied.output == "identity":
            raise InvalidArgument("reveal: classes needs a model with a sigmoid or softmax output")
        guess = _classes(applied.output, p)
        opened = secure.open_to_receivers(ctx, [guess])
        return None if opened is None else {"class": Result(np.round(opened[0]), applied.row_names)}
    opened = secure.open_to_receivers(ctx, [p])
    return None if opened is None else {"predictions": Result(opened[0], applied.row_names, names)}


def evaluate(ctx: JobContext) -> dict[str, Result] | None:
    label = ctx.settings(EvaluateParameters).label
    applied = _apply(ctx, label=label)
    if applied.output == "identity":
        raise InvalidArgument("model.evaluate needs a model whose output is sigmoid or softmax (probabilities)")
    y, n = applied.labels, applied.n
    if y is None:
        raise InvalidArgument("model.evaluate needs the label column (parameter label)")
    p = network.activate(applied.output, applied.logits)
    if applied.output == "sigmoid":
        return _binary(ctx, applied.logits.squeeze(1), p.squeeze(1), y.squeeze(1), n)
    with network.at_network_precision():
        loss = -(applied.logits.log_softmax(1) * y).sum().div(n)
        guess = applied.logits.argmax(dim=1, one_hot=True)
        counts = y.t().matmul(guess)  # true class x predicted class
    accuracy = (guess * y).sum().div(n)
    shown, suppressed = groups.suppressed_counts(ctx, counts)
    opened = secure.open_to_receivers(ctx, [accuracy, loss, shown])
    if opened is None:
        return None
    return {**_scalars(["accuracy", "log_loss"], opened), "confusion": _confusion(opened[-1], suppressed)}


def _binary(ctx: JobContext, eta: Any, p: Any, target: Any, n: int) -> dict[str, Result] | None:
    """A sigmoid model's metrics: the risk team's evaluation (evaluation.py, with
    accuracy and confusion at the job's threshold) and log-loss."""
    import crypten

    _, softplus = sigmoid.activations(eta, softplus=True)
    loss = (softplus - eta * target).sum().div(n)
    report = evaluation.evaluation(ctx, p, target, n, logits=eta, threshold=ctx.settings(EvaluateParameters).threshold)
    guess = report.guess
    counts = crypten.stack([((1 - guess) * (1 - target)).sum(), (guess * (1 - target)).sum(),
                            ((1 - guess) * target).sum(), (guess * target).sum()]).reshape(2, 2)
    shown, suppressed = groups.suppressed_counts(ctx, counts)
    opened = secure.open_to_receivers(ctx, [*report.shared, loss, shown])
    if opened is None:
        return None
    return {**report.results(opened[:-2]), **_scalars(["log_loss"], opened[-2:-1]),
            "confusion": _confusion(opened[-1], suppressed)}


def _scalars(names: list[str], opened: list[np.ndarray]) -> dict[str, Result]:
    return {name: Result(np.atleast_1d(value).astype(np.float64), ["all rows"]) for name, value in zip(names, opened)}


def _confusion(opened: np.ndarray, suppressed: list[int]) -> Result:
    confusion = np.round(opened).astype(np.float64)
    confusion.ravel()[suppressed] = np.nan
    classes = [str(k) for k in range(confusion.shape[0])]
    return Result(confusion, [f"true {c}" for c in classes], [f"predicted {c}" for c in classes], suppressed)


def _classes(output: str, p: Any) -> Any:
    if output == "sigmoid":
        return secure.greater_than(p.squeeze(1), 0.5)
    with network.at_network_precision():
        onehot = p.argmax(dim=1, one_hot=True)
    return onehot.matmul(torch.arange(int(p.size(1)), dtype=torch.float64))


# -- the model and the rows, secret-shared ------------------------------------------------

def _apply(ctx: JobContext, label: str | None) -> Applied:
    import crypten

    secure.configure()
    holders = [r for r, held in enumerate(secure.public(ctx, ctx.model is not None)) if held]
    if not holders:
        raise FailedPrecondition("no party of the job holds the model")
    described = secure.announced(ctx, holders[0], _description(ctx.model) if ctx.rank == holders[0] and ctx.model is not None else None)
    shared = bool(described["shared"])
    if shared and not all(secure.public(ctx, ctx.model is None or "shares" in ctx.model)):
        raise FailedPrecondition("a shared model is used by the parties holding its shares only")
    module = _module(ctx, described, holders)
    data = [e.rank for e in ctx.layout if e.columns]
    if ctx.rank in data:
        validate_local(ctx)
    features = [c for e in ctx.layout for c in e.columns if c != label]
    width = int(np.prod(described["input_shape"]))
    if len(features) != width:
        raise InvalidArgument(f"the model takes {width} input values per row; the job's inputs give {len(features)}")
    rows = [int(r) for r in secure.public(ctx, ctx.table.shape[0] if ctx.rank in data else -1)]
    counts = {rows[r] for r in data}
    if ctx.partitioning == "horizontal" and len(data) != 1:
        raise InvalidArgument("model.predict and model.evaluate on horizontal data take one party's rows")
    if len(counts) != 1:
        raise FailedPrecondition(f"the parties' aligned rows differ in number: {sorted(counts)}")
    n = counts.pop()
    if n < 1:
        raise InvalidArgument("the job's inputs hold no rows")
    _holders_allow(ctx, n, [ctx.layout[r].party_id for r in data])
    x, y = _rows(ctx, described, data, label, n, holders)
    with network.at_network_precision():
        logits = crypten.cat([module(x[start : start + CHUNK_ROWS]) for start in range(0, n, CHUNK_ROWS)])
    # a data party's own receivers see its rows by its key column (its keys, in its
    # order: vertically, the aligned order); any other receiver by position
    names = [str(k) for k in ctx.keys] if ctx.keys is not None and ctx.rank in data else [f"row {i}" for i in range(n)]
    return Applied(logits, described["output"], n, y, names)


def _holders_allow(ctx: JobContext, n: int, parties: list[str]) -> None:
    """Each holder's own limits on its model's use (its policy: the fewest rows per
    job, the rows each data party may still query); every party learns whether
    a holder refused and why. An allowed query is audited and counted by the
    holder's gateway before anything is computed on the rows."""
    limits = (ctx.model or {}).get("limits")
    refusal = ""
    if limits is not None and n < limits["min_rows"]:
        refusal = f"its model's policy applies it to at least {limits['min_rows']} rows per job (min_rows_per_job)"
    elif limits is not None and 0 <= limits["rows_left"] < n:
        refusal = (f"its model's policy lets each party have it applied to a limited number of rows, and "
                   f"{limits['rows_left']} are left (max_rows_per_party)")
    refusals = secure.public(ctx, refusal)
    refused = next((r for r, why in enumerate(refusals) if why), None)
    if refused is not None:
        raise PolicyRefused(f"party {ctx.layout[refused].party_id} refused: {refusals[refused]}; nothing was computed")
    if limits is not None:
        ctx.audit("model.query", {"model": limits["model_id"], "rows": str(n), "parties": ",".join(parties)})


def _description(model: dict[str, Any]) -> dict[str, Any]:
    """What the holder tells every party: the architecture, an asset's skeleton."""
    out = {"kind": model["kind"], "shared": "shares" in model, **model["architecture"]}
    if model["kind"] == "asset":
        out["skeleton"] = assets.skeleton(model["onnx"])
    return out


def _module(ctx: JobContext, described: dict[str, Any], holders: list[int]) -> Any:
    """The network, encrypted: from its one owner, or from every holder's shares."""
    mine = ctx.model
    if described["kind"] == "asset":
        module = assets.crypten_module(mine["onnx"] if mine is not None else described["skeleton"])
    else:
        module = network.crypten_network(list(described["widths"]), 0)
        if mine is not None and "values" in mine:
            with torch.no_grad():
                for name, value in network.parameters(module).items():
                    value.copy_(torch.from_numpy(np.asarray(mine["values"][f"layer.{name}"])).to(value.dtype))
    with network.at_network_precision():
        module.encrypt(src=holders[0])
        module.eval()
    if described["shared"]:
        network.load_shares(module, {k.removeprefix("layer."): v for k, v in (mine or {}).get("shares", {}).items()
                                     if k.startswith("layer.")})
    return module


def _rows(ctx: JobContext, described: dict[str, Any], data: list[int], label: str | None, n: int,
          holders: list[int]) -> tuple[Any, Any]:
    """The network's input (rows x input shape) and, for evaluate, the targets."""
    columns = ctx.layout[ctx.rank].columns
    mine = [c for c in columns if c != label]
    x = ctx.table[:, [columns.index(c) for c in mine]] if ctx.rank in data else np.zeros((n, 0))
    widths = [len([c for c in ctx.layout[r].columns if c != label]) for r in range(ctx.world_size)]
    offset = sum(widths[: ctx.rank])
    mlp = described["kind"] == "mlp"
    if described.get("frame_shift"):  # a model.mlp's training frame, or an asset's declared standardization
        shift = np.asarray(described["frame_shift"])[offset : offset + x.shape[1]]
        scale = np.asarray(described["frame_scale"])[offset : offset + x.shape[1]]
        x = (x - shift) / scale
    bound = FRAME_BOUND if mlp else ASSET_BOUND
    within = bool(np.all(np.abs(x) <= bound))
    if not all(secure.public(ctx, within)):
        raise FailedPrecondition(
            f"a row lies more than {bound:g} times outside the model's training frame" if mlp else
            f"an input value lies outside +-{bound:g} (after the asset's input standardization, if it declares one): "
            "register the asset with input_shift and input_scale that bring its inputs near [-1, 1]")
    u = secure.stacked_columns(ctx, x, widths, network.NETWORK_BITS)
    if mlp:
        u = network.standardize(u, *_standardization(ctx, described, holders))
    u = u.reshape(n, *[int(d) for d in described["input_shape"]])
    targets = None
    if label is not None:
        targets = _targets(ctx, label, int(described["outputs"]), n)
    return u, targets


def _standardization(ctx: JobContext, described: dict[str, Any], holders: list[int]) -> tuple[Any, Any]:
    """A model.mlp's input shift and scale: shared, or from its owner."""
    width = int(described["widths"][0])
    mine = ctx.model or {}
    if described["shared"]:
        shares = mine.get("shares", {})
        return tuple(network.from_shares(shares.get(name), (width,)) for name in ("input_shift", "input_scale"))
    values = mine.get("values", {})
    return tuple(secure.share_from(ctx, holders[0], values.get(name), (width,), network.NETWORK_BITS)
                 for name in ("input_shift", "input_scale"))


def _targets(ctx: JobContext, label: str, outputs: int, n: int) -> Any:
    holder = [e.rank for e in ctx.layout if label in e.columns]
    if len(holder) != 1:
        raise InvalidArgument(f"the label column {label!r} must be an input of exactly one party")
    y = None
    if ctx.rank == holder[0]:
        values = ctx.table[:, ctx.layout[ctx.rank].columns.index(label)]
        classes = max(outputs, 2)
        ok = bool(np.all((values == np.round(values)) & (values >= 0) & (values < classes)))
    else:
        ok = True
    if not all(secure.public(ctx, ok)):
        raise InvalidArgument(f"the label column {label!r} must hold the model's classes 0 to {max(outputs, 2) - 1}")
    if ctx.rank == holder[0]:
        y = values[:, None] if outputs == 1 else np.eye(outputs)[values.astype(int)]
    return secure.share_from(ctx, holder[0], y, (n, outputs), network.NETWORK_BITS)
