"""Releases: a grantee's signed request admitted (idempotent by request id, SPEC §9.7), recorded by
the relayer with others in one transaction, then the document delivered sealed to the grantee's
HPKE key (SPEC §4). Grant and emergency releases alike."""

from __future__ import annotations

import base64

from chain_client import Member
from vault import Release, Vault
from vault.releases import Intent, ReleaseRequest, RequestReused
from vault.service import refusal

from ..schemas.emergencies import SignedEmergencyRelease
from ..schemas.releases import ReleasedDocument, ReleasePublic, SignedRelease
from ..threads import in_thread
from . import emergencies
from .errors import (
    EmergencyOutOfScope,
    GrantNotVisible,
    InvalidInput,
    NotGrantee,
    ReleaseNotVisible,
    ReleasePending,
    RequestUsed,
)
from .grants import grant_terms


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _admit(vault: Vault, prepared: ReleaseRequest, document_id: str) -> tuple[Intent, bool]:
    try:
        return vault.desk.admit(prepared, document_id=document_id)
    except RequestReused as exc:
        raise RequestUsed(str(exc)) from None


def admit_grant_release(vault: Vault, consumer: Member, body: SignedRelease) -> tuple[Intent, bool]:
    """Admit a grantee's signed ReleaseRequest: (its intent, whether it is new)."""
    return _admit(vault, *prepare_grant_release(vault, consumer, body))


async def admit_grant_release_async(vault: Vault, consumer: Member, body: SignedRelease) -> tuple[Intent, bool]:
    """:func:`admit_grant_release` for the event loop: the checks on a worker thread, then the
    intent written with the others that arrive together, no thread held while it commits."""
    prepared, document_id = await in_thread(prepare_grant_release, vault, consumer, body)
    try:
        return await vault.desk.admit_async(prepared, document_id=document_id)
    except RequestReused as exc:
        raise RequestUsed(str(exc)) from None


def prepare_grant_release(vault: Vault, consumer: Member, body: SignedRelease) -> tuple[ReleaseRequest, str]:
    """The off-chain checks of a grantee's signed ReleaseRequest: the request and its document's id."""
    m = body.message
    terms = grant_terms(vault.store, m.grantId)
    if terms is None:
        raise GrantNotVisible("no grant with this id was relayed through this service")
    if terms.grantee != consumer.address:
        raise NotGrantee("only the grantee may request releases under this grant")
    prepared, document_id = vault.prepare_release(
        terms=terms,
        resource=_hex(m.resource),
        request_id=_hex(m.requestId),
        deadline=m.deadline,
        signature=_hex(body.signature),
    )
    return prepared, document_id


def admit_emergency_release(
    vault: Vault, consumer: Member, emergency_id: str, body: SignedEmergencyRelease
) -> tuple[Intent, bool]:
    """Admit a listed consumer's signed EmergencyReleaseRequest under an emergency."""
    m = body.message
    record = emergencies.record_of(vault.store, emergency_id)
    scope = emergencies.scope_of(record)
    if m.emergencyId != record.emergency_id:
        raise InvalidInput("the emergencyId in the message differs from the one in the path")
    if consumer.address not in scope.consumers:
        raise EmergencyOutOfScope("this consumer is not listed in the emergency")
    prepared, document_id = vault.prepare_emergency_release(
        scope=scope.scope(),
        consumer=consumer.address,
        subject=m.subject,
        resource=_hex(m.resource),
        request_id=_hex(m.requestId),
        deadline=m.deadline,
        signature=_hex(body.signature),
    )
    return _admit(vault, prepared, document_id)


def find(vault: Vault, consumer: Member, release_id: str) -> Intent:
    """A release of the caller's (the grantee's), to answer again."""
    intent = vault.desk.find(release_id)
    if intent is None or intent.grantee != consumer.address:
        raise ReleaseNotVisible("no release of yours with this id")
    return intent


def find_delivered(vault: Vault, consumer: Member, release_id: str) -> tuple[Intent, Release | None]:
    """:func:`find`, and the document sealed anew when the release is recorded (one trip to a
    worker thread for both)."""
    intent = find(vault, consumer, release_id)
    return intent, vault.deliver(intent, consumer.hpke_key) if intent.status == "recorded" else None


async def answer(vault: Vault, consumer: Member, intent: Intent, *, timeout: float) -> ReleasePublic:
    """Wait for the intent's outcome; the sealed document once recorded, its refusal otherwise."""
    if not intent.final:
        intent = await vault.desk.wait(intent.id, timeout=timeout, known=intent, hop=in_thread)
    if not intent.final:
        raise ReleasePending(
            "the release is not recorded yet (the chain is slow or down); send the same signed request again"
        )
    if intent.status != "recorded":
        raise refusal(intent)
    done = await in_thread(vault.deliver, intent, consumer.hpke_key)
    return release_answer(done)


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
