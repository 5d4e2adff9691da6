"""model.logistic_regression: binary logistic regression with an L2 penalty
(scikit-learn's, alpha = 1 / C, the intercept unpenalized), trained under MPC on
secret-shared rows, horizontal or vertical (labels at one party).

Optimizer: Newton's method with Böhning's fixed Hessian bound, H <= X^T X / 4 +
penalty. In standardized features X^T X / 4 is (n - 1) R / 4 with R the features'
correlation matrix, which the statistics machinery already computes under
encryption; its inverse is taken once (mpc/programs/solve.py), and every epoch is one
full pass: eta = X w + b, p = sigmoid(eta), gradient X^T (p - y) + penalty, and w -=
t H^-1 gradient. The step length t is a public power of two from the exact curvature
along that direction (`_step_length`), and a step that does not lower the penalized
loss is taken back (`train`): the objective decreases monotonically with no
learning rate to tune, which matters under fixed point, where SGD needs tuning and
CrypTen users report losses that explode. Measured (benchmarks/optimizers.py, 20k x
30, under MPC): these steps reach scikit-learn's held-out AUC (0.8594) after one
epoch; mini-batch SGD needs five at its best learning rate of three (0.03), plateaus
below it at 0.3 and is stuck at 0.78 at 3.0, and each SGD epoch (78 batches, a
sigmoid each) costs ~3.7x a full Newton epoch.

Fixed point: the design matrix and residuals enter the per-epoch products at 12
fractional bits, so a product's encoding stays far from the ring (CrypTen's
truncation fails with probability ~|encoding| / 2^63); the sigmoid runs at 16
bits and its output is clamped to [0, 1], so a failed truncation in one row costs
that row's gradient term, never the model. Features are standardized with
securely computed means and deviations (horizontal: the pooled moments of the
public column frame; vertical: each owner's own, exactly) and scaled into
[-1, 1], so the sigmoid sees standardized log-odds.

Revealed to every party, each epoch: the training loss (mean log-loss), for progress
and early stopping; the step length (a power of two up to STEP_MAX, one comparison
bit per power) and whether the step lowered the objective (a bit). To the receivers:
the coefficients in the data's units, the intercept, the standardization (means and
population deviations), the loss per epoch, and on a held-out fraction of the rows
the risk team's metrics (models/evaluation.py: accuracy, AUC, Gini, KS, Brier, a
lift table by decile). keep_shared: the same metrics, and each party keeps its
share of the model.

Without an intercept (fit_intercept = false) each party appends the mirror image
(-x, 1 - y) of its training rows (see `_mirrored`): twice the rows per epoch, the
penalty doubled with them; the standardization is then about zero (the mirrored
rows' mean), and the intercept is zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np
import torch

from mpc.catalogue.context import JobContext, Result
from mpc.catalogue.schemas import LogisticParameters
from mpc.errors import FailedPrecondition, InvalidArgument
from mpc.programs import leverage, secure
from mpc.programs.models import blocks, evaluation, fitted, hessian, holdout, influence, penalty, sigmoid
from mpc.programs.rows import row_sum
from mpc.programs.solve import inverse
from mpc.programs.stats import horizontal, vertical
from mpc.programs.stats.request import party_rows

DESIGN_BITS = 12
ENTRY_ERROR = 2.0**-22
"""The Hessian bound only steers the steps (the optimum is where the gradient
vanishes), so its inverse is refused only when severely ill-conditioned."""
STEP_MAX = 64.0
STEP_MIN = 1 / 8
"""Training ends when a step fails to lower the objective even at this fraction of
its unit length: the objective's fall along it is then below the fixed point's
resolution (measured: retries below it went on for up to 11 of 20 epochs, at
lengths to 2^-10, moving the loss by at most 6e-5 of it)."""
HOLDOUT = 0.2


@dataclasses.dataclass
class Design:
    """The secret-shared training problem, whatever the partitioning."""

    z: Any  # rows x features, 12 bits, |z| <= 1
    y: Any  # rows, 12 bits
    z_test: Any | None
    y_test: Any | None
    shift: Any  # m: standardized u = (z - m) * s (shared or public zeros)
    scale: Any  # s
    correlation: Any  # R of the features, 24 bits
    ridge: Any  # min(4 alpha / ((n - 1) sigma_j^2), penalty.RIDGE_CAP), shared, or None
    precondition: Any  # S ~ (1 + ridge)^-1/2, 16 bits, shared
    scaled_ridge: Any  # S ridge S (the Hessian bound's penalty, scaled as solve.inverse takes it), shared, or None
    n: int
    n_test: int
    originals: Any = None  # public 0/1 per training row: 0 for a mirror image (fit through the origin), else None
    own: np.ndarray | None = None  # vertical: this party's own training columns (mpc.programs.leverage)

    def features_scale(self) -> Any:
        """The bound's Jacobi scale S for the features (16 bits): ones without a penalty."""
        import crypten

        if self.precondition is not None:
            return secure.lowered(self.precondition)
        d = int(self.correlation.size(0))
        return crypten.cryptensor(torch.ones(d, dtype=torch.float64), precision=secure.PRODUCT_BITS)


def logistic_regression(ctx: JobContext) -> dict[str, Result] | None:
    label = ctx.settings(LogisticParameters).label
    design, features, stats = prepared(ctx, label)
    influence.refuse_one_class(ctx, design.y, label, design.originals)
    bound = leverage.limit(ctx)  # before training: every party sees the loss each epoch, kept shared or not
    influence.refuse_influential_rows(ctx, influence.standardized(design.z, design.shift, design.scale), design.n,
                                      bound, design.correlation, mirrored=_origin(ctx), percent=8, own=design.own)
    influence.refuse_small_classes(ctx, design.y, bound, design.originals)
    w, b, losses = train(ctx, design)
    metrics = None
    if design.z_test is not None:
        eta = logits(design, design.z_test, w, b)
        p = sigmoid.clamp01(sigmoid.activations(eta)[0])
        metrics = evaluation.evaluation(ctx, p, secure.raised(design.y_test, secure.PRODUCT_BITS), design.n_test, eta)
    return fitted.release(ctx, label, features, w, b, stats, losses, metrics)


def prepared(ctx: JobContext, label: str) -> tuple[Design, list[str], dict[str, Any]]:
    """The job's design (labels as given: 0/1, or classes 0 to classes - 1), its
    features and the statistics its release needs."""
    secure.configure()
    if ctx.partitioning == "horizontal":
        return _horizontal(ctx, label)
    return _vertical(ctx, label, party_rows(ctx)[0])


def check_binary_labels(ctx: JobContext, y: np.ndarray | None, label: str, classes: int = 2) -> None:
    """Every party learns only whether every label is a class: 0 or 1 (or 0 to
    classes - 1)."""
    ok = y is None or bool(np.all((y == np.round(y)) & (y >= 0) & (y < classes)))
    if not all(secure.public(ctx, ok)):
        raise InvalidArgument(f"the label column {label!r} must hold only 0 and 1" if classes == 2 else
                              f"the label column {label!r} must hold only the classes 0 to {classes - 1}")


def _horizontal(ctx: JobContext, label: str) -> tuple[Design, list[str], dict[str, Any]]:
    columns = ctx.layout[0].columns
    if label not in columns:
        raise InvalidArgument(f"the label column {label!r} is not among the job's columns {columns}")
    features = [c for c in columns if c != label]
    x = ctx.table[:, [columns.index(c) for c in features]]
    y = ctx.table[:, columns.index(label)]
    check_binary_labels(ctx, y, label, _classes(ctx))
    test = holdout.mask(ctx, len(y), HOLDOUT)
    train_x, train_y = _mirrored(ctx, x[~test], y[~test])
    assert train_y is not None  # (labels in, labels out)
    sizes = [(int(a), int(b)) for a, b in secure.public(ctx, (len(train_x), int(test.sum())))]
    n, n_test = sum(a for a, _ in sizes), sum(b for _, b in sizes)
    holdout.check(ctx, n_test, HOLDOUT)
    _enough_rows(ctx, n, len(features))
    ctx.progress("standardizing", 5)
    frame = horizontal.column_frame(ctx, train_x, n, features)
    moments = horizontal.row_frame_moments(ctx, train_x, n, frame, features)
    inverse_std = horizontal.inverse_std(moments)  # 1 / (16 std(z)), 16 bits
    scale = inverse_std.mul(16)
    shift_z, scale_z = frame
    z, z_train = (x - shift_z) / scale_z, (train_x - shift_z) / scale_z
    ridge = penalty.pooled(inverse_std, 4 * _alpha(ctx) * 256 / ((n - 1) * scale_z**2)) if _alpha(ctx) else None
    design = Design(
        z=secure.stacked_rows(ctx, z_train, [a for a, _ in sizes], DESIGN_BITS),
        y=secure.stacked_rows(ctx, train_y[:, None], [a for a, _ in sizes], DESIGN_BITS).squeeze(1),
        z_test=secure.stacked_rows(ctx, z[test], [b for _, b in sizes], DESIGN_BITS) if n_test else None,
        y_test=secure.stacked_rows(ctx, y[test, None], [b for _, b in sizes], DESIGN_BITS).squeeze(1) if n_test else None,
        shift=secure.lowered(moments.mean), scale=scale, correlation=horizontal.correlation(moments),
        **penalty.scaling(ridge), n=n, n_test=n_test, originals=_originals(ctx, [a for a, _ in sizes]))
    return design, features, {"mean_z": moments.mean, "var_z": moments.variance, "frame": frame}


def _vertical(ctx: JobContext, label: str, n_all: int) -> tuple[Design, list[str], dict[str, Any]]:
    holder = [e.rank for e in ctx.layout if label in e.columns]
    if len(holder) != 1:
        raise InvalidArgument(f"the label column {label!r} must be held by exactly one party (held by {len(holder)})")
    mine = [c for c in ctx.layout[ctx.rank].columns if c != label]
    x = ctx.table[:, [ctx.layout[ctx.rank].columns.index(c) for c in mine]]
    y = ctx.table[:, ctx.layout[ctx.rank].columns.index(label)] if ctx.rank == holder[0] else None
    check_binary_labels(ctx, y, label, _classes(ctx))
    layout = [dataclasses.replace(e, columns=[c for c in e.columns if c != label]) for e in ctx.layout]
    widths = [len(e.columns) for e in layout]
    features = [c for e in layout for c in e.columns]
    test = holdout.mask(ctx, n_all, HOLDOUT)  # the same rows at every party
    train_x, train_y = _mirrored(ctx, x[~test], y[~test] if y is not None else None)
    n, n_test = len(train_x), int(test.sum())
    holdout.check(ctx, n_test, HOLDOUT)
    _enough_rows(ctx, n, len(features))
    ctx.progress("standardizing", 5)
    mean, sigma = train_x.mean(axis=0), (train_x - train_x[0]).std(axis=0)
    if not all(all(flags) for flags in secure.public(ctx, [bool(s > 0) for s in sigma])):
        raise FailedPrecondition("a feature is constant on the training rows")
    u, u_train = (x - mean) / sigma, (train_x - mean) / sigma
    bounds = np.exp2(np.ceil(np.log2(np.maximum(np.abs(u_train).max(axis=0), 1.0))))
    public_bounds = np.concatenate([np.asarray(b) for b in secure.public(ctx, [float(v) for v in bounds])])
    shared_ctx = dataclasses.replace(ctx, table=train_x, layout=layout)
    # one limb: the rows below enter at 12 bits of u / 2^b, too coarse for features far out at both parties
    cross, _ = vertical.cross_correlations(shared_ctx, n, widths, features, limbs=False)
    correlation = blocks.assemble(ctx, widths, np.atleast_2d(np.corrcoef(train_x, rowvar=False)), cross)
    scaling = penalty.own(ctx, widths, 4 * _alpha(ctx) / ((n - 1) * sigma**2)) if _alpha(ctx) else penalty.scaling(None)
    design = Design(
        z=secure.stacked_columns(ctx, u_train / bounds, widths, DESIGN_BITS), y=_label(ctx, holder[0], train_y, n),
        z_test=secure.stacked_columns(ctx, u[test] / bounds, widths, DESIGN_BITS) if n_test else None,
        y_test=_label(ctx, holder[0], y[test] if y is not None else None, n_test) if n_test else None,
        shift=torch.zeros(len(features), dtype=torch.float64), scale=torch.from_numpy(public_bounds),
        correlation=correlation, **scaling, n=n, n_test=n_test, originals=_originals(ctx, [n]), own=x[~test])
    stats = {"means": blocks.by_column(ctx, widths, secure.split(mean), axis=1),
             "stds": blocks.by_column(ctx, widths, secure.split(sigma), axis=1), "own": (mean, sigma)}
    return design, features, stats


def _originals(ctx: JobContext, blocks: list[int]) -> torch.Tensor | None:
    """Without an intercept, each party's training block is its rows, then their
    mirror images (`_mirrored`): 1 for a row, 0 for an image (public)."""
    if not _origin(ctx):
        return None
    return torch.cat([torch.cat([torch.ones(b // 2), torch.zeros(b - b // 2)]) for b in blocks]).double()


def _classes(ctx: JobContext) -> int:
    return ctx.settings(LogisticParameters).classes


def _origin(ctx: JobContext) -> bool:
    return not ctx.settings(LogisticParameters).fit_intercept


def _mirrored(ctx: JobContext, x: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The training rows; without an intercept, with their mirror images (-x, 1 - y)
    appended: a row and its image have the same likelihood under a model through the
    origin, and on the union the fitted intercept is zero by symmetry."""
    if not _origin(ctx):
        return x, y
    return np.vstack([x, -x]), None if y is None else np.concatenate([y, 1 - y])


def _alpha(ctx: JobContext) -> float:
    """The penalty on the training rows (doubled with the mirrored rows)."""
    return ctx.settings(LogisticParameters).alpha * (2 if _origin(ctx) else 1)


def _enough_rows(ctx: JobContext, n: int, d: int) -> None:
    rows = n // 2 if _origin(ctx) else n
    if rows <= d + 1:
        raise InvalidArgument(f"{rows} training rows cannot fit {d} features: more features than rows")


def _label(ctx: JobContext, holder: int, y: np.ndarray | None, rows: int) -> Any:
    return secure.share_from(ctx, holder, y, (rows,), precision=DESIGN_BITS)


class _Kept(NamedTuple):
    """The best model evaluated so far, its unit step (the bound's, or the damped
    Hessian's), its penalized objective, and the bound's unit step from it (the
    last step, returned with the model: it never raises the objective)."""

    w: Any
    b: Any
    step_w: Any
    step_b: Any
    objective: Any
    last_w: Any
    last_b: Any


def train(ctx: JobContext, design: Design, bound_inverse: Any | None = None) -> tuple[Any, Any, list[float]]:
    """Böhning–Newton epochs until the loss stops improving (every party decides
    alike: the loss is public), with a public step length on the Böhning direction.

    The bound X^T X / 4 is loose where the probabilities are far from 1/2 (rare
    classes, strong features): there, unit steps crawl (measured: 20 epochs left
    2,000-row fits with 98% positives 4-8% above the optimal penalized loss, a
    nearly separable one at twice it; with these lengths, 3e-4 to 9e-3 and 1.1x).
    Each step's length comes from the curvature along it (`_step_length`); a step
    that does not lower the objective (log-loss plus penalty, compared under
    encryption: one public bit) is taken back and retried at half the length. Unit
    steps never raise it (Böhning's bound), so the model returned is the best one
    evaluated plus one unit step of the bound's from it; a retry below `STEP_MIN`
    ends training. At
    the gradients `hessian.REFRESH` the Hessian is taken under encryption, damped
    toward the bound and inverted, and the later steps use it (models/hessian.py):
    the bound crawls where the probabilities are far from 1/2. `bound_inverse`: the
    bound's inverse, where the caller took it already (it does not depend on the
    labels)."""
    import crypten

    d = int(design.correlation.size(0))
    inv = inverse_bound(ctx, design) if bound_inverse is None else bound_inverse
    epochs = (ctx.settings(LogisticParameters).epochs or 20)
    tolerance = ctx.settings(LogisticParameters).tolerance
    w = crypten.cryptensor(torch.zeros(d, dtype=torch.float64), precision=secure.PRODUCT_BITS)
    b = crypten.cryptensor(torch.zeros(1, dtype=torch.float64), precision=secure.PRODUCT_BITS)
    losses: list[float] = []  # the kept model's, each epoch
    kept: _Kept | None = None
    length = 1.0
    quiet = 0  # epochs in a row that moved the loss by less than the tolerance
    curvature = None  # the damped Hessian's inverse, once taken
    gradients = 0
    for epoch in range(1, epochs + 1):
        eta = logits(design, design.z, w, b)
        probability, softplus = sigmoid.activations(eta, softplus=True)
        summed = _summed_loss(eta, softplus, design.y)
        mean_loss = summed.div(design.n)
        # compared as sums: the mean's 16-bit grid (1.5e-5) hid the last steps' gains, so fits stalled ~1% short
        objective = summed + _penalty(design, w, design.n)
        if kept is not None and not secure.less_than_to_all(ctx, objective - kept.objective, 0.0).all():
            if length <= STEP_MIN:  # not even a short step lowers it: the kept model is as good as it gets
                break
            length /= 2  # overshot: back to the kept model, half the length
            ctx.progress(f"epoch {epoch}/{epochs} loss {losses[-1]:.5f} (the step overshot: retrying at length {length:g})",
                         70 + 25 * epoch / epochs)
            w, b = kept.w - kept.step_w.mul(length), kept.b - kept.step_b.mul(length)
            losses.append(losses[-1])
            quiet = 0
            continue
        loss = float(mean_loss.get_plain_text().item())
        ctx.progress(f"epoch {epoch}/{epochs} loss {loss:.5f}", 70 + 25 * epoch / epochs)
        p = sigmoid.clamp01(probability)
        residual = p - secure.raised(design.y, secure.PRODUCT_BITS)
        gradient, total = _gradient(design, residual)
        scaled = secure.lowered(gradient, secure.PRECISION_BITS).mul(4 / (design.n - 1))  # at the bound's scale
        if design.ridge is not None:  # + ridge * w: the penalty's gradient, (n - 1) / 4 ridge w, at that scale
            scaled = scaled + secure.mul_mixed(secure.lowered(design.ridge, secure.PRECISION_BITS), w)
        gradients += 1
        if gradients in hessian.REFRESH:
            ctx.progress(f"epoch {epoch}/{epochs}: the Hessian", 70 + 25 * epoch / epochs)
            curvature = hessian.damped_inverse(ctx, design, p) or curvature
        bound = (secure.lowered(inv.apply(scaled)), total.mul(4 / design.n))
        steps = bound if curvature is None else hessian.newton_step(curvature, scaled, total, design.n)
        kept = _Kept(w, b, *steps, objective, *bound)
        step = kept.step_w
        # relative to the loss: a rare class's loss is ~0.07, where 1e-4 absolute stopped fits 1.5% above the optimum;
        # two epochs in a row: one short step (after a retry, or a poor length) stopped iris's fits 1.4 off scikit-learn's
        quiet = quiet + 1 if losses and abs(losses[-1] - loss) < tolerance * loss else 0
        losses.append(loss)
        if quiet >= 2:
            break
        length = _step_length(ctx, design, p, (gradient, total), (step, kept.step_b))
        w, b = w - step.mul(length), b - kept.step_b.mul(length)
    assert kept is not None
    return kept.w - kept.last_w, kept.b - kept.last_b, losses


def inverse_bound(ctx: JobContext, design: Design) -> Any:
    """The Böhning bound's inverse (solve.inverse's result)."""

    return inverse(ctx, design.correlation, design.features_scale(), ENTRY_ERROR, phase="inverting the Hessian bound",
                   scaled_diagonal=design.scaled_ridge)


def _step_length(ctx: JobContext, design: Design, p: Any, gradient: tuple[Any, Any], step: tuple[Any, Any]) -> float:
    """The largest power of two in [1, STEP_MAX] at or below t* = g.s / s^T H s,
    where the loss's quadratic model along the unit step s is lowest (H the exact
    Hessian, sum p(1 - p) (u s)^2 plus the penalty's): H <= the Böhning bound makes
    t* >= 1. One batch of comparisons; its bits, the length, are public."""
    n = design.n
    along = logits(design, design.z, *step)  # u_i . s + s_b, each row
    curvature = (p - p.square()).mul(along.square()).sum().div(n)
    slope = (secure.lowered(gradient[0]).div(n) * step[0]).sum() + gradient[1].div(n) * step[1]
    curvature = curvature + 2 * _penalty(design, step[0])  # the penalty is quadratic: s^T H_pen s = 2 pen(s)
    powers = torch.exp2(torch.arange(1, int(math.log2(STEP_MAX)) + 1, dtype=torch.float64))
    beyond = secure.less_than_to_all(ctx, curvature.mul(powers) - slope, 0.0)  # 2^k s^T H s < g.s
    return float(2.0 ** int(beyond.sum()))


def logits(design: Design, z: Any, w: Any, b: Any) -> Any:
    """eta = u w + b with u = (z - m) s: (z (w s)) + b - (w s).m, at 16 bits."""
    v = w * design.scale if torch.is_tensor(design.scale) else w.mul(design.scale)
    offset = b - (v * design.shift).sum() if torch.is_tensor(design.shift) else b - v.mul(design.shift).sum()
    product = z.matmul(secure.lowered(v, DESIGN_BITS))  # 12 x 12 bits
    return secure.raised(product, secure.PRODUCT_BITS) + offset


def _gradient(design: Design, residual: Any) -> tuple[Any, Any]:
    """X_std^T r (d) and sum r: the 12-bit residual against the 12-bit design, by
    row chunks so no chunk's sum nears the ring; then shifted and scaled."""
    low = secure.lowered(residual, DESIGN_BITS)
    raw = row_sum(design.z, low)
    total = secure.raised(low.sum(), secure.PRODUCT_BITS)
    raw = secure.raised(raw, secure.PRODUCT_BITS)
    if torch.is_tensor(design.shift):
        centered = raw - total * design.shift
        gradient = centered * design.scale
    else:
        centered = raw - design.shift * total
        gradient = secure.mul_mixed(secure.raised(centered, secure.PRECISION_BITS), design.scale)
    return secure.raised(gradient, secure.PRECISION_BITS), total


def _summed_loss(eta: Any, softplus: Any, y: Any) -> Any:
    """The log-loss summed over the rows, softplus(eta) - y eta (shared; its mean
    is opened to every party)."""
    per_row = softplus - eta * secure.raised(y, secure.PRODUCT_BITS)
    return per_row.sum()


def _penalty(design: Design, w: Any, rows: int = 1) -> Any:
    """The L2 penalty over the rows, alpha |b|^2 / 2n = (n - 1) / 8n sum ridge_j w_j^2
    in standardized units (shared, at the loss's precision), times `rows` (the
    objective summed over the rows: `rows` = n)."""
    if design.ridge is None:
        return 0.0
    ridge = secure.lowered(design.ridge, secure.PRECISION_BITS)
    total = secure.mul_mixed(secure.mul_mixed(ridge, w), w).sum().mul(rows * (design.n - 1) / (8 * design.n))
    return secure.lowered(total)
