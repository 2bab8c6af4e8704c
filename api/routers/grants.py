"""Grants: relay of subjects' signed Grant, Revoke and SetPaused messages; listings by party
(use cases in :mod:`api.services.grants`).

SPEC §9.8: ``SetPaused`` carries a ``sequence`` above the grant's ``pause_sequence`` (read it from
``GET /v1/grants/{grant_id}``); a revocation may name a grant that was signed but never recorded
(its ``grant`` message travels with the ``Revoke``), which can then never be recorded; and a
suspended subject may still revoke, pause and read its own grants.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from chain_client import Ledger
from vault import Vault

from ..calls import CallGroups
from ..deps import CurrentMember, LedgerDep, ViewDep, WithdrawingMember
from ..schemas.grants import (
    GrantDetail,
    GrantPublic,
    GrantRecordedPublic,
    SignedGrant,
    SignedPause,
    SignedRevoke,
    Status,
    TxPublic,
)
from ..schemas.page import Page
from ..services import grants
from ..services.ledger_view import LedgerView
from ..threads import in_thread
from ..types import Address, Bytes32, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/grants", tags=["grants"], responses=PROBLEM_RESPONSES)


@router.post("", response_model=GrantRecordedPublic, status_code=201)
async def record(request: Request, body: SignedGrant, member: CurrentMember) -> GrantRecordedPublic:
    """Relay a subject's signed Grant; the platform pays, the chain checks the signature and rules.

    Grants that arrive together are recorded in one ``multicall`` transaction (group commit), each
    checked on its own by the ledger; the answer comes once the block is in."""
    # the collaborators are read here rather than resolved as dependencies: fewer per request
    state = request.app.state
    groups: CallGroups = state.calls
    ledger: Ledger = state.ledger
    vault: Vault = state.vault
    return await grants.record(groups.get(), ledger, vault.store, body, relayed_by=member.address)


@router.post("/{grant_id}/revoke", response_model=TxPublic)
async def revoke(
    request: Request, grant_id: str, body: SignedRevoke, member: WithdrawingMember, ledger: LedgerDep
) -> TxPublic:
    """Relay the subject's signed Revoke (final). With ``grant`` (its terms) this also revokes a
    grant that was signed but never recorded; that grant can then never be recorded.
    Revocations share the grants' group commit (one ``multicall``, each call checked on its own)."""
    groups: CallGroups = request.app.state.calls
    return await grants.revoke(groups.get(), ledger, member, grant_id, body)


@router.post("/{grant_id}/pause", response_model=TxPublic)
async def pause(
    request: Request, grant_id: str, body: SignedPause, member: WithdrawingMember, ledger: LedgerDep
) -> TxPublic:
    """Relay the subject's signed SetPaused: pause (``paused: true``) or resume (``false``).
    A ``sequence`` not above the grant's ``pause_sequence`` is 409 ``stale_sequence``.
    Grouped with grants and revocations as :func:`revoke` is."""
    groups: CallGroups = request.app.state.calls
    return await grants.pause(groups.get(), ledger, member, grant_id, body)


@router.get("/{grant_id}", response_model=GrantDetail)
async def read(request: Request, grant_id: Bytes32, member: WithdrawingMember) -> GrantDetail:
    """One grant with its live ``status``, ``uses`` and ``pause_sequence`` (SPEC §9.8), for its
    subject, its grantee and auditors; 404 for anyone else, as for an unknown grant."""
    view: LedgerView = request.app.state.ledger_view
    # a coroutine handing the reads to api.threads (a plain def route would take anyio's dearer hop)
    return await in_thread(grants.read, view, member, grant_id)


@router.get("", response_model=Page[GrantPublic])
def list_grants(
    member: WithdrawingMember,
    view: ViewDep,
    subject: Annotated[Address | None, Query()] = None,
    grantee: Annotated[Address | None, Query()] = None,
    status: Annotated[Status | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[GrantPublic]:
    """Grants where the caller is the subject or the grantee (auditors: any), with live status."""
    return grants.list_grants(view, member, subject=subject, grantee=grantee, status=status, offset=offset, limit=limit)
