"""A job in words for the person who approves or audits it: what it reads, what
each receiver learns and under which protections, what it charges. One wording,
shown by `mpcgate jobs get` and by the web console. Client side: imports no
server code."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from gateway.contract import states


def protections(protected: Any) -> str:
    """A release's protections, in words ("" where none applies)."""
    said = []
    if protected.kept_shared:
        said.append("kept secret-shared")
    if protected.epsilon:
        delta = f", delta {protected.delta:g}" if protected.delta else ""
        said.append(f"differentially private, epsilon {protected.epsilon:g}{delta}")
    if protected.min_group_size:
        said.append(f"groups of fewer than {protected.min_group_size} of this party's rows withheld")
    if protected.max_leverage:
        said.append(f"no training row's leverage above {protected.max_leverage:g}")
    return "; ".join(said)


def reads(record: Any) -> list[tuple[str, str]]:
    """(party, "dataset: columns") for every input."""
    return [(i.party_id, f"{i.dataset}: {', '.join(i.columns) or '(keys)'}") for i in record.spec.inputs]


def reveals(record: Any) -> list[tuple[str, str, str]]:
    """(receiver, what it learns, protections) for every release."""
    return [(r.receiver or "every party", r.text, protections(r.protections)) for r in record.reveals]


def charges(record: Any) -> list[tuple[str, str]]:
    """(dataset, "epsilon e (spent|reserved)") for every privacy charge."""
    return [(c.dataset, f"epsilon {c.epsilon:g} ({'spent' if c.released else 'reserved'})") for c in record.charges]


def parameters(record: Any) -> str:
    """The job's parameters as sorted JSON ("" when it has none)."""
    if not record.spec.parameters.fields:
        return ""
    return json.dumps(json_format.MessageToDict(record.spec.parameters), sort_keys=True)


def rows(record: Any) -> list[tuple[str, str]]:
    """The whole description as (field, text) rows, in the order a reviewer reads."""
    out = [("state", states.name(record.state)), ("kind", record.spec.kind),
           ("purpose", record.spec.purpose or "(none stated)"), ("coordinator", record.coordinator),
           ("submitted by", record.submitted_by)]
    out += [(f"reads at {party}", text) for party, text in reads(record)]
    if given := parameters(record):
        out.append(("parameters", given))
    out += [(f"reveals to {receiver}", f"{text} [{protected}]" if protected else text)
            for receiver, text, protected in reveals(record)]
    out += [(f"privacy charge on {dataset}", text) for dataset, text in charges(record)]
    for party in record.parties:
        detail = f" ({party.error.message})" if party.error.message else ""
        out.append((f"party {party.party_id}", f"{states.name(party.state)}{detail}"))
    if record.error.message:
        out.append(("error", f"{record.error.reason}: {record.error.message}"))
    return out
