"""model.mlp: a feed-forward network (Linear layers with ReLUs between them; a
sigmoid output with binary cross-entropy, or softmax with cross-entropy over
`classes`) trained under MPC with crypten.nn on secret-shared rows, horizontal or
vertical (labels at one party), by mini-batch SGD.

Every party builds the same network from the job's public seed (torch's default
initialization, so the plaintext twin `network.torch_network` starts from the
same weights), visits the rows in the same public order per epoch (a permutation
drawn from the seed and the epoch over the rows in rank order, or for vertical
jobs in an order of their keys' hashes; the order reveals nothing about the
values) and takes one step per batch: logits by crypten.nn, the output gradient
(probabilities - labels) / batch, backward, `network.sgd_step(learning_rate)`.
The inputs are standardized as network.py describes (horizontal: the pooled
frame and moments of the statistics programs; vertical: each owner's own frame,
public, and its own exact moments, shared).

Revealed to every party, each epoch: the mean training loss and accuracy over the
epoch's batches (streamed as progress). To the receivers: the network's
parameters ("layer.<name>"), the standardization (frame_shift, frame_scale,
input_shift, input_scale, and the features' means and deviations they amount
to), the loss and accuracy per epoch, and the held-out accuracy (binary models:
logistic regression's held-out metrics, models/evaluation.py). keep_shared: the
same metrics; every party keeps its share of the parameters and the
standardization, and the frame (public to the parties).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import MlpParameters
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import leverage, secure
from mpc.programs.models import evaluation, holdout, influence, network
from mpc.programs.stats import horizontal
from mpc.programs.stats.request import party_rows

HOLDOUT = 0.2


@dataclasses.dataclass
class Inputs:
    """The job's rows, secret-shared and standardized, and how they were standardized."""

    u: Any  # training rows x features, 16 bits
    y: Any  # training labels: rows x 1 (0/1) or rows x classes (one-hot), 16 bits
    u_test: Any | None
    y_test: Any | None
    frame: tuple[np.ndarray, np.ndarray]  # public: z = (x - shift) / scale
    shift: Any  # shared mean of z
    scale: Any  # shared inverse deviation of z
    features: list[str]
    n: int
    n_test: int
    own: np.ndarray | None = None  # vertical: this party's own training columns (mpc.programs.leverage)


def widths(ctx: JobContext, features: int) -> list[int]:
    """The network's layer widths: features, the hidden layers, the outputs."""
    settings = ctx.settings(MlpParameters)
    outputs = (settings.classes or 2) if settings.output == "softmax" else 1
    return [features, *settings.hidden, outputs]


def mlp(ctx: JobContext) -> dict[str, Result] | None:
    secure.configure()
    label = ctx.settings(MlpParameters).label
    rows = party_rows(ctx)
    data = _horizontal(ctx, label) if ctx.partitioning == "horizontal" else _vertical(ctx, label, rows[0])
    influence.refuse_one_class(ctx, data.y, label)
    bound = leverage.limit(ctx)  # before training: every party sees the loss each epoch, kept shared or not
    influence.refuse_influential_rows(ctx, data.u, data.n, bound, percent=8, own=data.own)
    influence.refuse_small_classes(ctx, data.y, bound)
    net = network.crypten_network(widths(ctx, len(data.features)), ctx.settings(MlpParameters).seed)
    with network.at_network_precision():
        net.encrypt(src=0)  # the initial weights are public (the seed's)
        net.train()
    losses, accuracies = _train(ctx, net, data)
    metrics = _held_out(ctx, net, data)
    return _release(ctx, label, net, data, losses, accuracies, metrics)


def _labels(ctx: JobContext, y: np.ndarray | None, label: str) -> np.ndarray | None:
    """The labels as the network's targets: a column of 0/1 (sigmoid) or one-hot
    rows (softmax). Every party learns only whether every label is valid."""
    classes = ctx.settings(MlpParameters).classes or 2
    ok = y is None or bool(np.all((y == np.round(y)) & (y >= 0) & (y < classes)))
    if not all(secure.public(ctx, ok)):
        allowed = "0 and 1" if ctx.settings(MlpParameters).output == "sigmoid" else f"the classes 0 to {classes - 1}"
        raise InvalidArgument(f"the label column {label!r} must hold only {allowed}")
    if y is None:
        return None
    return y[:, None].astype(np.float64) if ctx.settings(MlpParameters).output == "sigmoid" else np.eye(classes)[y.astype(int)]


def _horizontal(ctx: JobContext, label: str) -> Inputs:
    columns = ctx.layout[0].columns
    if label not in columns:
        raise InvalidArgument(f"the label column {label!r} is not among the job's columns {columns}")
    features = [c for c in columns if c != label]
    x = ctx.table[:, [columns.index(c) for c in features]]
    y = _labels(ctx, ctx.table[:, columns.index(label)], label)
    assert y is not None
    test = holdout.mask(ctx, len(x), HOLDOUT)
    sizes = [(int(a), int(b)) for a, b in secure.public(ctx, (int((~test).sum()), int(test.sum())))]
    n, n_test = sum(a for a, _ in sizes), sum(b for _, b in sizes)
    holdout.check(ctx, n_test, HOLDOUT)
    ctx.progress("standardizing", 5)
    frame = horizontal.column_frame(ctx, x[~test], n, features)
    moments = horizontal.row_frame_moments(ctx, x[~test], n, frame, features)
    shift, scale = secure.lowered(moments.mean), horizontal.inverse_std(moments).mul(16)  # 1 / std(z)
    z = (x - frame[0]) / frame[1]
    train, tested = [a for a, _ in sizes], [b for _, b in sizes]

    def rows(local: np.ndarray, counts: list[int]) -> Any:
        return secure.stacked_rows(ctx, local, counts, network.NETWORK_BITS)

    return Inputs(
        u=network.standardize(rows(z[~test], train), shift, scale), y=rows(y[~test], train),
        u_test=network.standardize(rows(z[test], tested), shift, scale) if n_test else None,
        y_test=rows(y[test], tested) if n_test else None,
        frame=frame, shift=shift, scale=scale, features=features, n=n, n_test=n_test)


def _vertical(ctx: JobContext, label: str, n_all: int) -> Inputs:
    holder = [e.rank for e in ctx.layout if label in e.columns]
    if len(holder) != 1:
        raise InvalidArgument(f"the label column {label!r} must be held by exactly one party (held by {len(holder)})")
    own = ctx.layout[ctx.rank].columns
    mine = [c for c in own if c != label]
    x = ctx.table[:, [own.index(c) for c in mine]]
    y = _labels(ctx, ctx.table[:, own.index(label)] if ctx.rank == holder[0] else None, label)
    widths_ = [len([c for c in e.columns if c != label]) for e in ctx.layout]
    features = [c for e in ctx.layout for c in e.columns if c != label]
    outputs = widths(ctx, len(features))[-1]
    test = holdout.mask(ctx, n_all, HOLDOUT)  # the same entities at every party
    # rows in an order of their keys' own (the intersection's order is drawn afresh
    # per job), so the same seed trains the same model
    assert ctx.keys is not None
    order = np.argsort(holdout.entity_draws(ctx.keys, ctx.settings(MlpParameters).seed, ctx.settings(MlpParameters).key_salt),
                       kind="stable")
    x, test = x[order], test[order]
    y = y[order] if y is not None else None
    n, n_test = int((~test).sum()), int(test.sum())
    holdout.check(ctx, n_test, HOLDOUT)
    ctx.progress("standardizing", 5)
    frame = network.local_frame(x[~test])
    z = (x - frame[0]) / frame[1]
    deviation = z[~test].std(axis=0)
    if not all(all(flags) for flags in secure.public(ctx, [bool(s > 0) for s in deviation])):
        raise FailedPrecondition("a feature is constant on the training rows")
    frames = secure.public(ctx, (frame[0].tolist(), frame[1].tolist()))
    public_frame = (np.concatenate([np.asarray(f[0]) for f in frames]), np.concatenate([np.asarray(f[1]) for f in frames]))
    bits = network.NETWORK_BITS

    def columns(local: np.ndarray) -> Any:
        return secure.stacked_columns(ctx, local, widths_, bits)

    shift = columns(z[~test].mean(axis=0)[None, :])[0]
    scale = columns(1 / np.where(deviation > 0, deviation, 1)[None, :])[0]
    own_y = (y[~test], y[test]) if y is not None else (None, None)
    return Inputs(
        u=network.standardize(columns(z[~test]), shift, scale),
        y=secure.share_from(ctx, holder[0], own_y[0], (n, outputs), bits),
        u_test=network.standardize(columns(z[test]), shift, scale) if n_test else None,
        y_test=secure.share_from(ctx, holder[0], own_y[1], (n_test, outputs), bits) if n_test else None,
        frame=public_frame, shift=shift, scale=scale, features=features, n=n, n_test=n_test, own=x[~test])


def _train(ctx: JobContext, net: Any, data: Inputs) -> tuple[list[float], list[float]]:
    """Mini-batch SGD; each epoch's mean loss and accuracy (over its batches, as
    the weights were when each batch was seen) opened to every party."""
    settings = ctx.settings(MlpParameters)
    epochs, batch, rate, seed, output = (settings.epochs, settings.batch_size, settings.learning_rate, settings.seed,
                                         settings.output)
    losses: list[float] = []
    accuracies: list[float] = []
    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(data.n))
        loss_sum = right_sum = None
        for start in range(0, data.n, batch):
            rows = order[start : start + batch]
            yb = data.y[rows]
            with network.at_network_precision():
                logits = net(data.u[rows])
            p, loss, right = scored(output, logits, yb)
            with network.at_network_precision():
                net.zero_grad()
                logits.backward((p - yb).div(len(rows)))
                network.sgd_step(net, rate)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            right_sum = right if right_sum is None else right_sum + right
        assert loss_sum is not None and right_sum is not None
        losses.append(float(loss_sum.div(data.n).get_plain_text().item()))
        accuracies.append(float(right_sum.div(data.n).get_plain_text().item()))
        ctx.progress(f"epoch {epoch}/{epochs} loss {losses[-1]:.5f} accuracy {accuracies[-1]:.4f}",
                     10 + 85 * epoch / epochs)
    return losses, accuracies


def scored(output: str, logits: Any, y: Any) -> tuple[Any, Any, Any]:
    """Probabilities, the summed cross-entropy and the number of right guesses of a
    batch's logits against its targets (all shared)."""
    from mpc.programs.models import sigmoid

    if output == "sigmoid":
        eta = logits.squeeze(1)
        probability, softplus, negative = sigmoid.parts(eta, softplus=True)
        target = y.squeeze(1)
        right = negative + target - 2 * negative * target  # the guess, eta >= 0, matches the label
        return probability.unsqueeze(1), (softplus - eta * target).sum(), right.sum()
    with network.at_network_precision():
        p = logits.softmax(1)
        loss = -(logits.log_softmax(1) * y).sum()
        right = (logits.argmax(dim=1, one_hot=True) * y).sum()
    return p, loss, right


def _held_out(ctx: JobContext, net: Any, data: Inputs) -> evaluation.Evaluation | Any | None:
    """The held-out rows' metrics, shared: a binary model's evaluation
    (evaluation.py), a multiclass model's accuracy."""
    if data.u_test is None or data.y_test is None:
        return None
    output = ctx.settings(MlpParameters).output
    with network.at_network_precision():
        logits = net(data.u_test)
    p = network.activate(output, logits)
    if output == "sigmoid":
        return evaluation.evaluation(ctx, p.squeeze(1), data.y_test.squeeze(1), data.n_test, logits.squeeze(1))
    with network.at_network_precision():
        right = (logits.argmax(dim=1, one_hot=True) * data.y_test).sum()
    return right.div(data.n_test)


def _release(ctx: JobContext, label: str, net: Any, data: Inputs, losses: list[float], accuracies: list[float],
             held: evaluation.Evaluation | Any | None) -> dict[str, Result] | None:
    model = {f"layer.{name}": value for name, value in network.parameters(net).items()}
    model.update(input_shift=data.shift, input_scale=data.scale)
    shift, scale = data.frame
    ctx.public.update(frame_shift=shift, frame_scale=scale)
    metrics = held.shared if isinstance(held, evaluation.Evaluation) else [] if held is None else [held]
    if ctx.settings(MlpParameters).keep_shared:
        ctx.keep_shares(model)
        opened = secure.open_to_receivers(ctx, metrics)
        revealed: list[np.ndarray] = []
    else:
        opened = secure.open_to_receivers(ctx, [*model.values(), *metrics])
        revealed = opened[: len(model)] if opened is not None else []
    if opened is None:
        return None
    epochs = [f"epoch {i + 1}" for i in range(len(losses))]
    out = {"loss": Result(np.array(losses), epochs), "train_accuracy": Result(np.array(accuracies), epochs)}
    shown = opened[len(revealed):]
    if isinstance(held, evaluation.Evaluation):
        out.update(held.results(shown, "holdout"))
    elif shown:
        out["accuracy"] = Result(np.atleast_1d(shown[0]).astype(np.float64), ["holdout"])
    if revealed:
        values = dict(zip(model, revealed))
        for name, value in values.items():
            columns = data.features if name == "layer.0.weight" else []
            out[name] = Result(np.asarray(value, dtype=np.float64), [str(i) for i in range(len(value))], columns) \
                if name.startswith("layer.") else Result(np.asarray(value, dtype=np.float64), data.features)
        out["frame_shift"], out["frame_scale"] = Result(shift, data.features), Result(scale, data.features)
        out["feature_means"] = Result(shift + scale * values["input_shift"], data.features)
        out["feature_stds"] = Result(scale / values["input_scale"], data.features)
    return out
