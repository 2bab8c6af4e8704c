"""Grants: relaying a subject's signed Grant, Revoke and SetPaused; reading grants with their state.

SPEC §9.8: ``SetPaused`` carries a ``sequence`` above the grant's ``pause_sequence``; a revocation
may name a grant that was signed but never recorded (its ``grant`` message travels with the
``Revoke``), which can then never be recorded; a suspended subject may still revoke, pause and
read its own grants.

The terms of the grants this platform relayed are kept in the ``grants`` table (their id is their
digest, so they cannot differ from the chain's); their state — uses, pause, revocation, status — is
read from the indexed chain events at the chain's head (:mod:`api.services.ledger_view`), never
per row from the chain.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from chain_client import Ledger, Member, Role, eip712
from chain_client.ledger import GrantRecorded
from chain_client.relayer.group import CallGroup
from chain_client.types import GrantTerms
from db import ledger_state
from db.batch import looks_up, lookup, remember
from db.models import GrantRecord
from db.store import Store

from ..schemas.grants import (
    GrantDetail,
    GrantMessage,
    GrantPublic,
    GrantRecordedPublic,
    SignedGrant,
    SignedPause,
    SignedRevoke,
    TxPublic,
)
from ..schemas.page import Page
from .errors import Forbidden, GrantNotVisible, InvalidInput, MemberSuspended
from .ledger_view import LedgerView


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


# ---- writes -------------------------------------------------------------------------------------


async def record(
    group: CallGroup, ledger: Ledger, store: Store, body: SignedGrant, *, relayed_by: str
) -> GrantRecordedPublic:
    """Record a signed Grant through the process's group commit (one ``multicall`` for the grants
    that arrive together, each checked on its own); returns once its block is in."""
    terms = body.message.terms()
    data = ledger.calldata("recordGrant", terms.as_tuple(), _hex(body.signature))
    receipt = await asyncio.wrap_future(group.submit(data))
    grant_id = "0x" + eip712.grant_digest(ledger.domain(), terms.message()).hex()
    write = _terms_writer(body.message, grant_id, receipt.tx_hash, receipt.block_number, relayed_by=relayed_by)
    await asyncio.wrap_future(store.writer.submit(write))  # written with the others that arrive together
    return GrantRecordedPublic(grant_id=grant_id, tx_hash=receipt.tx_hash, block_number=receipt.block_number)


def relay_grant(ledger: Ledger, store: Store, body: SignedGrant, *, relayed_by: str) -> GrantRecorded:
    """Record a subject's signed Grant on chain (its own transaction) and keep its terms."""
    recorded = ledger.record_grant(body.message.terms(), _hex(body.signature))
    keep_terms(
        store,
        body.message,
        "0x" + recorded.grant_id.hex(),
        recorded.receipt.tx_hash,
        recorded.receipt.block_number,
        relayed_by=relayed_by,
    )
    return recorded


def keep_terms(
    store: Store, message: GrantMessage, grant_id: str, tx_hash: str, block_number: int, *, relayed_by: str
) -> None:
    """Keep the terms of a recorded grant (releases under it name only its id)."""
    store.writer.run(_terms_writer(message, grant_id, tx_hash, block_number, relayed_by=relayed_by))


def _terms_writer(
    message: GrantMessage, grant_id: str, tx_hash: str, block_number: int, *, relayed_by: str
) -> Callable[[Session], None]:
    """The write keeping a grant's terms, for the database's group commit (:mod:`db.batch`)."""
    terms_json = message.model_dump_json()

    def write(s: Session) -> None:
        existing = lookup(s, GrantRecord, grant_id)
        record = GrantRecord(
            grant_id=grant_id,
            subject=message.subject,
            grantee=message.grantee,
            terms=terms_json,
            tx_hash=tx_hash,
            block_number=block_number,
            relayed_by=relayed_by,
            created_at=int(time.time()),
            valid_from=message.validFrom,
            valid_until=message.validUntil,
            max_uses=message.maxUses,
        )
        if existing is None:
            s.add(record)
            remember(s, GrantRecord, grant_id, record)
        else:
            s.merge(record)  # the same grant relayed again: its row in the session, no query

    return looks_up(write, GrantRecord, grant_id)


def _path_id(grant_id: str, body_id: str) -> bytes:
    if grant_id.lower() != body_id:
        raise InvalidInput("the grantId in the message differs from the one in the path")
    return _hex(body_id)


async def _own_only_while_suspended(
    ledger: Ledger, member: Member, grant_id: bytes, subject: str | None = None
) -> None:
    """A suspended subject relays only its own withdrawals (SPEC §9.8); others are unaffected."""
    if not member.suspended:
        return
    if subject is None:
        subject = (await run_in_threadpool(ledger.grant_state, grant_id)).subject
    if subject != member.address:
        raise MemberSuspended("a suspended member may only revoke or pause its own grants")


async def revoke(group: CallGroup, ledger: Ledger, member: Member, grant_id: str, body: SignedRevoke) -> TxPublic:
    """Relay a signed Revoke (final); with ``body.grant`` also of a grant never recorded. Grouped
    with the grants and pauses that arrive together (one ``multicall``, each call on its own)."""
    gid = _path_id(grant_id, body.message.grantId)
    m, signature = body.message, _hex(body.signature)
    if body.grant is not None:
        terms = body.grant.terms()
        if ledger.hash_grant(terms) != gid:
            raise InvalidInput("the grant message does not hash to the grantId")
        await _own_only_while_suspended(ledger, member, gid, terms.subject)
        data = ledger.calldata("revokeUnrecorded", terms.as_tuple(), m.nonce, m.deadline, signature)
    else:
        await _own_only_while_suspended(ledger, member, gid)
        data = ledger.calldata("revoke", gid, m.nonce, m.deadline, signature)
    return await _grouped(group, data)


async def pause(group: CallGroup, ledger: Ledger, member: Member, grant_id: str, body: SignedPause) -> TxPublic:
    """Relay a signed SetPaused (pause or resume), grouped as :func:`revoke` is."""
    gid = _path_id(grant_id, body.message.grantId)
    await _own_only_while_suspended(ledger, member, gid)
    m = body.message
    data = ledger.calldata("setPaused", gid, m.paused, m.sequence, m.nonce, m.deadline, _hex(body.signature))
    return await _grouped(group, data)


async def _grouped(group: CallGroup, data: bytes) -> TxPublic:
    receipt = await asyncio.wrap_future(group.submit(data))
    return TxPublic(tx_hash=receipt.tx_hash, block_number=receipt.block_number)


# ---- reads --------------------------------------------------------------------------------------


#: Terms of the grants relayed here, per database: a grant's terms never change (its id is their
#: EIP-712 digest), so the release path reads each from the database once. Bounded.
_TERMS: weakref.WeakKeyDictionary[Store, dict[str, GrantTerms]] = weakref.WeakKeyDictionary()
TERMS_CACHED = 50_000


def grant_terms(store: Store, grant_id: str) -> GrantTerms | None:
    """The terms of a grant relayed here (None if unknown)."""
    grant_id = grant_id.lower()
    cache = _TERMS.setdefault(store, {})
    terms = cache.get(grant_id)
    if terms is not None:
        return terms
    with store.session() as s:
        row = s.get(GrantRecord, grant_id)
    if row is None:
        return None
    terms = GrantMessage.model_validate_json(row.terms).terms()
    if len(cache) >= TERMS_CACHED:
        cache.clear()
    cache[grant_id] = terms
    return terms


def _sees_all(member: Member) -> bool:
    return Role.AUDITOR in member.roles and not member.suspended


def read(view: LedgerView, member: Member, grant_id: str) -> GrantDetail:
    """One grant with its state at the head, for its subject, its grantee (not while suspended) and
    auditors; :class:`GrantNotVisible` for anyone else, as for an unknown grant."""
    with view.store.session() as s:
        row = s.get(GrantRecord, grant_id)
    party = row is not None and member.address in (row.subject, row.grantee if not member.suspended else None)
    if row is None or not (_sees_all(member) or party):
        raise GrantNotVisible("no such grant, or not yours to see")
    head = view.head()
    tail = head.grant_tail()
    with view.store.session() as s:
        rows, _total = ledger_state.grant_page(
            s,
            ledger_state.GrantFilter(grant_id=row.grant_id),
            through=head.indexed_through,
            timestamp=head.timestamp,
            tail=tail,
            offset=0,
            limit=1,
        )
        sequence = ledger_state.pause_sequence(s, row.grant_id, through=head.indexed_through, tail=tail)
    state = rows[0]
    message = GrantMessage.model_validate_json(state.record.terms)
    return GrantDetail(
        **_public(state).model_dump(),
        pause_sequence=sequence,
        nonce=str(message.nonce),
        deadline=str(message.deadline),
    )


def list_grants(
    view: LedgerView,
    member: Member,
    *,
    subject: str | None,
    grantee: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> Page[GrantPublic]:
    """Grants where the caller is the subject or the grantee (auditors: any), newest first, with
    their status at the head; filtered and paged in SQL."""
    _check_scope(member, subject, grantee)
    if member.suspended:  # a suspended subject reads only the grants it gave (SPEC §9.8)
        subject, grantee = member.address, None
    party = None if subject or grantee or Role.AUDITOR in member.roles else member.address
    head = view.head()
    with view.store.session() as s:
        rows, total = ledger_state.grant_page(
            s,
            ledger_state.GrantFilter(subject=subject, grantee=grantee, party=party, status=status),
            through=head.indexed_through,
            timestamp=head.timestamp,
            tail=head.grant_tail(),
            offset=offset,
            limit=limit,
        )
    return Page[GrantPublic](items=[_public(r) for r in rows], offset=offset, limit=limit, total=total)


def _public(state: ledger_state.GrantStateRow) -> GrantPublic:
    row = state.record
    message = GrantMessage.model_validate_json(row.terms)
    return GrantPublic(
        grant_id=row.grant_id,
        subject=row.subject,
        grantee=row.grantee,
        resources=message.resources,
        purpose=message.purpose,
        validFrom=message.validFrom,
        validUntil=message.validUntil,
        maxUses=message.maxUses,
        status=state.status,
        uses=state.uses,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
    )


def _check_scope(member: Member, subject: str | None, grantee: str | None) -> None:
    if _sees_all(member):
        return
    if subject and subject != member.address and grantee != member.address:
        raise Forbidden("you may list only grants you gave or received")
    if grantee and grantee != member.address and subject != member.address:
        raise Forbidden("you may list only grants you gave or received")
