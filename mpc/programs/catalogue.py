"""Every job kind in words, for people choosing one (`mpcgate kinds`): what it
computes, its parameters (what each means and accepts) and a runnable example.
Plain data, no torch: the CLI reads it without loading the MPC stack.
`tests/test_kinds.py` holds it to the programs' own schemas (mpc.programs.KINDS)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    summary: str
    parameters: tuple[str, ...]
    required: tuple[str, ...]
    example: str  # the `mpcgate jobs submit` arguments after --kind


PARAMETERS = {
    "extremes": "true|false: also min and max (exact single values: every data owner's policy must allow extremes)",
    "dp": '{"epsilon": 2^-10..10, "mechanism": "laplace"} or {"epsilon": .., "delta": 1e-12..1e-3, '
          '"mechanism": "gaussian"}: differentially private release, charged to each dataset\'s budget',
    "key_salt": "text: vertical jobs: mixed into the key hashes (any value every party's job carries alike)",
    "bin_edges": "[e0, e1, ..]: at least two finite, strictly increasing numbers (bins [e_i, e_i+1))",
    "label": "column name: the label (its owner's column; 0/1 for a classifier)",
    "alpha": "number >= 0: ridge penalty (linear regression: default 0; logistic: default 1, as scikit-learn's C = 1)",
    "fit_intercept": "true|false: fit an intercept (default true)",
    "holdout": "0..0.5: share of rows held out for the released metrics",
    "seed": "0..2^31-1: the holdout's split",
    "keep_shared": "true|false: keep the weights secret-shared (use them with model.predict)",
    "own_coefficients": "true|false: vertical: each party receives only its own features' coefficients",
    "epochs": "1..200: most passes over the data (logistic: Newton steps, default 20)",
    "tolerance": "number >= 0: stop when the largest weight change falls below it (default 1e-4)",
    "hidden": "[w1, ..]: 1 to 4 hidden layer widths, each 1..1024",
    "output": '"sigmoid" (binary) or "softmax" (with classes)',
    "classes": "2..1000: number of classes of a softmax output (labels 0..classes-1)",
    "batch_size": "1..65536: rows per step",
    "learning_rate": "above 0 and at most 10",
    "reveal": '"probabilities" or "classes": what model.predict releases per row',
    "cardinality_only": "true|false: release the intersection's size only, not the common keys",
}

_STATS = ("extremes", "dp", "key_salt")
_LINEAR = ("label", "alpha", "fit_intercept", "holdout", "seed", "keep_shared", "own_coefficients", "dp", "key_salt")
_TWO_BANKS = "--input bank-a:loans:income,debt --input bank-b:loans:income,debt --receiver bank-a"

KINDS = {
    "stats.describe": Kind("count, sum, mean, variance and std per column", _STATS, (), _TWO_BANKS),
    "stats.covariance": Kind("count and the sample covariance matrix", ("dp", "key_salt"), (), _TWO_BANKS),
    "stats.correlation": Kind("count and the correlation matrix", ("dp", "key_salt"), (), _TWO_BANKS),
    "stats.summary": Kind("describe's statistics, covariance and correlation", _STATS, (), _TWO_BANKS),
    "stats.histogram": Kind("count and the pooled rows per bin of each column (small bins withheld)",
                            ("bin_edges", "dp", "key_salt"), ("bin_edges",),
                            f"{_TWO_BANKS} --param bin_edges=[0,20000,50000,100000]"),
    "model.linear_regression": Kind("ridge regression: coefficients, intercept, R^2", _LINEAR, ("label",),
                                    "--input bank-a:loans:income,age,debt --input bank-b:loans:income,age,debt "
                                    "--receiver bank-a --param label=debt --param alpha=1"),
    "model.logistic_regression": Kind(
        "logistic regression (Newton steps): coefficients, intercept, AUC and accuracy",
        (*_LINEAR[:3], "epochs", "tolerance", *_LINEAR[3:]), ("label",),
        "--input bank-a:customers:income,age --input bank-b:scores:defaulted --partitioning vertical "
        "--receiver bank-b --param label=defaulted"),
    "model.mlp": Kind("a small neural network (SGD): its weights and metrics",
                      ("label", "hidden", "output", "classes", "epochs", "batch_size", "learning_rate", "holdout",
                       "seed", "keep_shared", "key_salt"), ("label",),
                      "--input bank-a:loans:income,age,defaulted --input bank-b:loans:income,age,defaulted "
                      "--receiver bank-a --param label=defaulted --param hidden=[8]"),
    "model.predict": Kind("a stored model applied to the inputs' rows: a score per row for the receivers",
                          ("reveal", "key_salt"), (),
                          "--model MODEL_ID@bank-a --input bank-b:loans:income,debt,age --receiver bank-b"),
    "model.evaluate": Kind("a stored model's metrics on the inputs' labelled rows", ("label", "key_salt"), ("label",),
                           "--model MODEL_ID@bank-a --input bank-b:loans:income,debt,age,defaulted "
                           "--receiver bank-b --param label=defaulted"),
    "psi.intersect": Kind("the private set intersection of the datasets' key columns: its size and, unless "
                          "cardinality_only, the common keys (an input names no columns: PARTY:DATASET:)",
                          ("cardinality_only", "key_salt"), (),
                          "--input bank-a:customers: --input bank-b:customers: --partitioning vertical "
                          "--receiver bank-a --param cardinality_only=true"),
}
