"""A shared sum plus the noise its part of the job's noise plan (mpc.privacy.plan)
gives it, sampled under MPC: no party knows the noise."""

from __future__ import annotations

from typing import Any

from mpc.privacy.plan import Part
from mpc.programs.noise import gaussian, laplace


def noised(value: Any, part: Part, precision: int = 0, step_bits: int = 0) -> Any:
    """A shared sum plus its part's noise, one draw per element: noise steps of
    2^-step_bits of the value (an exact multiple of them), held at `precision`."""
    divisor = part.gaussian.divisor if part.gaussian is not None else 1
    if divisor > 1:  # the sampler's range: the sum floor-divided first, exactly (the plan counted the rounding)
        value = gaussian.floor_divided(value, divisor)
    count = int(value.numel())
    if part.gaussian is not None:
        steps = gaussian.discrete_gaussian(count, part.gaussian)
    else:
        steps = laplace.discrete_laplace(count, part.scale, 0, step_bits=0)
    noise = laplace.at_precision(steps, precision, step_bits).reshape(value.size())
    return value + noise if divisor == 1 else (value + noise).mul(divisor)
