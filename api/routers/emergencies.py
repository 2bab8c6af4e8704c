"""Emergency access (the "green channel"): ADMIN and AUDITOR approvers sign one scope; listed
consumers then obtain listed resources of any subject, each release flagged in the access log.

SPEC §9.8: the on-chain ``reason`` is ``keccak256(salt || utf8(text))`` with a random 32-byte salt
kept off chain with the text (so the hash of a guessable text reveals nothing); any ADMIN or
AUDITOR ends an emergency at once with a signed ``EmergencyCancel``; and whether one is ``active``
is the ledger's answer now (approvers still active, not cancelled, inside its window).
"""

from __future__ import annotations

import time
from typing import Annotated

from eth_utils import keccak
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from chain_client import Member, Role
from chain_client.types import EmergencyScope
from db.models import EmergencyRecord

from ..deps import ConsumerMember, CurrentMember, LedgerDep, VaultDep, require
from ..errors import Problem
from ..types import Address, Bytes32, Limit, Offset, Signature, Uint64, Uint256
from .common import PROBLEM_RESPONSES, record_action
from .releases import ReleasePublic, release_answer

router = APIRouter(prefix="/v1/emergencies", tags=["emergencies"], responses=PROBLEM_RESPONSES)

Approver = Annotated[Member, Depends(require(Role.ADMIN, Role.AUDITOR))]


class EmergencyMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    resources: list[Bytes32] = Field(min_length=1, max_length=32)
    consumers: list[Address] = Field(min_length=1, max_length=32)
    validFrom: Uint64
    validUntil: Uint64
    reason: Bytes32
    deadline: Uint256

    def scope(self) -> EmergencyScope:
        return EmergencyScope.from_message(self.model_dump(mode="python"))


class EmergencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyMessage
    signature: Signature
    reason_text: str = Field(min_length=1, max_length=2000, description="kept off chain with `reason_salt`")
    reason_salt: Bytes32 = Field(description="random 32 bytes (hex); `reason` = keccak256(reason_salt || utf8(text))")


class StoredScope(EmergencyMessage):
    """What the platform keeps of an emergency: its message and the salt of its reason."""

    reasonSalt: Bytes32 | None = None


class SignedEmergency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyMessage
    signature: Signature


class EmergencyCancelMessage(BaseModel):
    """SPEC §9.8 ``EmergencyCancel(bytes32 emergencyId,uint256 deadline)``."""

    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    deadline: Uint256


class SignedEmergencyCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyCancelMessage
    signature: Signature


class EmergencyReleaseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    subject: Address
    resource: Bytes32
    requestId: Bytes32
    deadline: Uint256


class SignedEmergencyRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyReleaseMessage
    signature: Signature


class EmergencyPublic(BaseModel):
    emergency_id: str
    resources: list[str]
    consumers: list[str]
    validFrom: int
    validUntil: int
    reason: str
    reason_text: str
    reason_salt: str | None = Field(None, description="null for an emergency proposed before salts (v1)")
    proposer: str
    approvals: int
    approvers: list[str]
    cancelled: bool
    activated_at: int = Field(description="time of the approval that activated it; 0 before")
    active: bool = Field(description="usable now: approved by approvers active now, not cancelled, in its window")
    tx_hash: str | None = None


class EmergencyPage(BaseModel):
    items: list[EmergencyPublic]
    offset: int
    limit: int


def _scope(record: EmergencyRecord) -> StoredScope:
    return StoredScope.model_validate_json(record.scope)


def _public(ledger: LedgerDep, record: EmergencyRecord, tx_hash: str | None = None) -> EmergencyPublic:
    message = _scope(record)
    emergency_id = bytes.fromhex(record.emergency_id[2:])
    state = ledger.emergency_state(emergency_id)
    return EmergencyPublic(
        emergency_id=record.emergency_id,
        resources=message.resources,
        consumers=message.consumers,
        validFrom=message.validFrom,
        validUntil=message.validUntil,
        reason=message.reason,
        reason_text=record.reason_text,
        reason_salt=message.reasonSalt,
        proposer=record.proposer,
        approvals=state.approvals,
        approvers=ledger.emergency_approvers(emergency_id),
        cancelled=state.cancelled,
        activated_at=state.activated_at,
        active=ledger.emergency_active(emergency_id),
        tx_hash=tx_hash,
    )


def _sig(hex_signature: str) -> bytes:
    return bytes.fromhex(hex_signature[2:])


@router.post("", response_model=EmergencyPublic, status_code=201)
def propose(body: EmergencyCreate, approver: Approver, ledger: LedgerDep, vault: VaultDep) -> EmergencyPublic:
    """Propose an emergency with an approver's signature (it counts as the first approval)."""
    salt = bytes.fromhex(body.reason_salt[2:])
    if "0x" + keccak(salt + body.reason_text.encode()).hex() != body.message.reason:
        raise Problem(422, "reason_mismatch", "reason must be keccak256(reason_salt || utf8(reason_text))")
    receipt = ledger.propose_emergency(body.message.scope(), _sig(body.signature))
    stored = StoredScope(**body.message.model_dump(), reasonSalt=body.reason_salt)
    record = EmergencyRecord(
        emergency_id=body.message.emergencyId,
        scope=stored.model_dump_json(),
        reason_text=body.reason_text,
        proposer=approver.address,
        created_at=int(time.time()),
        tx_hash=receipt.tx_hash,
    )
    with vault.store.session() as s:
        s.merge(record)
    return _public(ledger, record, receipt.tx_hash)


def _record(vault: VaultDep, emergency_id: str) -> EmergencyRecord:
    with vault.store.session() as s:
        record = s.get(EmergencyRecord, emergency_id.lower())
    if record is None:
        raise Problem(404, "emergency_not_found", "no such emergency")
    return record


@router.post("/{emergency_id}/approve", response_model=EmergencyPublic)
def approve(
    emergency_id: str, body: SignedEmergency, approver: Approver, ledger: LedgerDep, vault: VaultDep
) -> EmergencyPublic:
    """Add another approver's signature of the same Emergency message."""
    record = _record(vault, emergency_id)
    if body.message.emergencyId != record.emergency_id:
        raise Problem(422, "invalid_input", "the emergencyId in the message differs from the one in the path")
    receipt = ledger.approve_emergency(body.message.scope(), _sig(body.signature))
    return _public(ledger, record, receipt.tx_hash)


@router.post("/{emergency_id}/cancel", response_model=EmergencyPublic)
def cancel(
    emergency_id: str, body: SignedEmergencyCancel, approver: Approver, ledger: LedgerDep, vault: VaultDep
) -> EmergencyPublic:
    """Relay an ADMIN's or AUDITOR's signed EmergencyCancel: the emergency ends at once (final);
    a second cancel is 409 ``emergency_cancelled``."""
    record = _record(vault, emergency_id)
    if body.message.emergencyId != record.emergency_id:
        raise Problem(422, "invalid_input", "the emergencyId in the message differs from the one in the path")
    receipt = ledger.cancel_emergency(
        bytes.fromhex(record.emergency_id[2:]), body.message.deadline, _sig(body.signature)
    )
    with vault.store.session() as s:
        record_action(
            s, actor=approver.address, action="cancel_emergency", target=record.emergency_id, tx_hash=receipt.tx_hash
        )
    return _public(ledger, record, receipt.tx_hash)


@router.get("", response_model=EmergencyPage)
def list_emergencies(
    member: CurrentMember,
    ledger: LedgerDep,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> EmergencyPage:
    """Emergencies with their approvals and status: approvers see all, consumers those naming them."""
    approver = Role.ADMIN in member.roles or Role.AUDITOR in member.roles
    if not approver and Role.CONSUMER not in member.roles:
        raise Problem(403, "role_required", "this needs the ADMIN, AUDITOR or CONSUMER role")
    with vault.store.session() as s:
        records = s.scalars(select(EmergencyRecord).order_by(EmergencyRecord.created_at.desc())).all()
    visible = [r for r in records if approver or member.address in _scope(r).consumers]
    return EmergencyPage(
        items=[_public(ledger, r) for r in visible[offset : offset + limit]], offset=offset, limit=limit
    )


@router.post("/{emergency_id}/releases", response_model=ReleasePublic, status_code=201)
def release(
    emergency_id: str, body: SignedEmergencyRelease, consumer: ConsumerMember, ledger: LedgerDep, vault: VaultDep
) -> ReleasePublic:
    """A listed consumer's release under an active emergency (flagged in the subject's access log)."""
    record = _record(vault, emergency_id)
    scope = _scope(record)
    if body.message.emergencyId != record.emergency_id:
        raise Problem(422, "invalid_input", "the emergencyId in the message differs from the one in the path")
    if consumer.address not in scope.consumers:
        raise Problem(403, "emergency_out_of_scope", "this consumer is not listed in the emergency")
    m = body.message
    done = vault.emergency_release(
        scope=scope.scope(),
        consumer=consumer.address,
        subject=m.subject,
        resource=bytes.fromhex(m.resource[2:]),
        request_id=bytes.fromhex(m.requestId[2:]),
        deadline=m.deadline,
        signature=_sig(body.signature),
    )
    return release_answer(done)
