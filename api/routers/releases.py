"""Releases (SPEC §4, §6): a CONSUMER's signed ReleaseRequest, recorded on chain, then sealed."""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from chain_client import Member, Role
from chain_client.indexer import Indexer
from db import paging
from db.models import ReleaseLogRow
from db.release_log import LogEntry
from vault import Release, Vault
from vault.releases import Intent, RequestReused
from vault.service import refusal

from ..deps import ConsumerMember, CurrentMember, VaultDep
from ..errors import Problem
from ..schemas.page import Page
from ..services.grants import grant_terms
from ..types import Address, Bytes32, Limit, Offset, Signature, Uint256
from .common import PROBLEM_RESPONSES

router = APIRouter(tags=["releases"], responses=PROBLEM_RESPONSES)


class ReleaseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    resource: Bytes32
    requestId: Bytes32
    deadline: Uint256


class SignedRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: ReleaseMessage
    signature: Signature


class ReleasedDocument(BaseModel):
    document_id: str
    resource: str
    commitment: str
    salt: str
    issuer: str
    issued_at: int


class ReleasePublic(BaseModel):
    release_id: str
    tx_hash: str
    block_number: int
    sealed: str = Field(description="base64 of enc || ciphertext (SPEC §4)")
    document: ReleasedDocument


@router.post(
    "/v1/releases",
    response_model=ReleasePublic,
    status_code=201,
    responses={200: {"model": ReleasePublic, "description": "the same signed request again (SPEC §9.7)"}},
)
async def release(
    request: Request, response: Response, body: SignedRelease, consumer: ConsumerMember, vault: VaultDep
) -> ReleasePublic:
    """Record the release on chain (grouped with others), then deliver the document sealed to the
    caller's HPKE key. The same signed request again returns the same release (200), sealed anew."""
    m = body.message

    def admit() -> tuple[Intent, bool]:
        terms = grant_terms(vault.store, m.grantId)
        if terms is None:
            raise Problem(404, "grant_not_found", "no grant with this id was relayed through this service")
        if terms.grantee != consumer.address:
            raise Problem(403, "not_grantee", "only the grantee may request releases under this grant")
        prepared, row = vault.prepare_release(
            terms=terms,
            resource=_b32(m.resource),
            request_id=_b32(m.requestId),
            deadline=m.deadline,
            signature=_b32(body.signature),
        )
        try:
            return vault.desk.admit(prepared, document_id=row.id)
        except RequestReused as exc:
            raise Problem(409, "request_used", str(exc)) from None

    intent, created = await run_in_threadpool(admit)
    return await answer_release(request, response, vault, consumer, intent, created=created)


@router.get("/v1/releases/{release_id}", response_model=ReleasePublic)
async def read_release(
    request: Request, response: Response, release_id: Bytes32, consumer: ConsumerMember, vault: VaultDep
) -> ReleasePublic:
    """A release again (the grantee only), sealed anew: for a department whose answer was lost."""
    intent = await run_in_threadpool(vault.desk.find, release_id)
    if intent is None or intent.grantee != consumer.address:
        raise Problem(404, "release_not_found", "no release of yours with this id")
    return await answer_release(request, response, vault, consumer, intent, created=False)


async def answer_release(
    request: Request, response: Response, vault: Vault, consumer: Member, intent: Intent, *, created: bool
) -> ReleasePublic:
    """Wait for the intent's outcome; the sealed document once recorded, its refusal otherwise."""
    settings = request.app.state.settings
    if not intent.final:
        intent = await vault.desk.wait(intent.id, timeout=settings.release_timeout)
    if not intent.final:
        raise Problem(
            503,
            "release_pending",
            "the release is not recorded yet (the chain is slow or down); send the same signed request again",
        )
    if intent.status != "recorded":
        raise refusal(intent)
    done = await run_in_threadpool(vault.deliver, intent, consumer.hpke_key)
    response.status_code = 201 if created else 200
    return release_answer(done)


def _b32(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def release_answer(done: Release) -> ReleasePublic:
    """The body of a release answer (SPEC §6.1), for grant and emergency releases alike."""
    doc = done.document
    return ReleasePublic(
        release_id=done.release_id,
        tx_hash=done.tx_hash,
        block_number=done.block_number,
        sealed=base64.b64encode(done.sealed).decode(),
        document=ReleasedDocument(
            document_id=doc.document_id,
            resource=doc.resource,
            commitment=doc.commitment,
            salt=doc.salt,
            issuer=doc.issuer,
            issued_at=doc.issued_at,
        ),
    )


class AccessLogEntry(BaseModel):
    release_id: str
    kind: str = Field(description='"grant" or "emergency" (emergency releases are flagged)')
    authority: str = Field(description="grant id, or emergency id")
    purpose: str | None = Field(
        None, description="purpose id of the grant, from the chain's GrantRecorded (null for emergency releases)"
    )
    grantee: str
    resource: str
    request_id: str
    document_id: str
    tx_hash: str
    block_number: int
    released_at: int


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
        raise Problem(403, "forbidden", "only the subject and auditors see a subject's access log")
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
