"""Models this gateway holds (scope models:read): what each is, what it reveals
(its weights where revealed, else only metrics: the weights stay secret-shared),
and an export of a revealed model's values as JSON."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from aiohttp import web

from gateway.console.pages import call, render, signed_in

routes = web.RouteTableDef()


def _summary(model: Any) -> dict[str, Any]:
    if model.asset:
        reveals = "an ONNX network registered here: its weights never leave this gateway"
    elif model.shared:
        reveals = "metrics only: the weights are kept secret-shared at the parties that trained it"
    elif model.partial:
        reveals = "this party's own coefficients and its part of the intercept"
    else:
        reveals = "its weights (in the features' units) and metrics"
    return {"id": model.model_id, "kind": model.kind, "label": model.label, "features": model.features,
            "parties": model.parties, "metrics": {k: f"{v:.4g}" for k, v in sorted(model.metrics.items())},
            "reveals": reveals, "exportable": bool(model.values) and not model.shared}


@routes.get("/models")
async def model_list(request: web.Request) -> web.Response:
    client = signed_in(request).client
    found = await call(client.list_models)
    return render(request, "models.html", models=[_summary(m) for m in found])


@routes.get("/models/{model_id}.json")
async def export(request: web.Request) -> web.Response:
    client = signed_in(request).client
    model = await call(lambda: client.model(request.match_info["model_id"]))
    body = {"model_id": model.model_id, "kind": model.kind, "label": model.label, "features": model.features,
            "metrics": model.metrics, "values": {k: np.asarray(v).tolist() for k, v in model.values.items()}}
    return web.Response(text=json.dumps(body, indent=2, allow_nan=False) + "\n", content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{model.model_id}.json"'})
