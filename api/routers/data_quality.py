"""The data-quality report per provider (SPEC §9.4): documents issued, corrections and their
outcomes, resolution on time, and the quality rate the plan sets at 95% or more."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from chain_client import Role
from db.models import CorrectionRow, DocumentRow

from ..deps import CurrentMember, VaultDep
from ..errors import Problem
from ..types import Address
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=PROBLEM_RESPONSES)

#: The plan's target for the quality pass rate of supplied data (质检合格率 ≥ 95%).
QUALITY_TARGET = 0.95


class DataQuality(BaseModel):
    provider: str
    period_from: int = Field(alias="from")
    period_to: int = Field(alias="to")
    documents_issued: int = Field(description="issued in the period, replacements from corrections excluded")
    corrections_opened: int
    corrected: int
    rejected: int
    open: int
    resolved_on_time: int
    on_time_rate: float | None = Field(description="on time / resolved; null when none was resolved")
    quality_rate: float | None = Field(description="1 - corrected / issued; null when nothing was issued")
    quality_target: float
    meets_target: bool | None

    model_config = {"populate_by_name": True}


@router.get("/data-quality", response_model=DataQuality, response_model_by_alias=True)
def data_quality(
    member: CurrentMember,
    vault: VaultDep,
    provider: Annotated[Address | None, Query(description="default: the calling provider")] = None,
    from_: Annotated[int, Query(alias="from", ge=0, description="Unix seconds, inclusive")] = 0,
    to: Annotated[int | None, Query(ge=0, description="Unix seconds, exclusive; default now")] = None,
) -> DataQuality:
    """ADMINs, AUDITORs, or the provider itself: one provider's figures over ``[from, to)``."""
    sees_all = Role.ADMIN in member.roles or Role.AUDITOR in member.roles
    if provider is None:
        if Role.PROVIDER not in member.roles:
            raise Problem(422, "invalid_input", "provider: name the provider to report on")
        provider = member.address
    if provider != member.address and not sees_all:
        raise Problem(403, "role_required", "a provider sees its own report; ADMINs and AUDITORs see all")
    end = int(time.time()) + 1 if to is None else to
    if end < from_:
        raise Problem(422, "invalid_input", "to: must not be before from")
    with vault.store.session() as s:
        replacements = select(CorrectionRow.new_document_id).where(CorrectionRow.new_document_id.is_not(None))
        issued = s.scalar(
            select(func.count())
            .select_from(DocumentRow)
            .where(
                DocumentRow.issuer == provider,
                DocumentRow.subject != provider,
                DocumentRow.state != "pending",
                DocumentRow.created_at >= from_,
                DocumentRow.created_at < end,
                DocumentRow.id.not_in(replacements),
            )
        )
        rows = s.execute(
            select(CorrectionRow.status, CorrectionRow.resolved_at, CorrectionRow.due_at).where(
                CorrectionRow.issuer == provider, CorrectionRow.opened_at >= from_, CorrectionRow.opened_at < end
            )
        ).all()
    documents_issued = int(issued or 0)
    corrected = sum(1 for r in rows if r.status == "corrected")
    rejected = sum(1 for r in rows if r.status == "rejected")
    resolved = corrected + rejected
    on_time = sum(1 for r in rows if r.resolved_at is not None and r.resolved_at < r.due_at)
    quality = 1 - corrected / documents_issued if documents_issued else None
    return DataQuality(
        provider=provider,
        period_from=from_,
        period_to=end,
        documents_issued=documents_issued,
        corrections_opened=len(rows),
        corrected=corrected,
        rejected=rejected,
        open=len(rows) - resolved,
        resolved_on_time=on_time,
        on_time_rate=on_time / resolved if resolved else None,
        quality_rate=quality,
        quality_target=QUALITY_TARGET,
        meets_target=None if quality is None else quality >= QUALITY_TARGET,
    )
