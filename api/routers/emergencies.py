"""Emergency access (the "green channel"): ADMIN and AUDITOR approvers sign one scope; listed
consumers then obtain listed resources of any subject, each release flagged in the access log
(use cases in :mod:`api.services.emergencies`).

SPEC §9.8: the on-chain ``reason`` is ``keccak256(salt || utf8(text))`` with a random 32-byte salt
kept off chain with the text (so the hash of a guessable text reveals nothing); any ADMIN or
AUDITOR ends an emergency at once with a signed ``EmergencyCancel``; and whether one is ``active``
is the ledger's answer now (approvers still active, not cancelled, inside its window).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from chain_client import Member, Role

from ..deps import ConsumerMember, CurrentMember, LedgerDep, VaultDep, ViewDep, require
from ..schemas.emergencies import (
    EmergencyCreate,
    EmergencyPublic,
    SignedEmergency,
    SignedEmergencyCancel,
    SignedEmergencyRelease,
)
from ..schemas.page import Page
from ..schemas.releases import ReleasePublic
from ..services import emergencies, releases
from ..threads import in_thread
from ..types import Limit, Offset
from .common import PROBLEM_RESPONSES
from .releases import answer_release

router = APIRouter(prefix="/v1/emergencies", tags=["emergencies"], responses=PROBLEM_RESPONSES)

Approver = Annotated[Member, Depends(require(Role.ADMIN, Role.AUDITOR))]


@router.post("", response_model=EmergencyPublic, status_code=201)
def propose(body: EmergencyCreate, approver: Approver, ledger: LedgerDep, view: ViewDep) -> EmergencyPublic:
    """Propose an emergency with an approver's signature (it counts as the first approval)."""
    return emergencies.propose(ledger, view, approver, body)


@router.post("/{emergency_id}/approve", response_model=EmergencyPublic)
def approve(
    emergency_id: str, body: SignedEmergency, approver: Approver, ledger: LedgerDep, view: ViewDep
) -> EmergencyPublic:
    """Add another approver's signature of the same Emergency message."""
    return emergencies.approve(ledger, view, emergency_id, body)


@router.post("/{emergency_id}/cancel", response_model=EmergencyPublic)
def cancel(
    emergency_id: str, body: SignedEmergencyCancel, approver: Approver, ledger: LedgerDep, view: ViewDep
) -> EmergencyPublic:
    """Relay an ADMIN's or AUDITOR's signed EmergencyCancel: the emergency ends at once (final);
    a second cancel is 409 ``emergency_cancelled``."""
    return emergencies.cancel(ledger, view, approver, emergency_id, body)


@router.get("", response_model=Page[EmergencyPublic])
def list_emergencies(
    member: CurrentMember,
    view: ViewDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[EmergencyPublic]:
    """Emergencies with their approvals and status: approvers see all, consumers those naming them."""
    return emergencies.list_emergencies(view, member, offset=offset, limit=limit)


@router.get("/{emergency_id}", response_model=EmergencyPublic)
def read(emergency_id: str, member: CurrentMember, view: ViewDep) -> EmergencyPublic:
    """One emergency with its reason text: to approvers, the consumers it lists, and every subject
    whose data it released (so that a citizen who sees an emergency release in the access log
    learns why). 404 for anyone else."""
    return emergencies.read(view, member, emergency_id)


@router.post("/{emergency_id}/releases", response_model=ReleasePublic, status_code=201)
async def release(
    request: Request,
    response: Response,
    emergency_id: str,
    body: SignedEmergencyRelease,
    consumer: ConsumerMember,
    vault: VaultDep,
) -> ReleasePublic:
    """A listed consumer's release under an active emergency (flagged in the subject's access log);
    recorded by the relayer like every release, idempotent by request id (SPEC §9.7)."""
    intent, created = await in_thread(releases.admit_emergency_release, vault, consumer, emergency_id, body)
    return await answer_release(request, response, vault, consumer, intent, created=created)
