"""The data catalog: ADMIN registers resources; any member lists them."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from chain_client.ids import resource_id
from db.models import CatalogEntryRow

from ..deps import AdminMember, CurrentMember, LedgerDep, VaultDep
from ..types import Address, Limit, Offset
from .common import PROBLEM_RESPONSES, record_action

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], responses=PROBLEM_RESPONSES)

CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


class ResourceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "id_card",
                    "name": "Resident identity card",
                    "provider": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                    "sensitivity": 3,
                }
            ]
        },
    )
    code: str = Field(pattern=CODE_PATTERN, description="catalog code; its keccak256 is the resource id")
    name: str = Field(min_length=1, max_length=200)
    provider: Address
    sensitivity: int = Field(ge=1, le=4, description="1 public … 4 highly sensitive; 3-4 must be named in grants")
    self_declared: bool = Field(
        False,
        description=(
            "v1.1: whether a subject's own document of this resource may be released (only while the "
            "provider has issued none); otherwise releases deliver the provider-issued document only"
        ),
    )


class ResourcePublic(BaseModel):
    code: str
    resource: str
    name: str
    provider: str
    sensitivity: int
    self_declared: bool = False
    tx_hash: str | None = None


class ResourcePage(BaseModel):
    items: list[ResourcePublic]
    total: int
    offset: int
    limit: int


@router.post("", response_model=ResourcePublic, status_code=201)
def register(body: ResourceCreate, admin: AdminMember, ledger: LedgerDep, vault: VaultDep) -> ResourcePublic:
    """Register a data resource on chain (provider and sensitivity)."""
    receipt = ledger.register_resource(body.code, body.name, body.provider, body.sensitivity)
    rid = "0x" + resource_id(body.code).hex()
    with vault.store.session() as s:
        s.merge(
            CatalogEntryRow(
                resource_id=rid, code=body.code, self_declared=body.self_declared, updated_at=int(time.time())
            )
        )
        record_action(s, actor=admin.address, action="register_resource", target=body.code, tx_hash=receipt.tx_hash)
    return ResourcePublic(
        code=body.code,
        resource=rid,
        name=body.name,
        provider=body.provider,
        sensitivity=body.sensitivity,
        self_declared=body.self_declared,
        tx_hash=receipt.tx_hash,
    )


@router.get("", response_model=ResourcePage)
def list_catalog(
    member: CurrentMember,
    ledger: LedgerDep,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> ResourcePage:
    """Every catalog resource with its current provider and sensitivity."""
    events = ledger.events("ResourceRegistered", from_block=ledger.deployment.deploy_block)
    with vault.store.session() as s:
        declared = set(s.scalars(select(CatalogEntryRow.resource_id).where(CatalogEntryRow.self_declared)).all())
    items = []
    for event in events[offset : offset + limit]:
        current = ledger.resource(bytes(event.args.resource))
        items.append(
            ResourcePublic(
                code=event.args.code,
                resource="0x" + bytes(event.args.resource).hex(),
                name=event.args.name,
                provider=current.provider,
                sensitivity=current.sensitivity,
                self_declared="0x" + bytes(event.args.resource).hex() in declared,
            )
        )
    return ResourcePage(items=items, total=len(events), offset=offset, limit=limit)
