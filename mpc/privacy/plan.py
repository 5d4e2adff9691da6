"""What each differentially private job releases, and the noise each release gets:
one source for the programs, which sample the noise, and for the gateway's
privacy budgets, which charge it (gateway.registry.budgets).

Mechanism laplace (epsilon-DP): a job's epsilon is split evenly over its noisy
releases (basic composition); a release whose value one row can move by at most
s noise steps gets discrete Laplace noise of scale t = s * releases / epsilon
(mpc.programs.noise.laplace). Mechanism gaussian ((epsilon, delta)-DP): the job's
zero-concentrated budget rho (the largest that meets epsilon at delta, less what
the sampler's deviation costs) is split evenly over the releases, each getting
discrete Gaussian noise of variance s^2 / (2 rho / releases) (mpc.privacy.accounting; sampled by mpc.programs.noise.gaussian).
The releases of a job over d columns, each value clipped into [-1, 1] of its column's
bounds and held as the integer Z = STEP z:
- stats.describe: per column the sum of Z (s = 2 STEP) and the sum of Z^2
  (s = STEP^2): 2d releases;
- stats.covariance, stats.correlation, stats.summary and model.linear_regression:
  those, and per pair of columns the sum of Z_i Z_j (s = 2 STEP^2): d + d (d + 1) / 2;
- model.logistic_regression: the moments above of its d - 1 features, then per
  epoch the gradient's d - 1 coordinates, sums over the rows of Z_j times the
  residual (in [-1, 1], held at 16 fractional bits: s = 2 STEP 2^16), and the
  intercept's (s = 2^17);
- stats.histogram: per column the vector of counts per bin (one row moves one
  count from a bin to another: L1 sensitivity 2), whole-count noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mpc.catalogue.schemas import HistogramParameters, LogisticParameters, Parameters, label_of, private
from mpc.errors import FailedPrecondition
from mpc.privacy import accounting

GRID_BITS = 10
GRID = 2.0**-GRID_BITS
"""Values are clipped to [-1, 1] (in units of the column's clipping half-range,
about its midpoint) and rounded to multiples of GRID before they are aggregated:
a sum of n rows moves by about sqrt(n / 12) GRID, far below the noise (at least
sqrt(2) 2 / epsilon per release)."""
STEP = 1 << GRID_BITS
RESIDUAL_BITS = 16
DP_EPOCHS = 10
"""Logistic regression's epochs under dp (each one's gradient is a release): fixed,
since stopping on the loss would make the number of releases data-dependent."""


@dataclass(frozen=True)
class Part:
    """`count` releases of one kind, each moved by at most `sensitivity` noise
    steps by one row, each with discrete Laplace noise of scale `scale` (steps)
    or, for the gaussian mechanism, the discrete Gaussian `gaussian`."""

    name: str
    count: int
    sensitivity: int
    scale: float = 0.0
    gaussian: accounting.Gaussian | None = None
    rho: float = 0.0  # each release's zCDP (gaussian)
    delta: float = 0.0  # the job's delta (gaussian)

    @property
    def std(self) -> float:
        """The noise's standard deviation, in steps."""
        if self.gaussian is not None:
            return math.sqrt(self.gaussian.sigma2) * self.gaussian.divisor
        return math.sqrt(2) * self.scale


def plan(kind: str, parameters: Parameters, columns: list[str]) -> dict[str, Part]:
    """The job's releases, by part, with the noise each gets."""
    dp = private(parameters)
    if dp is None:
        raise FailedPrecondition(f"a {kind} job without parameter dp has no noise plan")
    epsilon = dp.epsilon
    raw = _parts(kind, parameters, len(columns))
    total = sum(count for _, count, _ in raw)
    if dp.mechanism == "laplace":
        return {name: Part(name, count, sensitivity, sensitivity * total / epsilon) for name, count, sensitivity in raw}
    delta = float(dp.delta or 0.0)
    values = total * (len(parameters.bin_edges) - 1 if isinstance(parameters, HistogramParameters) else 1)
    # the sampler's deviation from the exact distribution, per value, costs (1 + e^epsilon) times it in delta
    rho = accounting.rho_for(epsilon, delta - values * (1 + math.exp(epsilon)) * accounting.TOTAL_VARIATION) / total
    parts = {}
    for name, count, sensitivity in raw:
        # a histogram's column moves by one count in two bins: its zCDP is that of sensitivity sqrt(2)
        noise = accounting.calibrated(math.sqrt(2) if name == "bins" else sensitivity, rho)
        if name == "bins" and noise.divisor > 1:
            raise FailedPrecondition("epsilon and delta are too small for a Gaussian histogram of these columns")
        parts[name] = Part(name, count, sensitivity, gaussian=noise, rho=rho, delta=delta)
    return parts


def epochs(parameters: Parameters) -> int:
    """A dp logistic regression's epochs: as the job says, else DP_EPOCHS."""
    asked = parameters.epochs if isinstance(parameters, LogisticParameters) else None
    return DP_EPOCHS if asked is None else asked


def _parts(kind: str, parameters: Parameters, d: int) -> list[tuple[str, int, int]]:
    if kind == "stats.histogram":
        return [("bins", d, 2)]
    if kind == "stats.describe":
        return [("sums", d, 2 * STEP), ("squares", d, STEP**2)]
    features = d - 1 if kind == "model.logistic_regression" else d
    moments = [("sums", features, 2 * STEP), ("squares", features, STEP**2),
               ("cross", features * (features - 1) // 2, 2 * STEP**2)]
    if kind != "model.logistic_regression":
        return moments
    e = epochs(parameters)
    return [*moments, ("gradient", e * features, 2 * STEP << RESIDUAL_BITS), ("intercept", e, 2 << RESIDUAL_BITS)]


def releases(kind: str, parameters: Parameters, columns: list[str], mine: list[str]) -> list[tuple[float, int, int]]:
    """The releases of a dp job over `columns` that one dataset's rows can move
    (`mine`: its columns among them; all of them for horizontal data), as the
    privacy accountant's events: (noise parameter 1 / t, sensitivity in steps, how
    many). A model's gradient depends on every column of a row."""
    own = set(mine)
    features = [c for c in columns if not (kind == "model.logistic_regression" and c == label_of(parameters))]
    k, d = sum(c in own for c in features), len(features)
    touched = {"bins": k, "sums": k, "squares": k, "cross": d * (d - 1) // 2 - (d - k) * (d - k - 1) // 2}
    parts = plan(kind, parameters, columns)
    if any(part.gaussian is not None for part in parts.values()):  # one zCDP charge: each touched release's rho
        rho = sum(part.rho * touched.get(name, part.count) for name, part in parts.items())
        return [("gaussian", rho, next(iter(parts.values())).delta)]  # type: ignore[list-item]
    return [(1 / part.scale, part.sensitivity, touched.get(name, part.count))
            for name, part in parts.items() if touched.get(name, part.count)]

