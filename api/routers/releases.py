"""Releases (SPEC §4, §6): a CONSUMER's signed ReleaseRequest, recorded on chain, then sealed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from chain_client import Member, Role
from chain_client.indexer import Indexer
from db import paging
from db.models import ReleaseLogRow
from db.release_log import LogEntry
from vault import Vault
from vault.releases import Intent

from ..deps import ConsumerMember, CurrentMember, VaultDep
from ..schemas.page import Page
from ..schemas.releases import AccessLogEntry, ReleasePublic, SignedRelease
from ..services import releases
from ..services.errors import Forbidden
from ..threads import in_thread
from ..types import Address, Bytes32, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(tags=["releases"], responses=PROBLEM_RESPONSES)


@router.post(
    "/v1/releases",
    response_model=ReleasePublic,
    status_code=201,
    responses={200: {"model": ReleasePublic, "description": "the same signed request again (SPEC §9.7)"}},
)
async def release(request: Request, response: Response, body: SignedRelease, consumer: ConsumerMember) -> ReleasePublic:
    """Record the release on chain (grouped with others), then deliver the document sealed to the
    caller's HPKE key. The same signed request again returns the same release (200), sealed anew."""
    vault: Vault = request.app.state.vault  # read here, not as a dependency: one fewer per release
    intent, created = await releases.admit_grant_release_async(vault, consumer, body)
    return await answer_release(request, response, vault, consumer, intent, created=created)


@router.get("/v1/releases/{release_id}", response_model=ReleasePublic)
async def read_release(
    request: Request, response: Response, release_id: Bytes32, consumer: ConsumerMember
) -> ReleasePublic:
    """A release again (the grantee only), sealed anew: for a department whose answer was lost."""
    vault: Vault = request.app.state.vault
    intent, done = await in_thread(releases.find_delivered, vault, consumer, release_id)
    if done is not None:
        response.status_code = 200
        return releases.release_answer(done)
    return await answer_release(request, response, vault, consumer, intent, created=False)


async def answer_release(
    request: Request, response: Response, vault: Vault, consumer: Member, intent: Intent, *, created: bool
) -> ReleasePublic:
    """The release answer once its block is in: 201 for a new request, 200 for one sent again."""
    answer = await releases.answer(vault, consumer, intent, timeout=request.app.state.settings.release_timeout)
    response.status_code = 201 if created else 200
    return answer


@router.get("/v1/subjects/{address}/access-log", response_model=Page[AccessLogEntry])
def access_log(
    request: Request,
    address: Address,
    member: CurrentMember,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[AccessLogEntry]:
    """Who used the subject's data: every release, including emergency ones (subject or auditors)."""
    if address != member.address and Role.AUDITOR not in member.roles:
        raise Forbidden("only the subject and auditors see a subject's access log")
    with vault.store.session() as s:
        rows, total = paging.page(
            s,
            ReleaseLogRow,
            where=(ReleaseLogRow.subject == address,),
            order_by=(ReleaseLogRow.idx,),
            offset=offset,
            limit=limit,
        )
    entries = [asdict(LogEntry.parse(bytes(row.entry))) for row in rows]
    purposes = _grant_purposes(request, {e["authority"] for e in entries if e["kind"] == "grant"})
    items = []
    for entry in entries:
        fields = {k: v for k, v in entry.items() if k in AccessLogEntry.model_fields}
        items.append(AccessLogEntry(**fields, purpose=purposes.get(entry["authority"])))
    return Page[AccessLogEntry](items=items, offset=offset, limit=limit, total=total)


def _grant_purposes(request: Request, grant_ids: set[str]) -> dict[str, str]:
    """Purpose id of each grant, from the index (brought up to date when one is missing)."""
    indexer: Indexer | None = request.app.state.indexer
    if indexer is None or not grant_ids:
        return {}

    def lookup() -> dict[str, str]:
        found = {}
        for grant_id in grant_ids:
            for event in indexer.events(event="GrantRecorded", grant_id=grant_id, limit=1):
                found[grant_id] = str(event.args["purpose"])
        return found

    found = lookup()
    if len(found) < len(grant_ids):  # a grant newer than the index's last poll
        indexer.sync()
        found = lookup()
    return found
