"""Members: onboarding and suspension by ADMIN; any member reads a member.

Separation of duties (SPEC §9.8): the AUDITOR role is given only with the signed
``AuditorEnrolment`` of an existing auditor (``auditor_approval``), which the ADMIN relays to the
ledger's ``enrolAuditor``; no account holds both ADMIN and AUDITOR.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain_client import Member, Role
from db.models import AccessRequestRow, GrantRecord, MemberProfile

from ..deps import AdminMember, CurrentMember, LedgerDep, VaultDep
from ..errors import Problem
from ..services.actions import record_action
from ..types import Address, Signature, Uint256
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/members", tags=["members"], responses=PROBLEM_RESPONSES)

RoleName = Literal["ADMIN", "PROVIDER", "CONSUMER", "AUDITOR", "SUBJECT"]


class MemberCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "roles": ["CONSUMER"],
                    "name": "Jinan Housing Provident Fund Center",
                    "org_code": "12370100MB0000000X",
                    "hpke_public_key": "0x" + "11" * 32,
                }
            ]
        },
    )
    address: Address
    roles: list[RoleName] = Field(min_length=1, max_length=5, json_schema_extra={"uniqueItems": True})
    name: str = Field(min_length=1, max_length=200)
    org_code: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[0-9A-Za-z\-_.]+$")
    hpke_public_key: str | None = Field(
        None,
        description="hex of the raw X25519 key (32 bytes) or the 1216-byte hybrid key",
        json_schema_extra={"pattern": "^(0x)?([0-9a-fA-F]{64}|[0-9a-fA-F]{2432})$"},
    )

    @field_validator("roles")
    @classmethod
    def _unique(cls, roles: list[str]) -> list[str]:
        if len(set(roles)) != len(roles):
            raise ValueError("roles must not repeat")
        return roles

    @field_validator("hpke_public_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value[2:] if value.startswith("0x") else value
        if len(text) not in (64, 2432):
            raise ValueError("must be 32 or 1216 bytes of hex")
        try:
            bytes.fromhex(text)
        except ValueError:
            raise ValueError("must be hex") from None
        return "0x" + text.lower()

    auditor_approval: AuditorApproval | None = Field(
        None, description="required when `roles` holds AUDITOR: an existing auditor's signed AuditorEnrolment"
    )


class AuditorEnrolmentMessage(BaseModel):
    """SPEC §9.8 ``AuditorEnrolment(address account,uint256 nonce,uint256 deadline)``."""

    model_config = ConfigDict(extra="forbid")
    account: Address
    nonce: Uint256
    deadline: Uint256


class AuditorApproval(BaseModel):
    """An existing AUDITOR's signature approving ``account`` as a new AUDITOR."""

    model_config = ConfigDict(extra="forbid")
    message: AuditorEnrolmentMessage
    signature: Signature


class SuspendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suspended: bool = Field(True, description="false reinstates the member")


class MemberPublic(BaseModel):
    address: str
    roles: list[str]
    suspended: bool
    wallet: bool = False
    since: int
    org_id: str
    hpke_public_key: str | None
    name: str | None = None
    org_code: str | None = None
    tx_hash: str | None = None


def _public(member: Member, profile: MemberProfile | None, tx_hash: str | None = None) -> MemberPublic:
    return MemberPublic(
        address=member.address,
        roles=member.roles.names(),
        suspended=member.suspended,
        wallet=member.wallet,
        since=member.since,
        org_id="0x" + member.org_id.hex(),
        hpke_public_key=("0x" + member.hpke_key.hex()) if member.hpke_key else None,
        name=profile.name if profile else None,
        org_code=profile.org_code if profile else None,
        tx_hash=tx_hash,
    )


@router.post("", response_model=MemberPublic, status_code=201)
def onboard(body: MemberCreate, admin: AdminMember, ledger: LedgerDep, vault: VaultDep) -> MemberPublic:
    """Onboard a member on chain (roles, org id hash, HPKE key); name and org code stay off chain.

    With AUDITOR in ``roles`` the body carries ``auditor_approval`` (SPEC §9.8) and the member is
    enrolled with it (an existing member then gets ``roles``); without it the ledger refuses
    (422 ``auditor_approval_required``), as it refuses ADMIN with AUDITOR (422 ``conflicting_roles``).
    """
    roles = Role.parse(body.roles)
    key = bytes.fromhex(body.hpke_public_key[2:]) if body.hpke_public_key else b""
    approval = body.auditor_approval
    if approval is not None and Role.AUDITOR not in roles:
        raise Problem(422, "invalid_input", "auditor_approval is only for enrolling an AUDITOR")
    if approval is not None:
        if approval.message.account != body.address:
            raise Problem(422, "invalid_input", "the approval's account differs from the address being enrolled")
        receipt = ledger.enrol_auditor(
            body.address,
            roles,
            org_code=body.org_code,
            hpke_key=key,
            nonce=approval.message.nonce,
            deadline=approval.message.deadline,
            signature=bytes.fromhex(approval.signature[2:]),
        )
    else:
        receipt = ledger.onboard(body.address, roles, org_code=body.org_code, hpke_key=key)
    with vault.store.session() as s:
        profile = MemberProfile(
            address=body.address,
            name=body.name,
            org_code=body.org_code,
            updated_at=int(time.time()),
            updated_by=admin.address,
        )
        s.merge(profile)
        action = "enrol_auditor" if approval is not None else "onboard"
        record_action(s, actor=admin.address, action=action, target=body.address, tx_hash=receipt.tx_hash)
    return _public(ledger.member(body.address), profile, receipt.tx_hash)


def _is_citizen(found: Member, profile: MemberProfile | None) -> bool:
    """A natural person: a SUBJECT without an organisation code (PIPL personal information)."""
    return Role.SUBJECT in found.roles and not (profile and profile.org_code)


def _may_see_name(reader: Member, citizen: str, session: Session) -> bool:
    """Whether ``reader`` may see ``citizen``'s name: the citizen, ADMINs, AUDITORs, and
    organisations the citizen has dealt with, i.e. that hold a grant from the citizen or an
    access request the citizen granted. (An unanswered request does not count: any consumer can
    open one to any address, which would unmask every name.)"""
    if reader.address == citizen or Role.ADMIN in reader.roles or Role.AUDITOR in reader.roles:
        return True
    granted = session.scalar(
        select(GrantRecord.grant_id).where(GrantRecord.subject == citizen, GrantRecord.grantee == reader.address)
    )
    if granted is not None:
        return True
    answered = session.scalar(
        select(AccessRequestRow.id).where(
            AccessRequestRow.subject == citizen,
            AccessRequestRow.consumer == reader.address,
            AccessRequestRow.status == "granted",
        )
    )
    return answered is not None


@router.get("/{address}", response_model=MemberPublic)
def read(
    account: Annotated[Address, Path(alias="address")], member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> MemberPublic:
    """A member's roles, status, org id and HPKE key (any logged-in member may read).

    Organisations' names are public to members; a citizen's name (a SUBJECT without org code) is
    shown only to the citizen, ADMINs, AUDITORs and organisations holding a grant or a granted
    access request from that citizen; to anyone else ``name`` is null."""
    found = ledger.member(account)
    if not found.is_member:
        raise Problem(404, "member_not_found", f"{account} is not a member")
    with vault.store.session() as s:
        profile = s.get(MemberProfile, account)
        if _is_citizen(found, profile) and not _may_see_name(member, account, s):
            return _public(found, None)
    return _public(found, profile)


@router.post("/{address}/suspend", response_model=MemberPublic)
def suspend(
    request: Request,
    account: Annotated[Address, Path(alias="address")],
    admin: AdminMember,
    ledger: LedgerDep,
    vault: VaultDep,
    body: SuspendBody | None = None,
) -> MemberPublic:
    """Suspend a member (or reinstate with ``{"suspended": false}``); takes effect at their next call."""
    suspended = True if body is None else body.suspended
    receipt = ledger.set_suspended(account, suspended)
    request.app.state.authenticator.forget(account)
    with vault.store.session() as s:
        record_action(
            s,
            actor=admin.address,
            action="suspend" if suspended else "reinstate",
            target=account,
            tx_hash=receipt.tx_hash,
        )
        profile = s.get(MemberProfile, account)
    return _public(ledger.member(account), profile, receipt.tx_hash)
