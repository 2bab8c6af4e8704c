"""Notifications (SPEC §9.1): the event feed and webhooks.

``GET /v1/events?after=&offset=&limit=``: the caller's own events with ``sequence > after``, in
``sequence`` order. ``after`` is the cursor (the last sequence the receiver has processed),
``offset`` pages within what follows it, and ``total`` counts every event after ``after``; a
receiver catching up keeps ``offset=0`` and moves ``after`` to the last sequence it got.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from sqlalchemy import func, select

from db import events as member_events
from db.models import WebhookAttempt, WebhookDelivery, WebhookRow

from ..deps import CurrentMember, SettingsDep, VaultDep
from ..errors import Problem
from ..notifications import UnsafeUrl, check_url
from ..types import Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(tags=["notifications"], responses=PROBLEM_RESPONSES)

#: Webhooks one member may keep.
MAX_WEBHOOKS = 20
_GROUPS = sorted({t.split(".", 1)[0] + ".*" for t in member_events.EVENT_TYPES})
_SUBSCRIBABLE = frozenset(
    (*member_events.EVENT_TYPES, *(t + member_events.RETRACTED for t in member_events.EVENT_TYPES), *_GROUPS)
)


def only_params(*names: str) -> Any:
    """A dependency refusing query parameters other than ``names`` (422 ``invalid_input``): a
    misspelt ``afer=`` must not silently read the feed from the start."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            raise Problem(422, "invalid_input", f"unknown query parameters: {', '.join(unknown)}")

    return Depends(check)


#: An event type, a group (``grant.*``) or a retraction a webhook may subscribe to.
SubscribableType = Annotated[
    str, WithJsonSchema({"type": "string", "enum": sorted(_SUBSCRIBABLE), "examples": ["grant.revoked"]})
]


class EventPublic(BaseModel):
    id: str = Field(description="unique; a receiver de-duplicates by it (the webhook-id header)")
    type: str = Field(examples=["grant.revoked"])
    sequence: int = Field(description="strictly increasing per receiving member, without gaps")
    occurred_at: int = Field(description="Unix seconds (the block's time for chain events)")
    block_number: int | None = Field(description="null when off chain")
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventPublic]
    offset: int
    limit: int
    total: int = Field(description="events after `after`")


@router.get("/v1/events", response_model=EventPage, dependencies=[only_params("after", "offset", "limit")])
def list_events(
    member: CurrentMember,
    vault: VaultDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="the last sequence already processed")] = 0,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> EventPage:
    """The caller's own events after ``after`` in ``sequence`` order (the durable source of truth)."""
    with vault.store.session() as s:
        rows, total = member_events.events_after(s, member.address, after, offset, limit)
        items = [EventPublic(**member_events.public(r)) for r in rows]
    return EventPage(items=items, offset=offset, limit=limit, total=total)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://dept.example.cn/qcl/events", "types": ["grant.revoked"]}]},
    )
    url: str = Field(max_length=2000, description="http(s) URL; production refuses non-public addresses")
    types: list[SubscribableType] = Field(
        default_factory=list,
        max_length=64,
        description="event types (e.g. grant.revoked), groups (grant.*); empty = every type",
    )

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - _SUBSCRIBABLE)
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return sorted(set(value))


class WebhookPublic(BaseModel):
    webhook_id: str
    url: str
    types: list[str]
    created_at: int


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="whsec_… (Standard Webhooks); shown once, verifies webhook-signature")


class WebhookPage(BaseModel):
    items: list[WebhookPublic]
    offset: int
    limit: int
    total: int


class AttemptPublic(BaseModel):
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryPublic(BaseModel):
    delivery_id: int
    event_id: str
    sequence: int
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: float | None = Field(description="when pending")
    delivered_at: float | None
    last_status: int | None
    last_error: str | None
    attempt_log: list[AttemptPublic] = Field(description="the latest attempts, newest first (at most 20)")


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    offset: int
    limit: int
    total: int


def _hook_public(row: WebhookRow) -> WebhookPublic:
    return WebhookPublic(webhook_id=row.id, url=row.url, types=json.loads(row.types), created_at=row.created_at)


def _own(vault: VaultDep, webhook_id: str, member: CurrentMember) -> WebhookRow:
    with vault.store.session() as s:
        row = s.get(WebhookRow, webhook_id)
    if row is None or row.deleted_at is not None or row.owner != member.address:
        raise Problem(404, "webhook_not_found", "no such webhook")
    return row


@router.post("/v1/webhooks", response_model=WebhookCreated, status_code=201)
def create_webhook(
    body: WebhookCreate, member: CurrentMember, vault: VaultDep, settings: SettingsDep
) -> WebhookCreated:
    """Deliver the caller's future events of ``types`` to ``url`` (Standard Webhooks, signed)."""
    try:
        url = check_url(body.url, allow_private=settings.webhooks_reach_private)
    except UnsafeUrl as exc:
        raise Problem(422, "webhook_url_refused", str(exc)) from None
    row = WebhookRow(
        id="wh_" + secrets.token_hex(12),
        owner=member.address,
        url=url,
        types=json.dumps(body.types),
        secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        created_at=int(time.time()),
    )
    with vault.store.session() as s:
        count = s.scalar(
            select(func.count())
            .select_from(WebhookRow)
            .where(WebhookRow.owner == member.address, WebhookRow.deleted_at.is_(None))
        )
        if int(count or 0) >= MAX_WEBHOOKS:
            raise Problem(409, "too_many_webhooks", f"at most {MAX_WEBHOOKS} webhooks per member")
        s.add(row)
    return WebhookCreated(**_hook_public(row).model_dump(), secret=row.secret)


@router.get("/v1/webhooks", response_model=WebhookPage, dependencies=[only_params("offset", "limit")])
def list_webhooks(
    member: CurrentMember,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> WebhookPage:
    """The caller's webhooks (the secret is shown only when one is created)."""
    where = (WebhookRow.owner == member.address, WebhookRow.deleted_at.is_(None))
    with vault.store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(WebhookRow).where(*where)) or 0)
        rows = s.scalars(
            select(WebhookRow).where(*where).order_by(WebhookRow.created_at, WebhookRow.id).offset(offset).limit(limit)
        ).all()
    return WebhookPage(items=[_hook_public(r) for r in rows], offset=offset, limit=limit, total=total)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, response_class=Response)
def delete_webhook(webhook_id: str, member: CurrentMember, vault: VaultDep) -> Response:
    """Stop a webhook; its pending deliveries are cancelled (its history stays readable to nobody)."""
    row = _own(vault, webhook_id, member)
    with vault.store.session() as s:
        s.execute(
            WebhookRow.__table__.update()  # type: ignore[attr-defined]
            .where(WebhookRow.id == row.id)
            .values(deleted_at=int(time.time()))
        )
        s.execute(
            WebhookDelivery.__table__.update()  # type: ignore[attr-defined]
            .where(WebhookDelivery.webhook_id == row.id, WebhookDelivery.status == "pending")
            .values(status="cancelled")
        )
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    dependencies=[only_params("status", "offset", "limit")],
)
def list_deliveries(
    webhook_id: str,
    member: CurrentMember,
    vault: VaultDep,
    status: Annotated[Literal["pending", "delivered", "failed", "cancelled"] | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> DeliveryPage:
    """The webhook's deliveries in ``sequence`` order with their attempts (the owner only; others 404)."""
    row = _own(vault, webhook_id, member)
    where = [WebhookDelivery.webhook_id == row.id]
    if status:
        where.append(WebhookDelivery.status == status)
    with vault.store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0)
        deliveries = s.scalars(
            select(WebhookDelivery).where(*where).order_by(WebhookDelivery.sequence).offset(offset).limit(limit)
        ).all()
        items = []
        for d in deliveries:
            attempts = s.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == d.id)
                .order_by(WebhookAttempt.at.desc(), WebhookAttempt.id.desc())
                .limit(20)
            ).all()
            items.append(
                DeliveryPublic(
                    delivery_id=d.id,
                    event_id=d.event_id,
                    sequence=d.sequence,
                    status=d.status,  # type: ignore[arg-type]
                    attempts=d.attempts,
                    next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                    delivered_at=d.delivered_at,
                    last_status=d.last_status,
                    last_error=d.last_error,
                    attempt_log=[
                        AttemptPublic(at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms)
                        for a in attempts
                    ],
                )
            )
    return DeliveryPage(items=items, offset=offset, limit=limit, total=total)
