"""Datasets: their schema, row count and policy in the policy file's words, the
privacy budget spent over time, and the policy editor: the owner edits the TOML,
sees every changed field before and after, then applies it through UpdatePolicy
(scope datasets:write; the gateway audits it and rechecks running jobs)."""

from __future__ import annotations

import tomllib
from datetime import UTC
from typing import Any

from aiohttp import web

from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.console.pages import call, form, render, signed_in
from gateway.contract import policies
from mpc.errors import InvalidArgument

routes = web.RouteTableDef()


def _columns(dataset: dpb.Dataset) -> list[dict[str, Any]]:
    return [{"name": c.name, "type": dpb.ColumnType.Name(c.type).removeprefix("COLUMN_TYPE_").lower(),
             "missing": c.missing_count, "categories": len(c.categories), "key": c.name == dataset.key_column}
            for c in dataset.columns]


def budget(dataset: dpb.Dataset) -> dict[str, Any]:
    """The budget and its use over time: each charge with the running total."""
    total, over_time = 0.0, []
    start = {"at": "before any charge", "total": 0.0}
    for charge in dataset.dp_spent.charges:
        total += charge.epsilon
        over_time.append({"job": charge.job_id, "dataset": charge.dataset, "epsilon": charge.epsilon,
                          "released": charge.released, "total": total,
                          "at": charge.charged_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")})
    limit = dataset.policy.dp_budget.epsilon if dataset.policy.HasField("dp_budget") else 0.0
    return {"limit": limit, "spent": dataset.dp_spent.epsilon, "jobs": dataset.dp_spent.jobs,
            "left": max(limit - dataset.dp_spent.epsilon, 0.0) if limit else None, "charges": over_time,
            "chart": {"type": "line", "title": "epsilon spent over time",
                      "labels": [c["at"] for c in [start, *over_time]],
                      "series": [{"name": "spent", "values": [c["total"] for c in [start, *over_time]]},
                                 *([{"name": "budget", "values": [limit] * (len(over_time) + 1)}] if limit else [])]}}


@routes.get("/datasets")
async def dataset_list(request: web.Request) -> web.Response:
    client = signed_in(request).client
    found = await call(client.list_datasets)
    return render(request, "datasets.html", datasets=[
        {"name": d.name, "rows": d.row_count, "columns": len(d.columns), "key": d.key_column,
         "spent": d.dp_spent.epsilon, "limit": d.policy.dp_budget.epsilon if d.policy.HasField("dp_budget") else None,
         "approval": policies.describe(d.policy)["approval"]} for d in found])


@routes.get("/datasets/{name}")
async def dataset_page(request: web.Request) -> web.Response:
    client = signed_in(request).client
    dataset = await call(lambda: client.get_dataset(request.match_info["name"]))
    return _page(request, dataset, policies.to_toml(dataset.policy), saved=request.query.get("saved") == "1")


def _page(request: web.Request, dataset: dpb.Dataset, text: str, status: int = 200, **context: Any) -> web.Response:
    return render(request, "dataset.html", status, dataset={
        "name": dataset.name, "description": dataset.description, "rows": dataset.row_count,
        "key": dataset.key_column, "sha256": dataset.content_sha256, "columns": _columns(dataset)},
        policy=policies.describe(dataset.policy), policy_text=text, budget=budget(dataset),
        **{"changes": None, "refused": "", "saved": False, **context})


@routes.post("/datasets/{name}/policy")
async def edit_policy(request: web.Request) -> web.Response:
    """step=preview: the changed fields, before and after; step=apply: saved."""
    posted = await form(request)
    client = signed_in(request).client
    name = request.match_info["name"]
    dataset = await call(lambda: client.get_dataset(name))
    text = posted.get("policy", "")
    try:
        new = policies.parse(tomllib.loads(text), "the edited policy")
    except tomllib.TOMLDecodeError as err:
        return _page(request, dataset, text, 400, refused=f"the edited policy is not TOML: {err}")
    except InvalidArgument as err:
        return _page(request, dataset, text, 400, refused=err.message)
    if posted.get("step") != "apply":
        return _page(request, dataset, text, changes=policies.changes(dataset.policy, new))
    await call(lambda: client.update_policy(name, new))
    raise web.HTTPSeeOther(f"/datasets/{name}?saved=1")
