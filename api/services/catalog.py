"""The data catalog as the ledger holds it: resources in the order registered, each with its
current provider and sensitivity, read from the index plus the blocks after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db import ledger_state
from db.models import CatalogEntryRow

from ..schemas.catalog import ResourcePublic
from ..schemas.page import Page
from .ledger_view import LedgerView

_CHANGES = ("ResourceRegistered", "ResourceUpdated")


def list_resources(view: LedgerView, *, offset: int, limit: int) -> Page[ResourcePublic]:
    head = view.head()
    tail = [e.args for e in head.tail if e.event == "ResourceRegistered"]
    with view.store.session() as s:
        indexed, indexed_total = ledger_state.events_page(
            s, name="ResourceRegistered", through=head.indexed_through, offset=offset, limit=limit
        )
        start = max(0, offset - indexed_total)  # registrations past the index follow the indexed ones
        page = indexed + tail[start : start + limit - len(indexed)]
        resources = [str(a["resource"]) for a in page]
        changes = ledger_state.events_of(
            s, names=_CHANGES, column="resource", values=resources, through=head.indexed_through
        )
        declared = set(
            s.scalars(
                select(CatalogEntryRow.resource_id).where(
                    CatalogEntryRow.self_declared, CatalogEntryRow.resource_id.in_(resources)
                )
            )
        )
    current: dict[str, dict[str, Any]] = {}
    for _block, _index, _name, args, _stamp in changes:
        current[args["resource"]] = args
    for event in head.tail:
        if event.event in _CHANGES:
            current[event.args["resource"]] = event.args
    items = [
        ResourcePublic(
            code=a["code"],
            resource=a["resource"],
            name=a["name"],
            provider=current.get(a["resource"], a)["provider"],
            sensitivity=int(current.get(a["resource"], a)["sensitivity"]),
            self_declared=a["resource"] in declared,
        )
        for a in page
    ]
    return Page[ResourcePublic](items=items, offset=offset, limit=limit, total=indexed_total + len(tail))
