"""Co-signed job records: when a job ends, every party signs, with its federation
key, a record of what it took part in, and every party keeps every party's
signed record. No party can later deny or rewrite what was computed and
released, and a party's audit log cut back past a job is caught by the head its
own signature vouches for, held by every peer.

A record (canonical JSON): the job's id and spec digest, the signing party, the
provider and dealer, the outcome (state and error reason), the party's inputs'
content digests, its privacy charges, the digest of the result it received (if
any) and its audit log's head when it signed. The participants' records reach
the coordinator with their final reports; the coordinator adds its own and sends
all of them with its StopJob, so each party ends up holding the set (a record
that arrives after the stop stays at the coordinator).

`verify` (`mpcgate audit verify --ca`) checks each stored record: its signature,
that the certificate was issued by the federation CA and names the party, and,
for the party whose log is checked, that the head it signed is still in the log.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.gateway.v1 import audit_pb2 as apb
from gateway.api.gateway.v1 import coordination_pb2 as cpb
from gateway.api.gateway.v1 import jobs_pb2 as pb
from gateway.contract import states
from gateway.db import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_records (
    job_id      TEXT NOT NULL,
    party       TEXT NOT NULL,
    record      BLOB NOT NULL,
    signature   BLOB NOT NULL,
    certificate BLOB NOT NULL,
    PRIMARY KEY (job_id, party)
);
"""


def spec_digest(spec: pb.JobSpec) -> str:
    return hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


class JobRecords:
    def __init__(self, database: Path, party_id: str, key_pem: bytes, cert_pem: bytes) -> None:
        self._db = open_database(database, SCHEMA)
        self._lock = threading.Lock()
        self._party = party_id
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("a party's federation key is an EC key (gateway.transport.pki)")
        self._key, self._cert_pem = key, cert_pem

    def sign(self, job: pb.Job, state: states.State, reason: str, head: tuple[int, str], ledger: dict[str, Any],
             result: pb.JobResult | None) -> cpb.SignedRecord:
        """This party's signed record of `job` (stored here too)."""
        record = {
            "job_id": job.job_id, "party": self._party, "spec_sha256": spec_digest(job.spec),
            "coordinator": job.coordinator, "provider": pb.Provider.Name(job.spec.provider), "dealer": job.dealer,
            "state": states.name(state), "error": reason, **ledger,
            "result_sha256": hashlib.sha256(result.SerializeToString(deterministic=True)).hexdigest() if result else "",
            "audit_head": {"sequence": head[0], "hash": head[1]},
        }
        data = canonical(record)
        signed = cpb.SignedRecord(party_id=self._party, record=data, signature=self._key.sign(data, ec.ECDSA(hashes.SHA256())),
                                  certificate=self._cert_pem)
        self.keep(job.job_id, [signed])
        return signed

    def keep(self, job_id: str, signed: list[cpb.SignedRecord]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO job_records (job_id, party, record, signature, certificate) VALUES (?, ?, ?, ?, ?)",
                [(job_id, s.party_id, s.record, s.signature, s.certificate) for s in signed])

    def of(self, job_id: str) -> list[cpb.SignedRecord]:
        with self._lock:
            rows = self._db.execute("SELECT party, record, signature, certificate FROM job_records WHERE job_id = ? "
                                    "ORDER BY party", (job_id,)).fetchall()
        return [cpb.SignedRecord(party_id=p, record=r, signature=s, certificate=c) for p, r, s, c in rows]

    def checked(self, job_id: str, ca_pem: bytes) -> list[apb.JobRecord]:
        """The job's records here, each checked against the federation CA (for GetJobRecords)."""
        ca = x509.load_pem_x509_certificate(ca_pem)
        out = []
        for signed in self.of(job_id):
            problem = _problem(signed.party_id, signed.record, signed.signature, signed.certificate, ca)
            out.append(apb.JobRecord(party_id=signed.party_id, record=signed.record.decode(errors="replace"),
                                     signature=signed.signature, certificate=signed.certificate.decode(errors="replace"),
                                     verified=not problem, problem=problem))
        return out


@dataclass(frozen=True)
class Checked:
    records: int
    problems: list[str]
    heads: dict[str, list[tuple[int, str]]]  # party -> the audit heads its records vouch for


def verify(database: Path, ca_file: Path) -> Checked:
    """Every record stored in `database`, checked against the federation CA."""
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT job_id, party, record, signature, certificate FROM job_records").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    problems: list[str] = []
    heads: dict[str, list[tuple[int, str]]] = {}
    for job_id, party, data, signature, certificate in rows:
        problem = _problem(party, data, signature, certificate, ca)
        if problem:
            problems.append(f"job {job_id}, party {party}: {problem}")
            continue
        head = json.loads(data)["audit_head"]
        heads.setdefault(party, []).append((int(head["sequence"]), head["hash"]))
    return Checked(len(rows), problems, heads)


def _problem(party: str, data: bytes, signature: bytes, certificate: bytes, ca: x509.Certificate) -> str:
    try:
        cert = x509.load_pem_x509_certificate(certificate)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "its certificate was not issued by the federation CA"
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names or names[0].value != party:
        return "its certificate names another party"
    try:
        record = json.loads(data)
    except ValueError:
        return "the record is not JSON"
    if record.get("party") != party:
        return "the record names another party"
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "the certificate's key is not an EC key"
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not match the record (tampered)"
    return ""
