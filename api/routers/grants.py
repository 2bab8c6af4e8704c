"""Grants: relay of subjects' signed Grant, Revoke and SetPaused messages; listings by party.

SPEC §9.8: ``SetPaused`` carries a ``sequence`` above the grant's ``pause_sequence`` (read it from
``GET /v1/grants/{grant_id}``); a revocation may name a grant that was signed but never recorded
(its ``grant`` message travels with the ``Revoke``), which can then never be recorded; and a
suspended subject may still revoke, pause and read its own grants.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from chain_client import Member, Role, eip712
from chain_client.ledger import GrantRecorded
from chain_client.types import GrantTerms
from db.models import GrantRecord
from vault import Vault

from ..calls import CallGroups
from ..deps import CurrentMember, LedgerDep, VaultDep, WithdrawingMember
from ..errors import Problem
from ..types import Address, Bytes32, Limit, Offset, Signature, Uint32, Uint64, Uint256
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/grants", tags=["grants"], responses=PROBLEM_RESPONSES)


class GrantMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Address
    grantee: Address
    resources: list[Bytes32] = Field(min_length=1, max_length=32)
    purpose: Bytes32
    validFrom: Uint64
    validUntil: Uint64
    maxUses: Uint32
    nonce: Uint256
    deadline: Uint256

    def terms(self) -> GrantTerms:
        return GrantTerms.from_message(self.model_dump(mode="python"))


class SignedGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: GrantMessage
    signature: Signature


class RevokeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    nonce: Uint256
    deadline: Uint256


class SignedRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: RevokeMessage
    signature: Signature
    grant: GrantMessage | None = Field(
        None,
        description="the Grant message of a grant that may not be recorded yet (a lost QR code): "
        "revoking it with its terms means it can never be recorded (SPEC §9.8)",
    )


class PauseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    paused: bool
    sequence: Uint64 = Field(description="must exceed the grant's pause_sequence (GET /v1/grants/{grant_id})")
    nonce: Uint256
    deadline: Uint256


class SignedPause(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: PauseMessage
    signature: Signature


class TxPublic(BaseModel):
    tx_hash: str
    block_number: int


class GrantRecordedPublic(TxPublic):
    grant_id: str


Status = Literal["active", "paused", "revoked", "expired", "exhausted", "not_yet_valid"]


class GrantPublic(BaseModel):
    grant_id: str
    subject: str
    grantee: str
    resources: list[str]
    purpose: str
    validFrom: int
    validUntil: int
    maxUses: int
    status: str
    uses: int
    tx_hash: str
    block_number: int


class GrantDetail(GrantPublic):
    pause_sequence: int = Field(
        description="the last SetPaused sequence applied (0 before any); sign the next above it"
    )
    nonce: str
    deadline: str


class GrantPage(BaseModel):
    items: list[GrantPublic]
    offset: int
    limit: int


def _sig(hex_signature: str) -> bytes:
    return bytes.fromhex(hex_signature[2:])


def _b32(value: str) -> bytes:
    return bytes.fromhex(value[2:])


@router.post("", response_model=GrantRecordedPublic, status_code=201)
async def record(
    request: Request, body: SignedGrant, member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> GrantRecordedPublic:
    """Relay a subject's signed Grant; the platform pays, the chain checks the signature and rules.

    Grants that arrive together are recorded in one ``multicall`` transaction (group commit), each
    checked on its own by the ledger; the answer comes once the block is in."""
    terms = body.message.terms()
    data = ledger.calldata("recordGrant", terms.as_tuple(), _sig(body.signature))
    groups: CallGroups = request.app.state.calls
    receipt = await asyncio.wrap_future(groups.get().submit(data))
    grant_id = "0x" + eip712.grant_digest(ledger.domain(), terms.message()).hex()
    await asyncio.wrap_future(
        vault.store.writer.submit(
            _terms_writer(body, grant_id, receipt.tx_hash, receipt.block_number, relayed_by=member.address)
        )
    )
    return GrantRecordedPublic(grant_id=grant_id, tx_hash=receipt.tx_hash, block_number=receipt.block_number)


def _terms_writer(
    body: SignedGrant, grant_id: str, tx_hash: str, block_number: int, *, relayed_by: str
) -> Callable[[Session], None]:
    """The write keeping a relayed grant's terms (for later releases), for the group commit."""
    terms = body.message.terms()
    terms_json = body.message.model_dump_json()

    def write(s: Session) -> None:
        s.merge(
            GrantRecord(
                grant_id=grant_id,
                subject=terms.subject,
                grantee=terms.grantee,
                terms=terms_json,
                tx_hash=tx_hash,
                block_number=block_number,
                relayed_by=relayed_by,
                created_at=int(time.time()),
            )
        )

    return write


def _keep_terms(
    vault: VaultDep, body: SignedGrant, grant_id: str, tx_hash: str, block_number: int, *, relayed_by: str
) -> None:
    vault.store.writer.run(_terms_writer(body, grant_id, tx_hash, block_number, relayed_by=relayed_by))


def relay_grant(ledger: LedgerDep, vault: VaultDep, body: SignedGrant, *, relayed_by: str) -> GrantRecorded:
    """Record a subject's signed Grant on chain and keep its terms for later releases."""
    terms = body.message.terms()
    recorded = ledger.record_grant(terms, _sig(body.signature))
    _keep_terms(
        vault,
        body,
        "0x" + recorded.grant_id.hex(),
        recorded.receipt.tx_hash,
        recorded.receipt.block_number,
        relayed_by=relayed_by,
    )
    return recorded


def _path_id(grant_id: str, body_id: str) -> bytes:
    if grant_id.lower() != body_id:
        raise Problem(422, "invalid_input", "the grantId in the message differs from the one in the path")
    return _b32(body_id)


def _own_only_while_suspended(member: Member, subject: str | None) -> None:
    """A suspended subject relays only its own withdrawals (SPEC §9.8); others are unaffected."""
    if member.suspended and subject != member.address:
        raise Problem(403, "member_suspended", "a suspended member may only revoke or pause its own grants")


@router.post("/{grant_id}/revoke", response_model=TxPublic)
async def revoke(
    request: Request, grant_id: str, body: SignedRevoke, member: WithdrawingMember, ledger: LedgerDep
) -> TxPublic:
    """Relay the subject's signed Revoke (final). With ``grant`` (its terms) this also revokes a
    grant that was signed but never recorded; that grant can then never be recorded.

    Revocations arriving together share one ``multicall`` transaction with grants and pauses
    (group commit); each is checked on its own by the ledger."""
    gid = _path_id(grant_id, body.message.grantId)
    m, signature = body.message, _sig(body.signature)
    if body.grant is not None:
        terms = body.grant.terms()
        if ledger.hash_grant(terms) != gid:
            raise Problem(422, "invalid_input", "the grant message does not hash to the grantId")
        _own_only_while_suspended(member, terms.subject)
        data = ledger.calldata("revokeUnrecorded", terms.as_tuple(), m.nonce, m.deadline, signature)
    else:
        await _own_only_while_suspended_async(member, ledger, gid)
        data = ledger.calldata("revoke", gid, m.nonce, m.deadline, signature)
    return await _grouped(request, data)


@router.post("/{grant_id}/pause", response_model=TxPublic)
async def pause(
    request: Request, grant_id: str, body: SignedPause, member: WithdrawingMember, ledger: LedgerDep
) -> TxPublic:
    """Relay the subject's signed SetPaused: pause (``paused: true``) or resume (``false``).
    A ``sequence`` not above the grant's ``pause_sequence`` is 409 ``stale_sequence``.
    Grouped with other grants, revocations and pauses as :func:`revoke` is."""
    gid = _path_id(grant_id, body.message.grantId)
    await _own_only_while_suspended_async(member, ledger, gid)
    m = body.message
    data = ledger.calldata("setPaused", gid, m.paused, m.sequence, m.nonce, m.deadline, _sig(body.signature))
    return await _grouped(request, data)


async def _own_only_while_suspended_async(member: Member, ledger: LedgerDep, grant_id: bytes) -> None:
    if member.suspended:
        state = await run_in_threadpool(ledger.grant_state, grant_id)
        _own_only_while_suspended(member, state.subject)


async def _grouped(request: Request, data: bytes) -> TxPublic:
    """Send one ledger call (its calldata) through the process's group commit; wait for its block."""
    groups: CallGroups = request.app.state.calls
    receipt = await asyncio.wrap_future(groups.get().submit(data))
    return TxPublic(tx_hash=receipt.tx_hash, block_number=receipt.block_number)


@router.get("/{grant_id}", response_model=GrantDetail)
def read(grant_id: Bytes32, member: WithdrawingMember, ledger: LedgerDep, vault: VaultDep) -> GrantDetail:
    """One grant with its live ``status``, ``uses`` and ``pause_sequence`` (SPEC §9.8), for its
    subject, its grantee and auditors; 404 for anyone else, as for an unknown grant."""
    with vault.store.session() as s:
        row = s.get(GrantRecord, grant_id)
    auditor = Role.AUDITOR in member.roles and not member.suspended
    party = row is not None and member.address in (row.subject, row.grantee if not member.suspended else None)
    if row is None or not (auditor or party):
        raise Problem(404, "grant_not_found", "no such grant, or not yours to see")
    message = GrantMessage.model_validate_json(row.terms)
    state = ledger.grant_state(_b32(row.grant_id))
    return GrantDetail(
        **_public(row, message, ledger.grant_status(message.terms()).label, state.uses).model_dump(),
        pause_sequence=ledger.pause_sequence(_b32(row.grant_id)),
        nonce=str(message.nonce),
        deadline=str(message.deadline),
    )


#: Terms of grants relayed through this service, per vault: a grant's terms never change (its id is
#: their EIP-712 digest), so the release path reads each from the database once. Bounded.
_TERMS: weakref.WeakKeyDictionary[Vault, dict[str, GrantTerms]] = weakref.WeakKeyDictionary()
TERMS_CACHED = 50_000


def grant_terms(vault: VaultDep, grant_id: str) -> GrantTerms | None:
    """The terms of a grant relayed through this service, or None."""
    grant_id = grant_id.lower()
    cache = _TERMS.setdefault(vault, {})
    terms = cache.get(grant_id)
    if terms is not None:
        return terms
    with vault.store.session() as s:
        row = s.get(GrantRecord, grant_id)
    if row is None:
        return None
    terms = GrantMessage.model_validate_json(row.terms).terms()
    if len(cache) >= TERMS_CACHED:
        cache.clear()
    cache[grant_id] = terms
    return terms


@router.get("", response_model=GrantPage)
def list_grants(
    member: WithdrawingMember,
    ledger: LedgerDep,
    vault: VaultDep,
    subject: Annotated[Address | None, Query()] = None,
    grantee: Annotated[Address | None, Query()] = None,
    status: Annotated[Status | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> GrantPage:
    """Grants where the caller is the subject or the grantee (auditors: any), with live status."""
    _check_scope(member, subject, grantee)
    if member.suspended:  # a suspended subject reads only the grants it gave (SPEC §9.8)
        subject, grantee = member.address, None
    query = select(GrantRecord).order_by(GrantRecord.block_number.desc(), GrantRecord.grant_id)
    if subject:
        query = query.where(GrantRecord.subject == subject)
    if grantee:
        query = query.where(GrantRecord.grantee == grantee)
    if not subject and not grantee and Role.AUDITOR not in member.roles:
        query = query.where(or_(GrantRecord.subject == member.address, GrantRecord.grantee == member.address))
    with vault.store.session() as s:
        rows = s.scalars(query).all()
    items: list[GrantPublic] = []
    skipped = 0
    for row in rows:
        message = GrantMessage.model_validate_json(row.terms)
        state = ledger.grant_state(_b32(row.grant_id))
        label = ledger.grant_status(message.terms()).label
        if status and label != status:
            continue
        if skipped < offset:
            skipped += 1
            continue
        items.append(_public(row, message, label, state.uses))
        if len(items) == limit:
            break
    return GrantPage(items=items, offset=offset, limit=limit)


def _public(row: GrantRecord, message: GrantMessage, status: str, uses: int) -> GrantPublic:
    return GrantPublic(
        grant_id=row.grant_id,
        subject=row.subject,
        grantee=row.grantee,
        resources=message.resources,
        purpose=message.purpose,
        validFrom=message.validFrom,
        validUntil=message.validUntil,
        maxUses=message.maxUses,
        status=status,
        uses=uses,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
    )


def _check_scope(member: Member, subject: str | None, grantee: str | None) -> None:
    if Role.AUDITOR in member.roles and not member.suspended:
        return
    if subject and subject != member.address and grantee != member.address:
        raise Problem(403, "forbidden", "you may list only grants you gave or received")
    if grantee and grantee != member.address and subject != member.address:
        raise Problem(403, "forbidden", "you may list only grants you gave or received")
