"""Emergencies (the "green channel"): ADMIN and AUDITOR approvers sign one scope; listed consumers
then obtain listed resources of any subject, each release flagged in the access log.

SPEC §9.8: the on-chain ``reason`` is ``keccak256(salt || utf8(text))`` with a random 32-byte salt
kept off chain with the text; any ADMIN or AUDITOR ends an emergency at once with a signed
``EmergencyCancel``; whether one is ``active`` is the ledger's answer at the head (approvers still
active, not cancelled, inside its window) — computed from the indexed events
(:mod:`api.services.ledger_view`), never asked of the chain per row.
"""

from __future__ import annotations

import time

from eth_utils import keccak
from sqlalchemy import select

from chain_client import Ledger, Member, Role
from db import paging
from db.models import EmergencyRecord, ReleaseLogRow
from db.release_log import LogEntry
from db.store import Store

from ..schemas.emergencies import (
    EmergencyCreate,
    EmergencyPublic,
    SignedEmergency,
    SignedEmergencyCancel,
    StoredScope,
)
from ..schemas.page import Page
from .actions import record_action
from .errors import EmergencyNotVisible, InvalidInput, ReasonMismatch, RoleRequired
from .ledger_view import Head, LedgerView


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def scope_of(record: EmergencyRecord) -> StoredScope:
    return StoredScope.model_validate_json(record.scope)


def is_approver(member: Member) -> bool:
    return Role.ADMIN in member.roles or Role.AUDITOR in member.roles


def record_of(store: Store, emergency_id: str) -> EmergencyRecord:
    with store.session() as s:
        record = s.get(EmergencyRecord, emergency_id.lower())
    if record is None:
        raise EmergencyNotVisible("no such emergency")
    return record


def _check_path(record: EmergencyRecord, emergency_id: str) -> None:
    if emergency_id != record.emergency_id:
        raise InvalidInput("the emergencyId in the message differs from the one in the path")


def propose(ledger: Ledger, view: LedgerView, approver: Member, body: EmergencyCreate) -> EmergencyPublic:
    """Propose an emergency with an approver's signature (it counts as the first approval)."""
    if "0x" + keccak(_hex(body.reason_salt) + body.reason_text.encode()).hex() != body.message.reason:
        raise ReasonMismatch("reason must be keccak256(reason_salt || utf8(reason_text))")
    receipt = ledger.propose_emergency(body.message.scope(), _hex(body.signature))
    stored = StoredScope(**body.message.model_dump(), reasonSalt=body.reason_salt)
    record = EmergencyRecord(
        emergency_id=body.message.emergencyId,
        scope=stored.model_dump_json(),
        reason_text=body.reason_text,
        proposer=approver.address,
        created_at=int(time.time()),
        tx_hash=receipt.tx_hash,
    )
    with view.store.session() as s:
        s.merge(record)
    return public(view, [record], tx_hash=receipt.tx_hash)[0]


def approve(ledger: Ledger, view: LedgerView, emergency_id: str, body: SignedEmergency) -> EmergencyPublic:
    """Add another approver's signature of the same Emergency message."""
    record = record_of(view.store, emergency_id)
    _check_path(record, body.message.emergencyId)
    receipt = ledger.approve_emergency(body.message.scope(), _hex(body.signature))
    return public(view, [record], tx_hash=receipt.tx_hash)[0]


def cancel(
    ledger: Ledger, view: LedgerView, approver: Member, emergency_id: str, body: SignedEmergencyCancel
) -> EmergencyPublic:
    """Relay a signed EmergencyCancel: the emergency ends at once (final)."""
    record = record_of(view.store, emergency_id)
    _check_path(record, body.message.emergencyId)
    receipt = ledger.cancel_emergency(_hex(record.emergency_id), body.message.deadline, _hex(body.signature))
    with view.store.session() as s:
        record_action(
            s, actor=approver.address, action="cancel_emergency", target=record.emergency_id, tx_hash=receipt.tx_hash
        )
    return public(view, [record], tx_hash=receipt.tx_hash)[0]


def list_emergencies(view: LedgerView, member: Member, *, offset: int, limit: int) -> Page[EmergencyPublic]:
    """Emergencies, newest first, with their approvals and status: approvers see all, consumers
    those naming them (filtered and paged in SQL)."""
    approver = is_approver(member)
    if not approver and Role.CONSUMER not in member.roles:
        raise RoleRequired("this needs the ADMIN, AUDITOR or CONSUMER role")
    # the stored scope is JSON; a quoted 42-character address can only match one of its consumers
    mine = EmergencyRecord.scope.contains(f'"{member.address}"')
    with view.store.session() as s:
        records, total = paging.page(
            s,
            EmergencyRecord,
            where=() if approver else (mine,),
            order_by=(EmergencyRecord.created_at.desc(), EmergencyRecord.emergency_id),
            offset=offset,
            limit=limit,
        )
    return Page[EmergencyPublic](items=public(view, records), offset=offset, limit=limit, total=total)


def read(view: LedgerView, member: Member, emergency_id: str) -> EmergencyPublic:
    """One emergency with its reason text: to approvers, the consumers it lists, and every subject
    whose data it released. :class:`EmergencyNotVisible` for anyone else."""
    record = record_of(view.store, emergency_id)
    listed = member.address in scope_of(record).consumers
    if not (is_approver(member) or listed or _released_data_of(view.store, member.address, record.emergency_id)):
        raise EmergencyNotVisible("no such emergency")
    return public(view, [record])[0]


def _released_data_of(store: Store, subject: str, emergency_id: str) -> bool:
    """Whether the release log holds a release of ``subject``'s data under ``emergency_id``."""
    with store.session() as s:
        entries = s.scalars(select(ReleaseLogRow.entry).where(ReleaseLogRow.subject == subject)).all()
    for raw in entries:
        entry = LogEntry.parse(raw)
        if entry.kind == "emergency" and entry.authority.lower() == emergency_id:
            return True
    return False


def public(
    view: LedgerView, records: list[EmergencyRecord], *, tx_hash: str | None = None, head: Head | None = None
) -> list[EmergencyPublic]:
    """The records with their state at the head (one read of the head for all of them)."""
    if not records:
        return []
    states = view.emergencies(head or view.head(), [r.emergency_id for r in records])
    out = []
    for record in records:
        message, state = scope_of(record), states[record.emergency_id]
        out.append(
            EmergencyPublic(
                emergency_id=record.emergency_id,
                resources=message.resources,
                consumers=message.consumers,
                validFrom=message.validFrom,
                validUntil=message.validUntil,
                reason=message.reason,
                reason_text=record.reason_text,
                reason_salt=message.reasonSalt,
                proposer=record.proposer,
                approvals=state.approvals,
                approvers=state.approvers,
                cancelled=state.cancelled,
                activated_at=state.activated_at,
                active=state.active,
                tx_hash=tx_hash,
            )
        )
    return out
