"""Data corrections (SPEC §9.4, 自主校核纠错): a subject disputes a document of theirs and its
issuer answers within 2 PRC working days.

The opening and the outcome are anchored on chain as salted commitments (no text, no personal
data) through ``AuditAnchor.anchorRecord``, so compliance with the clock can be proven to an
auditor. A ``corrected`` outcome stores the issuer's new content as the subject's current document
of that resource; the disputed one is kept, marked ``superseded``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
from typing import Annotated, Literal

from eth_utils import keccak
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, or_, select, update

from chain_client import Ledger, Member, Role
from chain_client.errors import ChainError
from db import paging
from db.events import emit_correction
from db.models import CorrectionRow
from vault.errors import DocumentDeleted

from ..deps import CurrentMember, LedgerDep, VaultDep
from ..errors import Problem
from ..schemas.page import Page
from ..types import Limit, Offset
from ..workdays import due_at
from .common import PROBLEM_RESPONSES
from .documents import DOC_ID_PATTERN

log = logging.getLogger("qcl.api.corrections")

router = APIRouter(prefix="/v1/corrections", tags=["corrections"], responses=PROBLEM_RESPONSES)

#: The plan's limit: problem data corrected within 2 working days (SPEC §9.4).
WORKING_DAYS = 2
MAX_EVIDENCE_BYTES = 1024 * 1024
KIND_OPENED = keccak(b"qcl.correction.opened")
KIND_RESOLVED = keccak(b"qcl.correction.resolved")


def _base64(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be standard base64") from None
    return value


class CorrectionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "document_id": "0x" + "ab" * 32,
                    "claim": "The address on my household register is out of date.",
                    "evidence": base64.b64encode(b"%PDF-1.7 ...").decode(),
                }
            ]
        },
    )
    document_id: str = Field(pattern=DOC_ID_PATTERN)
    claim: str = Field(min_length=1, max_length=2000, description="what is wrong (kept off chain)")
    evidence: str | None = Field(
        None,
        description="supporting file, base64 (at most 1 MiB)",
        json_schema_extra={"pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    )

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, value: str | None) -> str | None:
        checked = _base64(value)
        if checked is not None and len(base64.b64decode(checked)) > MAX_EVIDENCE_BYTES:
            raise ValueError(f"evidence exceeds {MAX_EVIDENCE_BYTES} bytes")
        return checked


class Resolution(BaseModel):
    # The rule of ``_consistent``, stated in the schema too (so generated clients and fuzzers know it).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {"outcome": {"const": "corrected"}, "content": {"type": "string", "minLength": 1}},
                    "required": ["content"],
                },
                {"properties": {"outcome": {"const": "rejected"}, "content": {"type": "null"}}},
            ]
        },
    )
    outcome: Literal["corrected", "rejected"]
    reason: str = Field(min_length=1, max_length=2000, description="shown to the subject")
    content: str | None = Field(
        None,
        description="the corrected document, base64 (outcome = corrected)",
        json_schema_extra={"pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str | None) -> str | None:
        return _base64(value)

    @model_validator(mode="after")
    def _consistent(self) -> Resolution:
        if self.outcome == "corrected" and not self.content:
            raise ValueError("a corrected outcome needs the corrected content")
        if self.outcome == "rejected" and self.content is not None:
            raise ValueError("a rejection carries no content")
        return self


class CorrectionPublic(BaseModel):
    correction_id: str
    document_id: str
    subject: str
    issuer: str
    resource: str
    claim: str
    evidence: str | None = Field(description="base64")
    status: Literal["open", "corrected", "rejected"]
    opened_at: int
    due_at: int = Field(description="24:00 Asia/Shanghai of the 2nd working day after the day of opening")
    resolved_at: int | None
    reason: str | None
    new_document_id: str | None = Field(description="the replacement document (outcome corrected)")
    overdue: bool = Field(description="open past due_at")
    late: bool = Field(description="resolved after due_at")
    open_commitment: str
    open_tx: str | None = Field(description="null when the chain could not be reached")
    outcome_commitment: str | None
    outcome_tx: str | None


def _public(row: CorrectionRow, now: int) -> CorrectionPublic:
    return CorrectionPublic(
        correction_id=row.id,
        document_id=row.document_id,
        subject=row.subject,
        issuer=row.issuer,
        resource=row.resource,
        claim=row.claim,
        evidence=base64.b64encode(row.evidence).decode() if row.evidence is not None else None,
        status=row.status,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        due_at=row.due_at,
        resolved_at=row.resolved_at,
        reason=row.reason,
        new_document_id=row.new_document_id,
        overdue=row.status == "open" and now >= row.due_at,
        late=row.resolved_at is not None and row.resolved_at >= row.due_at,
        open_commitment=row.open_commitment,
        open_tx=row.open_tx,
        outcome_commitment=row.outcome_commitment,
        outcome_tx=row.outcome_tx,
    )


def commitment(salt: bytes, facts: dict[str, object]) -> bytes:
    """keccak256(salt || canonical JSON of ``facts``): binds the record without revealing it."""
    return keccak(salt + json.dumps(facts, sort_keys=True, separators=(",", ":")).encode())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def anchor_record(ledger: Ledger, record_id: bytes, kind: bytes, value: bytes) -> str | None:
    """Anchor a record's commitment; None (logged) when the chain refuses or cannot be reached.

    The record itself is already kept; a missing anchor shows as a null ``*_tx``.
    """
    try:
        return ledger.anchor_record(record_id, kind, value).tx_hash
    except ChainError as exc:
        log.warning("record %s not anchored: %s", "0x" + record_id.hex(), exc)
        return None


def _sees_all(member: Member) -> bool:
    return Role.ADMIN in member.roles or Role.AUDITOR in member.roles


def _visible(vault: VaultDep, correction_id: str, member: Member) -> CorrectionRow:
    with vault.store.session() as s:
        row = s.get(CorrectionRow, correction_id.lower())
    if row is None or (member.address not in (row.subject, row.issuer) and not _sees_all(member)):
        raise Problem(404, "correction_not_found", "no such correction")
    return row


@router.post("", response_model=CorrectionPublic, status_code=201)
def open_correction(
    body: CorrectionCreate, member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> CorrectionPublic:
    """The subject disputes a current document of theirs issued by a provider; the clock starts."""
    if Role.SUBJECT not in member.roles:
        raise Problem(403, "role_required", "only a SUBJECT disputes its documents")
    doc = vault.document_info(body.document_id.lower(), subject=member.address)  # 404 when not theirs
    if doc.state == "deleted":
        raise DocumentDeleted(f"document {doc.document_id} was deleted")
    if doc.state != "current":
        raise Problem(409, "document_not_current", f"this document is {doc.state}; dispute the current one")
    if doc.issuer == member.address:
        raise Problem(422, "self_issued", "you stored this document yourself; store a corrected one instead")
    now = int(time.time())
    with vault.store.session() as s:
        pending = s.scalar(
            select(func.count())
            .select_from(CorrectionRow)
            .where(CorrectionRow.document_id == doc.document_id, CorrectionRow.status == "open")
        )
    if pending:
        raise Problem(409, "correction_open", "a correction of this document is already open")
    record_id = os.urandom(32)
    salt = os.urandom(32)
    due = due_at(now, WORKING_DAYS)
    facts: dict[str, object] = {
        "correction_id": "0x" + record_id.hex(),
        "document_id": doc.document_id,
        "opened_at": now,
        "due_at": due,
        "claim_sha256": _sha256(body.claim),
    }
    opened = commitment(salt, facts)
    row = CorrectionRow(
        id="0x" + record_id.hex(),
        document_id=doc.document_id,
        subject=member.address,
        issuer=doc.issuer,
        resource=doc.resource,
        claim=body.claim,
        evidence=base64.b64decode(body.evidence) if body.evidence is not None else None,
        status="open",
        opened_at=now,
        opened_ns=time.time_ns(),
        due_at=due,
        salt=salt,
        open_commitment="0x" + opened.hex(),
    )
    with vault.store.session() as s:
        s.add(row)
        emit_correction(s, row, "opened")
    row.open_tx = anchor_record(ledger, record_id, KIND_OPENED, opened)
    if row.open_tx is not None:
        with vault.store.session() as s:
            s.execute(update(CorrectionRow).where(CorrectionRow.id == row.id).values(open_tx=row.open_tx))
    return _public(row, now)


@router.get("", response_model=Page[CorrectionPublic])
def list_corrections(
    member: CurrentMember,
    vault: VaultDep,
    status: Annotated[Literal["open", "corrected", "rejected"] | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[CorrectionPublic]:
    """A subject's own corrections; a provider's on documents it issued; ADMINs and AUDITORs all. Newest first."""
    where = []
    if not _sees_all(member):
        where.append(or_(CorrectionRow.subject == member.address, CorrectionRow.issuer == member.address))
    if status:
        where.append(CorrectionRow.status == status)
    now = int(time.time())
    with vault.store.session() as s:
        rows, total = paging.page(
            s,
            CorrectionRow,
            where=where,
            order_by=(CorrectionRow.opened_at.desc(), CorrectionRow.opened_ns.desc(), CorrectionRow.id),
            offset=offset,
            limit=limit,
        )
    return Page[CorrectionPublic](items=[_public(r, now) for r in rows], offset=offset, limit=limit, total=total)


@router.get("/{correction_id}", response_model=CorrectionPublic)
def read(correction_id: str, member: CurrentMember, vault: VaultDep) -> CorrectionPublic:
    """One correction, to its subject, its issuer, ADMINs and AUDITORs."""
    return _public(_visible(vault, correction_id, member), int(time.time()))


@router.post("/{correction_id}/resolve", response_model=CorrectionPublic)
def resolve(
    correction_id: str, body: Resolution, member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> CorrectionPublic:
    """The issuer corrects (its new content becomes the current document) or rejects, with a reason."""
    row = _visible(vault, correction_id, member)
    if member.address != row.issuer:
        raise Problem(403, "not_issuer", "only the document's issuer resolves its correction")
    if row.status != "open":
        raise Problem(409, "correction_closed", f"this correction was already {row.status}")
    now = int(time.time())
    # Claim the correction first, so two answers never both store a replacement document.
    with vault.store.session() as s:
        done = s.execute(
            update(CorrectionRow)
            .where(CorrectionRow.id == row.id, CorrectionRow.status == "open")
            .values(status=body.outcome, resolved_at=now, reason=body.reason)
        )
        if not getattr(done, "rowcount", 0):
            raise Problem(409, "correction_closed", "this correction was resolved meanwhile")
    new_document_id = None
    if body.outcome == "corrected":
        assert body.content is not None
        try:
            old = vault.read_document(row.document_id, subject=row.subject)
            stored = vault.store_document(
                subject=row.subject,
                resource=row.resource,
                content=base64.b64decode(body.content),
                issuer=member.address,
                metadata=old.metadata,
            )
        except BaseException:  # nothing was replaced: the correction is open again
            with vault.store.session() as s:
                s.execute(
                    update(CorrectionRow)
                    .where(CorrectionRow.id == row.id)
                    .values(status="open", resolved_at=None, reason=None)
                )
            raise
        new_document_id = stored.document.document_id
        vault.supersede_document(row.document_id)
    facts: dict[str, object] = {
        "correction_id": row.id,
        "outcome": body.outcome,
        "resolved_at": now,
        "new_document_id": new_document_id,
        "reason_sha256": _sha256(body.reason),
    }
    outcome = commitment(row.salt, facts)
    with vault.store.session() as s:
        s.execute(
            update(CorrectionRow)
            .where(CorrectionRow.id == row.id)
            .values(new_document_id=new_document_id, outcome_commitment="0x" + outcome.hex())
        )
    record_id = keccak(bytes.fromhex(row.id[2:]) + b"/outcome")
    tx = anchor_record(ledger, record_id, KIND_RESOLVED, outcome)
    with vault.store.session() as s:
        if tx is not None:
            s.execute(update(CorrectionRow).where(CorrectionRow.id == row.id).values(outcome_tx=tx))
        updated = s.get(CorrectionRow, row.id)
        assert updated is not None
        emit_correction(s, updated, "resolved")
        return _public(updated, now)
