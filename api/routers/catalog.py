"""The data catalog: ADMIN registers resources; any member lists them."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from chain_client.ids import resource_id
from db.models import CatalogEntryRow

from ..deps import AdminMember, CurrentMember, LedgerDep, VaultDep, ViewDep
from ..schemas.catalog import ResourceCreate, ResourcePublic
from ..schemas.page import Page
from ..services import catalog
from ..services.actions import record_action
from ..types import Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], responses=PROBLEM_RESPONSES)


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


@router.get("", response_model=Page[ResourcePublic])
def list_catalog(
    member: CurrentMember,
    view: ViewDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[ResourcePublic]:
    """Every catalog resource, in the order registered, with its current provider and sensitivity
    (read from the index and the blocks after it: no RPC per resource)."""
    return catalog.list_resources(view, offset=offset, limit=limit)
