"""The logistic sigmoid under MPC, for models: sigmoid and softplus (the log-loss)
from one comparison and one exponential, and a clamp that bounds the damage of a
failed truncation. Inputs at 16 fractional bits (secure.PRODUCT_BITS)."""

from __future__ import annotations

from typing import Any

from mpc.programs import secure
from mpc.programs.ratios import LOG1P


def activations(eta: Any, softplus: bool = False) -> tuple[Any, Any]:
    """(sigmoid, softplus or None): see `parts`."""
    sigmoid, soft, _ = parts(eta, softplus)
    return sigmoid, soft


def parts(eta: Any, softplus: bool = False) -> tuple[Any, Any, Any]:
    """sigmoid(eta) = 1 / (1 + exp(-eta)) at 16 bits, and with `softplus`
    log(1 + exp(eta)) for the loss, from one comparison and one exponential: with
    e = exp(-|eta|) in (0, 1], sigmoid(|eta|) = 1 / (1 + e) (Newton's reciprocal
    on [1, 2] from 0.75 converges in 5 steps) and softplus(eta) = relu(eta) +
    log1p(e), log1p by a degree-7 polynomial on [0, 1] (error < 1e-6), not
    CrypTen's log (two Householder steps, each an exponential). The sign is
    compared at the configured precision (CrypTen's own sigmoid compares at the
    tensor's), and returned too: (sigmoid, softplus or None, eta < 0 as bits)."""
    import crypten

    negative, magnitude = secure.sign_and_magnitude(eta)
    with crypten.cfg.temp_override({"functions.reciprocal_all_pos": True, "functions.reciprocal_initial": 0.75,
                                    "functions.reciprocal_nr_iters": 5, "functions.exp_iterations": 9}):
        e = magnitude.neg().exp()
        positive = e.add(1).reciprocal()
    sigmoid = positive + negative * (1 - 2 * positive)
    if not softplus:
        return sigmoid, None, negative
    return sigmoid, eta * (1 - negative) + e.polynomial(LOG1P), negative


def clamp01(p: Any) -> Any:
    """p within [0, 1]: a row whose sigmoid suffered a failed truncation counts as a
    confident wrong guess, its damage bounded."""
    p = p - p * secure.less_than(p, 0)
    return p - (p - 1) * secure.greater_than(p, 1)
