"""Access requests: a CONSUMER asks a SUBJECT for resources and a purpose; the subject answers by
signing a Grant (relayed here) or by rejecting.

SPEC §9.2 life cycle: ``pending`` -> ``granted`` | ``rejected`` | ``withdrawn`` (the consumer) |
``expired``. A pending request reads as ``expired`` from its ``expires_at`` second on; the status
is derived when read, so an expired request never needs a worker to be shown right.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import and_, not_, or_, select, update

from chain_client import Role
from chain_client.ids import purpose_id, resource_id
from db import paging
from db.events import emit_access_request
from db.models import AccessRequestRow, PurposeRow

from ..deps import ConsumerMember, CurrentMember, LedgerDep, VaultDep
from ..errors import Problem
from ..schemas.catalog import CODE_PATTERN
from ..schemas.grants import SignedGrant
from ..schemas.page import Page
from ..services.grants import relay_grant
from ..types import Address, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/access-requests", tags=["access requests"], responses=PROBLEM_RESPONSES)

PURPOSE_PATTERN = r"^[a-z0-9][a-z0-9_\-.]{0,127}$"
#: SPEC §9.2: a request lasts 7 days unless the consumer asks for less or more (at most 30).
DEFAULT_EXPIRES_IN = 7 * 86400
MAX_EXPIRES_IN = 30 * 86400

Status = Literal["pending", "granted", "rejected", "expired", "withdrawn"]


def now() -> int:
    """The current Unix second (a module function so tests can stand at a boundary second)."""
    return int(time.time())


class AccessRequestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
                    "resources": ["id_card", "household_register"],
                    "purpose": "housing-provident-fund-withdrawal",
                    "valid_for": 2592000,
                    "max_uses": 2,
                    "note": "Withdrawal application no. 2026-1128",
                }
            ]
        },
    )
    subject: Address
    resources: list[Annotated[str, Field(pattern=CODE_PATTERN)]] = Field(min_length=1, max_length=32)
    purpose: str = Field(pattern=PURPOSE_PATTERN, description="purpose code; its keccak256 is signed in the grant")
    valid_for: int = Field(ge=60, le=5 * 365 * 86400, description="seconds the grant should last")
    max_uses: int = Field(0, ge=0, le=2**32 - 1, description="0 = unlimited")
    note: str | None = Field(None, max_length=1000)
    expires_in: int = Field(
        DEFAULT_EXPIRES_IN, ge=60, le=MAX_EXPIRES_IN, description="seconds the request stays answerable"
    )


class AccessRequestPublic(BaseModel):
    id: str
    consumer: str
    subject: str
    resources: list[str]
    purpose: str
    purpose_id: str = Field(description="keccak256(utf8(purpose)), what the grant signs")
    purpose_name_zh: str | None = Field(
        None, description="from the purpose registry (SPEC §9.3); null when not registered"
    )
    purpose_name_en: str | None = None
    valid_for: int
    max_uses: int
    note: str | None
    status: Status
    grant_id: str | None
    reason: str | None
    created_at: int
    answered_at: int | None = Field(description="when it was granted, rejected or withdrawn")
    expires_at: int | None = Field(description="a pending request reads as expired from this second on")


class Answer(BaseModel):
    # The rule of ``_consistent``, stated in the schema too (so generated clients and fuzzers know it).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"properties": {"decision": {"const": "grant"}, "grant": {"type": "object"}}, "required": ["grant"]},
                {"properties": {"decision": {"const": "reject"}, "grant": {"type": "null"}}},
            ]
        },
    )
    decision: Literal["grant", "reject"]
    grant: SignedGrant | None = Field(None, description="the subject's signed Grant (decision = grant)")
    reason: str | None = Field(None, max_length=1000, description="why (decision = reject)")

    @model_validator(mode="after")
    def _consistent(self) -> Answer:
        if self.decision == "grant" and self.grant is None:
            raise ValueError("a grant answer needs the signed grant")
        if self.decision == "reject" and self.grant is not None:
            raise ValueError("a rejection carries no grant")
        return self


def status_of(row: AccessRequestRow, at: int) -> str:
    """The request's status at ``at``: a pending one past its ``expires_at`` is ``expired``."""
    if row.status == "pending" and row.expires_at is not None and at >= row.expires_at:
        return "expired"
    return row.status


def _names(vault: VaultDep, rows: list[AccessRequestRow]) -> dict[str, PurposeRow]:
    """The registered purposes of ``rows``, by code."""
    codes = {r.purpose for r in rows}
    if not codes:
        return {}
    with vault.store.session() as s:
        return {p.code: p for p in s.scalars(select(PurposeRow).where(PurposeRow.code.in_(codes)))}


def _public(row: AccessRequestRow, at: int, names: dict[str, PurposeRow]) -> AccessRequestPublic:
    named = names.get(row.purpose)
    return AccessRequestPublic(
        purpose_id="0x" + purpose_id(row.purpose).hex(),
        purpose_name_zh=named.name_zh if named else None,
        purpose_name_en=named.name_en if named else None,
        id=row.id,
        consumer=row.consumer,
        subject=row.subject,
        resources=json.loads(row.resources),
        purpose=row.purpose,
        valid_for=row.valid_for,
        max_uses=row.max_uses,
        note=row.note,
        status=status_of(row, at),  # type: ignore[arg-type]
        grant_id=row.grant_id,
        reason=row.reason,
        created_at=row.created_at,
        answered_at=row.answered_at,
        expires_at=row.expires_at,
    )


@router.post("", response_model=AccessRequestPublic, status_code=201)
def create(
    body: AccessRequestCreate, consumer: ConsumerMember, ledger: LedgerDep, vault: VaultDep
) -> AccessRequestPublic:
    """Ask a subject for resources; the subject sees it among its pending requests."""
    if not ledger.is_active(body.subject, Role.SUBJECT):
        raise Problem(404, "subject_not_found", "no active subject with this address")
    for code in body.resources:
        if not ledger.resource(resource_id(code)).exists:
            raise Problem(404, "resource_not_found", f"{code!r} is not in the catalog")
    created = now()
    row = AccessRequestRow(
        id="0x" + secrets.token_hex(32),
        consumer=consumer.address,
        subject=body.subject,
        resources=json.dumps(body.resources),
        purpose=body.purpose,
        valid_for=body.valid_for,
        max_uses=body.max_uses,
        note=body.note,
        status="pending",
        created_at=created,
        expires_at=created + body.expires_in,
    )
    with vault.store.session() as s:
        s.add(row)
        emit_access_request(s, row, "created")
    return _public(row, created, _names(vault, [row]))


@router.get("", response_model=Page[AccessRequestPublic])
def list_requests(
    member: CurrentMember,
    vault: VaultDep,
    status: Annotated[Status | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[AccessRequestPublic]:
    """Requests the caller made (consumer) or received (subject); auditors see all."""
    at = now()
    where = []
    if Role.AUDITOR not in member.roles:
        where.append(or_(AccessRequestRow.consumer == member.address, AccessRequestRow.subject == member.address))
    lapsed = and_(
        AccessRequestRow.status == "pending",
        AccessRequestRow.expires_at.is_not(None),
        AccessRequestRow.expires_at <= at,
    )
    if status == "pending":
        where.extend([AccessRequestRow.status == "pending", not_(lapsed)])
    elif status == "expired":
        where.append(or_(AccessRequestRow.status == "expired", lapsed))
    elif status:
        where.append(AccessRequestRow.status == status)
    with vault.store.session() as s:
        rows, total = paging.page(
            s,
            AccessRequestRow,
            where=where,
            order_by=(AccessRequestRow.created_at.desc(), AccessRequestRow.id),
            offset=offset,
            limit=limit,
        )
    names = _names(vault, rows)
    return Page[AccessRequestPublic](
        items=[_public(r, at, names) for r in rows], offset=offset, limit=limit, total=total
    )


def _visible(vault: VaultDep, request_id: str, member: CurrentMember) -> AccessRequestRow:
    with vault.store.session() as s:
        row = s.get(AccessRequestRow, request_id.lower())
    if row is None or (member.address not in (row.consumer, row.subject) and Role.AUDITOR not in member.roles):
        raise Problem(404, "access_request_not_found", "no such access request")
    return row


@router.get("/{request_id}", response_model=AccessRequestPublic)
def read(request_id: str, member: CurrentMember, vault: VaultDep) -> AccessRequestPublic:
    """One request, to its consumer, its subject, or an auditor."""
    row = _visible(vault, request_id, member)
    return _public(row, now(), _names(vault, [row]))


@router.post("/{request_id}/answer", response_model=AccessRequestPublic)
def answer(
    request_id: str, body: Answer, member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> AccessRequestPublic:
    """The subject grants (with its signed Grant, relayed here) or rejects a pending request."""
    row = _visible(vault, request_id, member)
    if member.address != row.subject:
        raise Problem(403, "not_subject", "only the request's subject answers it")
    at = now()
    _still_pending(row, at)
    values: dict[str, object] = {"answered_at": at}
    if body.decision == "reject":
        values.update(status="rejected", reason=body.reason)
    else:
        assert body.grant is not None
        message = body.grant.message
        requested = {"0x" + resource_id(code).hex() for code in json.loads(row.resources)}
        if (message.subject, message.grantee) != (row.subject, row.consumer):
            raise Problem(422, "grant_mismatch", "the grant must be from the request's subject to its consumer")
        if not set(message.resources) <= requested or message.purpose != "0x" + purpose_id(row.purpose).hex():
            raise Problem(422, "grant_mismatch", "the grant may cover only the requested resources and purpose")
        recorded = relay_grant(ledger, vault.store, body.grant, relayed_by=member.address)
        grant_id = "0x" + recorded.grant_id.hex()
        values.update(status="granted", grant_id=grant_id)
    return _close(vault, row, at, values)


@router.post("/{request_id}/withdraw", response_model=AccessRequestPublic)
def withdraw(request_id: str, member: CurrentMember, vault: VaultDep) -> AccessRequestPublic:
    """The consumer withdraws its pending request (409 ``request_closed`` once it is not pending)."""
    row = _visible(vault, request_id, member)
    if member.address != row.consumer:
        raise Problem(403, "not_consumer", "only the request's consumer withdraws it")
    at = now()
    _still_pending(row, at)
    return _close(vault, row, at, {"status": "withdrawn", "answered_at": at})


def _still_pending(row: AccessRequestRow, at: int) -> None:
    status = status_of(row, at)
    if status != "pending":
        raise Problem(409, "request_closed", f"this request is {status}")


def _close(vault: VaultDep, row: AccessRequestRow, at: int, values: dict[str, object]) -> AccessRequestPublic:
    """Move a request out of ``pending``, unless another answer (or expiry) came first."""
    pending = and_(
        AccessRequestRow.id == row.id,
        AccessRequestRow.status == "pending",
        or_(AccessRequestRow.expires_at.is_(None), AccessRequestRow.expires_at > at),
    )
    with vault.store.session() as s:
        done = s.execute(update(AccessRequestRow).where(pending).values(**values))
        if not getattr(done, "rowcount", 0):
            raise Problem(409, "request_closed", "this request was closed meanwhile")
        updated = s.get(AccessRequestRow, row.id)
        assert updated is not None
        emit_access_request(s, updated, str(values["status"]))
    return _public(updated, at, _names(vault, [updated]))
