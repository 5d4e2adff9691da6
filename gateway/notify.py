"""Webhook notifications to the people behind a gateway: a job awaits this
party's approval, or a job that read this party's data ended.

Each is a JSON POST to the configured URL (https, or http to this host only),
signed with HMAC-SHA256 over "<timestamp>.<body>" with the configured secret:
headers `X-Mpcgate-Timestamp` (seconds) and `X-Mpcgate-Signature: sha256=<hex>`,
so the receiver can tell it came from this gateway and is fresh (`verify`). The
payload names the job, its kind, purpose, state, coordinator, submitter, inputs
and receivers: never a result, a token or a data value. Delivery is best effort
(three attempts, a few seconds apart, off the event loop); each outcome is
audited (`notify.sent`, `notify.failed`)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from mpc.errors import InvalidArgument

log = logging.getLogger(__name__)
ATTEMPTS = 3
RETRY_S = 2.0
TIMEOUT_S = 5.0
FRESH_S = 300
"""How old a notification's timestamp `verify` accepts."""


@dataclass(frozen=True)
class NotifyConfig:
    url: str
    secret: bytes

    @classmethod
    def parse(cls, raw: object, path_of: Callable[[str], Path]) -> NotifyConfig | None:
        """The config's `[notify]` table (`url`, `secret_file`, both required), checked; None without one."""
        if raw is None:
            return None
        if not isinstance(raw, dict) or set(raw) - {"url", "secret_file"} or not isinstance(raw.get("url"), str):
            raise InvalidArgument("config field 'notify' takes 'url' and 'secret_file'")
        url = raw["url"]
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
            raise InvalidArgument("config field 'notify.url' must be https (http only to this host)")
        if not isinstance(raw.get("secret_file"), str):
            raise InvalidArgument("config field 'notify.secret_file' is missing: every notification is signed")
        path = path_of(raw["secret_file"])
        if not path.is_file():
            raise InvalidArgument(f"config field 'notify.secret_file': no file {path}")
        secret = path.read_bytes().strip()
        if len(secret) < 16:
            raise InvalidArgument("config field 'notify.secret_file': the secret needs at least 16 bytes")
        return cls(url, secret)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signed: str, now: float | None = None) -> bool:
    """A receiver's check: the signature is this secret's over this body and time,
    and the time is within FRESH_S of now (a replayed notification is refused)."""
    fresh = timestamp.isdigit() and abs((time.time() if now is None else now) - int(timestamp)) <= FRESH_S
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), signed)


def payload(event: str, party: str, job: pb.Job) -> dict[str, object]:
    spec = job.spec
    return {"event": event, "party": party, "job_id": job.job_id, "kind": spec.kind, "purpose": spec.purpose,
            "state": states.name(job.state), "coordinator": job.coordinator, "submitted_by": job.submitted_by,
            "inputs": [{"party_id": i.party_id, "dataset": i.dataset, "columns": list(i.columns)} for i in spec.inputs],
            "result_receivers": list(spec.result_receivers), "error": job.error.reason}


class Notifier:
    """Sends this party's notifications (`send` returns at once)."""

    def __init__(self, config: NotifyConfig, party: str, audit: Callable[[str, str, str, dict[str, str]], None]) -> None:
        self._config = config
        self._party = party
        self._audit = audit

    def send(self, event: str, job: pb.Job) -> None:
        body = json.dumps(payload(event, self._party, job), sort_keys=True).encode()
        threading.Thread(target=self._deliver, args=(event, job.job_id, body), daemon=True,
                         name=f"notify-{job.job_id}").start()

    def _deliver(self, event: str, job_id: str, body: bytes) -> None:
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_S * attempt)
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Mpcgate-Event": event, "X-Mpcgate-Timestamp": stamp}
            headers["X-Mpcgate-Signature"] = signature(self._config.secret, stamp, body)
            request = urllib.request.Request(self._config.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (https or loopback)
                    status = response.status
                if 200 <= status < 300:
                    self._audit("notify.sent", job_id, "ok", {"event": event})
                    return
                problem = f"HTTP {status}"
            except (urllib.error.URLError, OSError) as err:
                problem = str(getattr(err, "reason", err))[:200]
        log.warning("notification %s for job %s not delivered: %s", event, job_id, problem)
        self._audit("notify.failed", job_id, "failed", {"event": event, "problem": problem})
