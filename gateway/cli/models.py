"""`mpcgate models`: the models joint jobs trained, as your gateway holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gateway.cli.connection import connection, make_client, run

console = Console()


@click.group()
def models() -> None:
    """List, show, export and delete trained models; register model assets and set
    the policies on their use."""


@models.command()
@connection
@click.argument("model_id")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input-shape", required=True, metavar="D1,D2,...", help="input shape without the batch, e.g. 30 or 1,28,28")
@click.option("--output", type=click.Choice(["identity", "sigmoid", "softmax"]), default="identity", show_default=True,
              help="applied to the network's output under MPC")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="TOML: allowed_parties, allowed_datasets, allowed_result_receivers, allowed_job_kinds, approval")
@click.option("--input-shift", default="", metavar="S1,S2,...", help="the network sees (x - shift) / scale (public)")
@click.option("--input-scale", default="", metavar="C1,C2,...")
def register(model_id: str, onnx_file: Path, input_shape: str, output: str, policy_file: Path, input_shift: str,
             input_scale: str, **conn: Any) -> None:
    """Registers an ONNX network your party owns as a model asset for private inference."""
    from gateway.contract.toml import read_toml

    shape = [int(d) for d in input_shape.split(",") if d]
    shift, scale = ([float(v) for v in text.split(",") if v] for text in (input_shift, input_scale))
    with make_client(**conn) as client:
        model = run(lambda: client.register_model(model_id, onnx_file.read_bytes(), shape, read_toml(policy_file), output,
                                                  input_shift=shift, input_scale=scale))
    console.print(f"registered model asset {model.model_id}")


@models.command()
@connection
@click.argument("model_id")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policy(model_id: str, policy_file: Path, **conn: Any) -> None:
    """Replaces the policy on the use of a model your gateway holds."""
    from gateway.contract.toml import read_toml

    with make_client(**conn) as client:
        run(lambda: client.set_model_policy(model_id, read_toml(policy_file)))
    console.print(f"policy of model {model_id} replaced")


@models.command("list")
@connection
def list_models(**conn: Any) -> None:
    """Lists the models your gateway holds (revealed ones, and shares of shared ones)."""
    with make_client(**conn) as client:
        found = run(client.list_models)
    click.echo(f"{'model':32}  {'kind':26}  {'held as':8}  {'label':12}  metrics")
    for m in found:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items()))
        held = "shares" if m.shared else "own part" if m.partial else "asset" if m.asset else "weights"
        click.echo(f"{m.model_id:32}  {m.kind:26}  {held:8}  {m.label:12}  {metrics}")


@models.command()
@connection
@click.argument("model_id")
def show(model_id: str, **conn: Any) -> None:
    """Shows a model: its features and, where revealed here, its weights."""
    with make_client(**conn) as client:
        model = run(lambda: client.model(model_id))
    table = Table(title=f"{model.kind} {model.model_id}", show_header=False)
    table.add_row("label", model.label)
    table.add_row("parties", ", ".join(model.parties))
    table.add_row("provider", model.provider)
    for name, value in sorted(model.metrics.items()):
        table.add_row(name, f"{value:.6g}")
    if model.shared:
        table.add_row("weights", "kept secret-shared: each party's gateway holds a share; nobody holds them")
    if model.partial:
        table.add_row("weights", "this party's features and its part of the intercept; the parts sum to the model")
    if model.asset:
        table.add_row("weights", "an asset registered here: its weights never leave this gateway")
    if model.architecture.get("widths") or model.asset:
        arch = model.architecture
        shape = "-".join(map(str, arch["widths"])) if arch.get("widths") else "input " + "x".join(map(str, arch["input_shape"]))
        table.add_row("network", f"{shape}, {arch.get('output') or 'identity'} output")
    console.print(table)
    if not model.shared and "coefficients" in model.values:
        weights = Table("feature", "coefficient", "mean", "std")
        means, stds = model.values.get("feature_means"), model.values.get("feature_stds")  # (none through the origin)
        for i, feature in enumerate(model.features):
            weights.add_row(feature, f"{model.coefficients[i]:.6g}", f"{means[i]:.6g}" if means is not None else "",
                            f"{stds[i]:.6g}" if stds is not None else "")
        weights.add_row("(intercept)", f"{model.intercept:.6g}", "", "")
        console.print(weights)


@models.command()
@connection
@click.argument("model_id")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch", "state_dict", "json"]), default="onnx",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export(model_id: str, fmt: str, out: Path, **conn: Any) -> None:
    """Writes a revealed model as ONNX or a torch.export program (rows in; a classifier's
    logit and probability out, a linear model's prediction), a state_dict
    (tensors only, torch.load with weights_only) or JSON (a model.mlp with its
    standardization: rows in, logits out)."""
    import json

    with make_client(**conn) as client:
        model = run(lambda: client.model(model_id))
    if model.shared or model.asset:
        raise click.ClickException(f"model {model_id} has no weights here to export "
                                   f"({'kept secret-shared' if model.shared else 'an asset: export it where it was made'})")
    if fmt == "onnx":
        model.to_onnx(str(out))
    elif fmt in ("torch", "state_dict"):
        model.save_torch(str(out), state_dict=fmt == "state_dict")
    elif model.kind == "model.mlp":
        out.write_text(json.dumps({"model_id": model.model_id, "kind": model.kind, "features": model.features,
                                   "label": model.label, "architecture": model.architecture, "metrics": model.metrics,
                                   "values": {k: v.tolist() for k, v in model.values.items()}}, indent=2))
    else:
        out.write_text(json.dumps({"model_id": model.model_id, "kind": model.kind, "features": model.features,
                                   "label": model.label, "coefficients": model.coefficients.tolist(),
                                   "intercept": model.intercept, "metrics": model.metrics}, indent=2))
    console.print(f"wrote {out}" + (f" (outputs: {', '.join(model.outputs())})" if fmt in ("onnx", "torch") else ""))


@models.command()
@connection
@click.argument("model_id")
def delete(model_id: str, **conn: Any) -> None:
    """Forgets a model at your gateway (and your party's share of it)."""
    with make_client(**conn) as client:
        run(lambda: client.delete_model(model_id))
    console.print(f"deleted model {model_id}")
