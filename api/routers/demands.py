"""Data demands (SPEC §9.5, 供需对接台账): a consumer asks a provider for a data service not yet in
the catalog; the provider confirms or refuses within 5 PRC working days and publishes within 10.

``GET /v1/demands`` is the ledger (台账); ``?format=csv`` gives it as CSV for the bureau, with
times in Asia/Shanghai.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, update

from chain_client import Member, Role
from chain_client.ids import resource_id
from db import paging
from db.events import emit_demand
from db.models import DemandRow

from ..deps import ConsumerMember, CurrentMember, LedgerDep, VaultDep
from ..errors import Problem
from ..schemas.catalog import CODE_PATTERN
from ..schemas.page import Page
from ..types import Address, Limit, Offset
from ..workdays import due_at, shanghai_iso
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/demands", tags=["data demands"], responses=PROBLEM_RESPONSES)

#: The plan: confirm within 5 working days, publish within 10 (SPEC §9.5).
CONFIRM_DAYS = 5
PUBLISH_DAYS = 10


class DemandCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "title": "Real-time water meter readings",
                    "description": "Monthly readings per household for the subsidy check.",
                    "resource_code": "water_meter_readings",
                }
            ]
        },
    )
    provider: Address
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    resource_code: str | None = Field(None, pattern=CODE_PATTERN, description="the code the consumer suggests")


class Refusal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class Publication(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE_PATTERN, description="a catalog entry the provider registered")


class DemandPublic(BaseModel):
    demand_id: str
    consumer: str
    provider: str
    title: str
    description: str
    resource_code: str | None
    status: Literal["open", "confirmed", "refused", "published"]
    created_at: int
    confirm_by: int = Field(description="24:00 Asia/Shanghai of the 5th working day after the request")
    publish_by: int = Field(description="24:00 Asia/Shanghai of the 10th working day after the request")
    confirmed_at: int | None
    refused_at: int | None
    reason: str | None
    published_at: int | None
    published_code: str | None
    overdue: bool = Field(description="the step now due (confirm, then publish) is past its deadline")
    late: bool = Field(description="a step was taken after its deadline")


def _public(row: DemandRow, now: int) -> DemandPublic:
    overdue = (row.status == "open" and now >= row.confirm_by) or (
        row.status in ("open", "confirmed") and now >= row.publish_by
    )
    answered = row.refused_at if row.status == "refused" else row.confirmed_at
    late = (answered is not None and answered >= row.confirm_by) or (
        row.published_at is not None and row.published_at >= row.publish_by
    )
    return DemandPublic(
        demand_id=row.id,
        consumer=row.consumer,
        provider=row.provider,
        title=row.title,
        description=row.description,
        resource_code=row.resource_code,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        confirm_by=row.confirm_by,
        publish_by=row.publish_by,
        confirmed_at=row.confirmed_at,
        refused_at=row.refused_at,
        reason=row.reason,
        published_at=row.published_at,
        published_code=row.published_code,
        overdue=overdue,
        late=late,
    )


def _sees_all(member: Member) -> bool:
    return Role.ADMIN in member.roles or Role.AUDITOR in member.roles


def _visible(vault: VaultDep, demand_id: str, member: Member) -> DemandRow:
    with vault.store.session() as s:
        row = s.get(DemandRow, demand_id.lower())
    if row is None or (member.address not in (row.consumer, row.provider) and not _sees_all(member)):
        raise Problem(404, "demand_not_found", "no such data demand")
    return row


def _provider_step(vault: VaultDep, demand_id: str, member: Member, allowed: tuple[str, ...]) -> DemandRow:
    row = _visible(vault, demand_id, member)
    if member.address != row.provider:
        raise Problem(403, "not_provider", "only the provider the demand is addressed to answers it")
    if row.status not in allowed:
        raise Problem(409, "demand_closed", f"this demand is {row.status}")
    return row


def _apply(vault: VaultDep, row: DemandRow, allowed: tuple[str, ...], **values: object) -> DemandPublic:
    with vault.store.session() as s:
        done = s.execute(
            update(DemandRow).where(DemandRow.id == row.id, DemandRow.status.in_(allowed)).values(**values)
        )
        if not getattr(done, "rowcount", 0):
            raise Problem(409, "demand_closed", "this demand changed meanwhile")
        updated = s.get(DemandRow, row.id)
        assert updated is not None
        emit_demand(s, updated, str(values["status"]))
        return _public(updated, int(time.time()))


@router.post("", response_model=DemandPublic, status_code=201)
def create(body: DemandCreate, consumer: ConsumerMember, ledger: LedgerDep, vault: VaultDep) -> DemandPublic:
    """A CONSUMER asks a PROVIDER for a data service; the 5- and 10-working-day clocks start."""
    if not ledger.is_active(body.provider, Role.PROVIDER):
        raise Problem(404, "provider_not_found", "no active provider with this address")
    now = int(time.time())
    row = DemandRow(
        id="0x" + secrets.token_hex(32),
        consumer=consumer.address,
        provider=body.provider,
        title=body.title,
        description=body.description,
        resource_code=body.resource_code,
        status="open",
        created_at=now,
        confirm_by=due_at(now, CONFIRM_DAYS),
        publish_by=due_at(now, PUBLISH_DAYS),
    )
    with vault.store.session() as s:
        s.add(row)
        emit_demand(s, row, "created")
    return _public(row, now)


CSV_COLUMNS = (
    "demand_id",
    "consumer",
    "provider",
    "title",
    "resource_code",
    "status",
    "created_at",
    "confirm_by",
    "publish_by",
    "confirmed_at",
    "refused_at",
    "reason",
    "published_at",
    "published_code",
    "overdue",
    "late",
)
_TIMES = {"created_at", "confirm_by", "publish_by", "confirmed_at", "refused_at", "published_at"}


def _csv(items: list[DemandPublic]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in items:
        data = item.model_dump()
        writer.writerow([shanghai_iso(data[c]) if c in _TIMES else data[c] for c in CSV_COLUMNS])
    return out.getvalue()


@router.get(
    "",
    response_model=Page[DemandPublic],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def list_demands(
    member: CurrentMember,
    vault: VaultDep,
    status: Annotated[Literal["open", "confirmed", "refused", "published"] | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv: the ledger for the bureau")] = "json",
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[DemandPublic] | Response:
    """The ledger: a consumer's own demands, those addressed to a provider, all for ADMINs and AUDITORs."""
    where = []
    if not _sees_all(member):
        where.append(or_(DemandRow.consumer == member.address, DemandRow.provider == member.address))
    if status:
        where.append(DemandRow.status == status)
    now = int(time.time())
    with vault.store.session() as s:
        rows, total = paging.page(
            s, DemandRow, where=where, order_by=(DemandRow.created_at.desc(), DemandRow.id), offset=offset, limit=limit
        )
    items = [_public(r, now) for r in rows]
    if format == "csv":
        return Response(
            _csv(items).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="demands.csv"'},
        )
    return Page[DemandPublic](items=items, offset=offset, limit=limit, total=total)


@router.get("/{demand_id}", response_model=DemandPublic)
def read(demand_id: str, member: CurrentMember, vault: VaultDep) -> DemandPublic:
    """One demand, to its consumer, its provider, ADMINs and AUDITORs."""
    return _public(_visible(vault, demand_id, member), int(time.time()))


@router.post("/{demand_id}/confirm", response_model=DemandPublic)
def confirm(demand_id: str, member: CurrentMember, vault: VaultDep) -> DemandPublic:
    """The provider confirms an open demand."""
    row = _provider_step(vault, demand_id, member, ("open",))
    return _apply(vault, row, ("open",), status="confirmed", confirmed_at=int(time.time()))


@router.post("/{demand_id}/refuse", response_model=DemandPublic)
def refuse(demand_id: str, body: Refusal, member: CurrentMember, vault: VaultDep) -> DemandPublic:
    """The provider refuses an open or confirmed demand, with a reason shown to the consumer."""
    row = _provider_step(vault, demand_id, member, ("open", "confirmed"))
    return _apply(vault, row, ("open", "confirmed"), status="refused", refused_at=int(time.time()), reason=body.reason)


@router.post("/{demand_id}/publish", response_model=DemandPublic)
def publish(
    demand_id: str, body: Publication, member: CurrentMember, ledger: LedgerDep, vault: VaultDep
) -> DemandPublic:
    """The provider names the catalog entry it registered for the demand (confirming it if it was open)."""
    row = _provider_step(vault, demand_id, member, ("open", "confirmed"))
    entry = ledger.resource(resource_id(body.code))
    if not entry.exists:
        raise Problem(404, "resource_not_found", f"{body.code!r} is not in the catalog")
    if entry.provider.lower() != member.address.lower():
        raise Problem(422, "not_your_resource", f"{body.code!r} is registered to another provider")
    now = int(time.time())
    return _apply(
        vault,
        row,
        ("open", "confirmed"),
        status="published",
        published_at=now,
        published_code=body.code,
        confirmed_at=row.confirmed_at or now,
    )
