"""Events (SPEC §9.1): every state change a member must learn about, one row per receiving member
with a gap-free, strictly increasing per-member ``sequence``.

* :func:`emit` adds an event in the caller's transaction (the state change and its event commit
  together, or neither does) and queues its webhook deliveries. The sequence comes from the
  member's row of ``event_counters``, incremented by ``UPDATE … RETURNING`` in the same
  transaction: the row stays locked until commit, so concurrent emitters for one member queue on
  it (PostgreSQL) or on the database's write lock (SQLite) and no number is skipped or repeated.
  Recipients are handled in sorted order, so two emitters never lock two counters crosswise.
* Off-chain changes are emitted by the routers (:func:`emit_access_request`,
  :func:`emit_correction`, :func:`emit_demand`); chain-derived ones by the index store, in the
  transaction that indexes the block (:func:`on_indexed`), so a revocation mined by anyone
  notifies; a reorg that rolls blocks back emits ``<type>.retracted`` for every event those blocks
  caused (:func:`on_rolled_back`), never a silent retraction.
* Deadlines become events in the worker (:func:`fire_due`): ``grant.expired``,
  ``emergency.expired`` (clocks written when the grant or activation is indexed),
  ``access_request.expired``, ``correction.overdue``, ``demand.overdue``; each once (a marker).
  The first two end windows of the ledger, which the contract judges by ``block.timestamp`` (SPEC
  §3): they fire on the chain's time (:func:`indexed_time`), as the grant's status reads
  ``expired`` from the first block at or past ``validUntil``, whatever the wall clock says; the
  others are service clocks of the platform, on the wall clock.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from chain_client.ids import checksum
from chain_client.indexer import IndexedEvent

from .models import (
    AccessRequestRow,
    CatalogEntryRow,
    CorrectionRow,
    DemandRow,
    EventClock,
    EventCounter,
    EventMarker,
    EventRow,
    IndexedBlock,
    LedgerEvent,
    PurposeRow,
    WebhookDelivery,
    WebhookRow,
)
from .shapes import padded
from .store import Store

#: Every event type (SPEC §9.1). A reorg's correction of one is ``<type>.retracted``.
EVENT_TYPES: tuple[str, ...] = (
    "grant.recorded",
    "grant.paused",
    "grant.resumed",
    "grant.revoked",
    "grant.expired",
    "grant.exhausted",
    "release.recorded",
    "access_request.created",
    "access_request.granted",
    "access_request.rejected",
    "access_request.expired",
    "access_request.withdrawn",
    "emergency.activated",
    "emergency.expired",
    "correction.opened",
    "correction.resolved",
    "correction.overdue",
    "demand.created",
    "demand.confirmed",
    "demand.refused",
    "demand.published",
    "demand.overdue",
)
RETRACTED = ".retracted"

#: On-chain role bits (README "Contracts").
ADMIN, AUDITOR = 1, 8
#: Values of a uint64 past this are "never" (and do not fit a signed BIGINT).
_NEVER = 2**62


_address = checksum


def type_matches(types: Sequence[str], event_type: str) -> bool:
    """Whether a webhook subscribed to ``types`` gets ``event_type``: an empty list takes all;
    ``grant.*`` takes a group; a subscription to a type also takes its retraction."""
    if not types:
        return True
    base = event_type.removesuffix(RETRACTED)
    group = base.split(".", 1)[0] + ".*"
    return any(t in (event_type, base, group) for t in types)


def public(row: EventRow) -> dict[str, Any]:
    """The event as SPEC §9.1 shapes it (the webhook body and an item of ``GET /v1/events``)."""
    return {
        "id": row.id,
        "type": row.type,
        "sequence": int(row.sequence),
        "occurred_at": int(row.occurred_at),
        "block_number": None if row.block_number is None else int(row.block_number),
        "data": json.loads(row.data),
    }


# ---- emitting --------------------------------------------------------------------------------


def lock_counters(session: Session, members: Iterable[str]) -> None:
    """Create and lock the counters of ``members`` in sorted order (for a transaction that emits
    to several members in an order of its own: the locks are taken up front, in one order)."""
    for member in sorted({_address(m) for m in members}):
        _ensure_counter(session, member)
        session.execute(select(EventCounter.last).where(EventCounter.member == member).with_for_update())


def _ensure_counter(session: Session, member: str) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(EventCounter).values(member=member, last=0).on_conflict_do_nothing(index_elements=["member"])
    )


def emit(
    session: Session,
    type: str,
    recipients: Iterable[str | None],
    data: Mapping[str, Any],
    block_number: int | None = None,
    *,
    occurred_at: int | None = None,
    source_block: int | None = None,
) -> list[EventRow]:
    """Add event ``type`` with ``data`` for each of ``recipients`` (duplicates and None dropped)
    in ``session``'s transaction, and queue its deliveries to their webhooks."""
    at = int(time.time()) if occurred_at is None else int(occurred_at)
    return emit_many(session, [(type, list(recipients), dict(data), block_number, at)], source_block=source_block)


def members_with_roles(session: Session, mask: int) -> list[str]:
    """Active members holding any role of ``mask``, as the index knows them (empty without one)."""
    roles: dict[str, int] = {}
    suspended: dict[str, bool] = {}
    stmt = (
        select(LedgerEvent.event, LedgerEvent.account, LedgerEvent.args)
        .where(LedgerEvent.event.in_(("MemberOnboarded", "MemberUpdated", "MemberSuspensionChanged")))
        .order_by(LedgerEvent.block_number, LedgerEvent.log_index)
    )
    for name, account, args in session.execute(stmt):
        if not account:
            continue
        decoded = json.loads(args)
        if name == "MemberSuspensionChanged":
            suspended[account] = bool(decoded.get("suspended"))
        else:
            roles[account] = int(decoded.get("roles", 0))
    return sorted(a for a, r in roles.items() if r & mask and not suspended.get(a))


def _names(session: Session, resources: Iterable[str], purpose: str | None) -> dict[str, Any]:
    """Readable codes for resource and purpose ids (SPEC §9.3), where known (remembered for the
    session's transaction: an indexed block names the same few resources and purposes again)."""
    ids = sorted(set(resources))
    memo: dict[tuple[tuple[str, ...], str | None], dict[str, Any]] = session.info.setdefault("qcl_names", {})
    key = (tuple(ids), purpose)
    if key not in memo:
        memo[key] = _lookup_names(session, ids, purpose)
    return dict(memo[key])


def _lookup_names(session: Session, ids: list[str], purpose: str | None) -> dict[str, Any]:
    codes = dict(
        session.execute(
            select(CatalogEntryRow.resource_id, CatalogEntryRow.code).where(
                CatalogEntryRow.resource_id.in_(padded(ids))
            )
        ).all()
    )
    named: dict[str, Any] = {"resource_codes": [codes.get(r) for r in ids]} if ids else {}
    if purpose is not None:
        found = session.execute(
            select(PurposeRow.code, PurposeRow.name_zh, PurposeRow.name_en).where(PurposeRow.purpose_id == purpose)
        ).first()
        named["purpose_code"] = found[0] if found else None
        named["purpose_name_zh"] = found[1] if found else None
        named["purpose_name_en"] = found[2] if found else None
    return named


# ---- off-chain objects (the routers' one-line calls) ----------------------------------------------


def emit_access_request(session: Session, row: AccessRequestRow, change: str, *, at: int | None = None) -> None:
    """``access_request.<change>`` to its subject and consumer."""
    data = {
        "access_request_id": row.id,
        "consumer": row.consumer,
        "subject": row.subject,
        "resources": json.loads(row.resources),
        "purpose": row.purpose,
        "status": change,
        "grant_id": row.grant_id,
        "reason": row.reason,
        "expires_at": row.expires_at,
    }
    emit(session, f"access_request.{change}", [row.subject, row.consumer], data, occurred_at=at)


def emit_correction(session: Session, row: CorrectionRow, change: str, *, at: int | None = None) -> None:
    """``correction.<change>`` to its subject, its issuer and the ADMINs."""
    data = {
        "correction_id": row.id,
        "document_id": row.document_id,
        "resource": row.resource,
        "subject": row.subject,
        "issuer": row.issuer,
        "status": row.status,
        "opened_at": row.opened_at,
        "due_at": row.due_at,
        "resolved_at": row.resolved_at,
        "new_document_id": row.new_document_id,
    }
    recipients = [row.subject, row.issuer, *members_with_roles(session, ADMIN)]
    emit(session, f"correction.{change}", recipients, data, occurred_at=at)


def emit_demand(
    session: Session, row: DemandRow, change: str, *, at: int | None = None, step: str | None = None
) -> None:
    """``demand.<change>`` to its consumer, its provider and the ADMINs."""
    data: dict[str, Any] = {
        "demand_id": row.id,
        "consumer": row.consumer,
        "provider": row.provider,
        "title": row.title,
        "status": row.status,
        "confirm_by": row.confirm_by,
        "publish_by": row.publish_by,
        "reason": row.reason,
        "published_code": row.published_code,
    }
    if step is not None:
        data["overdue_step"] = step
    recipients = [row.consumer, row.provider, *members_with_roles(session, ADMIN)]
    emit(session, f"demand.{change}", recipients, data, occurred_at=at)


# ---- chain-derived events (the index store's transaction) ------------------------------------------


def _grant_terms(session: Session, grant_id: str | None) -> tuple[str | None, str | None, dict[str, Any]]:
    """(subject, grantee, GrantRecorded args) of an indexed grant; Nones when it is unknown."""
    if grant_id is None:
        return None, None, {}
    memo: dict[str, tuple[str | None, str | None, dict[str, Any]]] = session.info.setdefault("qcl_grants", {})
    if grant_id not in memo:  # a block's releases name the same grants again
        memo[grant_id] = _lookup_grant(session, grant_id)
    return memo[grant_id]


def _lookup_grant(session: Session, grant_id: str) -> tuple[str | None, str | None, dict[str, Any]]:
    found = session.execute(
        select(LedgerEvent.subject, LedgerEvent.grantee, LedgerEvent.args)
        .where(LedgerEvent.event == "GrantRecorded", LedgerEvent.grant_id == grant_id)
        .limit(1)
    ).first()
    return (found[0], found[1], json.loads(found[2])) if found else (None, None, {})


def _mark_once(session: Session, key: str, at: int, source_block: int | None) -> bool:
    """Record one-time event ``key``; False when it was already emitted."""
    if session.get(EventMarker, key) is not None:
        return False
    session.add(EventMarker(key=key, at=at, source_block=source_block))
    session.flush()
    return True


def _int(value: Any) -> int:
    return int(value) if not isinstance(value, str) else int(value, 0)


class _Plan(list[tuple[str, list[str | None], dict[str, Any], int, int]]):
    """Events to emit, in order: (type, recipients, data, block number, occurred at)."""

    def add(self, type: str, recipients: list[str | None], data: dict[str, Any], block: int, at: int) -> None:
        self.append((type, recipients, data, block, at))


def on_indexed(session: Session, events: Sequence[IndexedEvent], timestamps: Mapping[int, int]) -> int:
    """Emit the events of newly indexed blocks (already inserted in ``session``), in chain order;
    returns how many were emitted (one per type and block position, before fan-out)."""
    if not any(e.event in _CHAIN_EVENTS for e in events):
        return 0
    staff: list[str] | None = None
    plan = _Plan()
    for event in events:
        handler = _CHAIN_EVENTS.get(event.event)
        if handler is None:
            continue
        at = timestamps.get(event.block_number, int(time.time()))
        if event.event == "EmergencyApproved" and staff is None:
            staff = members_with_roles(session, ADMIN | AUDITOR)
        handler(session, plan, event, at, staff or [])
    emit_many(session, plan)
    return len(plan)


def emit_many(
    session: Session,
    plan: Sequence[tuple[str, list[str | None], dict[str, Any], int | None, int]],
    *,
    source_block: int | None = None,
) -> list[EventRow]:
    """Add the events of ``plan`` ((type, recipients, data, block number, occurred at), in order)
    and queue their deliveries: each member's counter is locked (in one order, so emitters never
    wait crosswise) and moved once for all its events, and its webhooks are read once; sequences
    follow ``plan``'s order per member, gap-free. ``source_block`` defaults to each event's block."""
    per_member: dict[str, int] = {}
    resolved = []
    for type, recipients, data, block, at in plan:
        members = sorted({_address(r) for r in recipients if r})
        for member in members:
            per_member[member] = per_member.get(member, 0) + 1
        resolved.append((type, members, json.dumps(dict(data), separators=(",", ":"), sort_keys=True), block, at))
    if not per_member:
        return []
    lock_counters(session, per_member)
    next_of: dict[str, int] = {}
    for member, count in sorted(per_member.items()):
        last = session.execute(
            update(EventCounter)
            .where(EventCounter.member == member)
            .values(last=EventCounter.last + count)
            .returning(EventCounter.last)
        ).scalar_one()
        next_of[member] = int(last) - count + 1
    hooks: dict[str, list[tuple[str, list[str]]]] = {}
    for owner, hook_id, hook_types in session.execute(
        select(WebhookRow.owner, WebhookRow.id, WebhookRow.types).where(
            WebhookRow.owner.in_(padded(sorted(per_member))), WebhookRow.deleted_at.is_(None)
        )
    ):
        hooks.setdefault(owner, []).append((str(hook_id), json.loads(hook_types)))
    now = time.time()
    rows: list[EventRow] = []
    for type, members, payload, block, at in resolved:
        for member in members:
            row = EventRow(
                id="evt_" + secrets.token_hex(16),
                member=member,
                sequence=next_of[member],
                type=type,
                occurred_at=int(at),
                block_number=block,
                data=payload,
                source_block=block if source_block is None else source_block,
                retracted=False,
            )
            next_of[member] += 1
            session.add(row)
            rows.append(row)
            for hook_id, wanted in hooks.get(member, ()):
                if type_matches(wanted, type):
                    session.add(
                        WebhookDelivery(
                            webhook_id=hook_id,
                            event_id=row.id,
                            sequence=row.sequence,
                            status="pending",
                            attempts=0,
                            next_attempt_at=0.0,
                            created_at=now,
                        )
                    )
    session.flush()
    return rows


def _base(event: IndexedEvent) -> dict[str, Any]:
    return {"tx_hash": event.tx_hash}


def _grant_recorded(session: Session, plan: _Plan, event: IndexedEvent, at: int, _staff: list[str]) -> None:
    args = event.args
    data = {
        "grant_id": event.grant_id,
        "subject": event.subject,
        "grantee": event.grantee,
        "resources": args.get("resources", []),
        "purpose": args.get("purpose"),
        "valid_from": _int(args.get("validFrom", 0)),
        "valid_until": _int(args.get("validUntil", 0)),
        "max_uses": _int(args.get("maxUses", 0)),
        **_names(session, args.get("resources", []), args.get("purpose")),
        **_base(event),
    }
    recipients = [event.subject, event.grantee]
    plan.add("grant.recorded", recipients, data, event.block_number, at)
    until = data["valid_until"]
    if until < _NEVER and event.grant_id:
        clock = {k: data[k] for k in ("grant_id", "subject", "grantee", "valid_until", "max_uses")}
        session.merge(
            EventClock(
                key=f"grant.expired:{event.grant_id}",
                type="grant.expired",
                due_at=until,
                recipients=json.dumps(recipients),
                data=json.dumps(clock),
                source_block=event.block_number,
                cancelled_block=None,
                fired_at=None,
            )
        )


def _grant_revoked(session: Session, plan: _Plan, event: IndexedEvent, at: int, _staff: list[str]) -> None:
    _, grantee, _ = _grant_terms(session, event.grant_id)
    data = {"grant_id": event.grant_id, "subject": event.subject, "grantee": grantee, **_base(event)}
    plan.add("grant.revoked", [event.subject, grantee], data, event.block_number, at)
    session.execute(
        update(EventClock)
        .where(EventClock.key == f"grant.expired:{event.grant_id}", EventClock.cancelled_block.is_(None))
        .values(cancelled_block=event.block_number)
    )


def _grant_pause(session: Session, plan: _Plan, event: IndexedEvent, at: int, _staff: list[str]) -> None:
    _, grantee, _ = _grant_terms(session, event.grant_id)
    paused = bool(event.args.get("paused"))
    data = {
        "grant_id": event.grant_id,
        "subject": event.subject,
        "grantee": grantee,
        "paused": paused,
        "sequence": _int(event.args.get("sequence", 0)),
        **_base(event),
    }
    kind = "grant.paused" if paused else "grant.resumed"
    plan.add(kind, [event.subject, grantee], data, event.block_number, at)


def _release(session: Session, plan: _Plan, event: IndexedEvent, at: int, _staff: list[str]) -> None:
    if event.event == "ReleaseRecorded":
        subject, grantee, terms = _grant_terms(session, event.grant_id)
        subject = event.subject or subject
        purpose = terms.get("purpose")
        data: dict[str, Any] = {
            "kind": "grant",
            "grant_id": event.grant_id,
            "grantee": event.grantee,
            "subject": subject,
            "resource": event.resource,
            "purpose": purpose,
            "request_id": event.request_id,
            "uses": _int(event.args.get("uses", 0)),
            **_names(session, [event.resource] if event.resource else [], purpose),
            **_base(event),
        }
        data["resource_code"] = (data.pop("resource_codes", None) or [None])[0]
        plan.add("release.recorded", [subject], data, event.block_number, at)
        max_uses = _int(terms.get("maxUses", 0))
        uses = data["uses"]
        if (
            max_uses
            and uses >= max_uses
            and _mark_once(session, f"grant.exhausted:{event.grant_id}", at, event.block_number)
        ):
            spent = {
                "grant_id": event.grant_id,
                "subject": subject,
                "grantee": grantee,
                "uses": uses,
                "max_uses": max_uses,
                **_base(event),
            }
            plan.add("grant.exhausted", [subject, grantee], spent, event.block_number, at)
        return
    data = {
        "kind": "emergency",
        "emergency_id": event.emergency_id,
        "grantee": event.consumer,
        "subject": event.subject,
        "resource": event.resource,
        "request_id": event.request_id,
        **_names(session, [event.resource] if event.resource else [], None),
        **_base(event),
    }
    data["resource_code"] = (data.pop("resource_codes", None) or [None])[0]
    plan.add("release.recorded", [event.subject], data, event.block_number, at)


def _emergency_approved(session: Session, plan: _Plan, event: IndexedEvent, at: int, staff: list[str]) -> None:
    if not event.args.get("active"):
        return
    key = f"emergency.activated:{event.emergency_id}"
    if not _mark_once(session, key, at, event.block_number):
        return
    proposed = session.execute(
        select(LedgerEvent.args)
        .where(LedgerEvent.event == "EmergencyProposed", LedgerEvent.emergency_id == event.emergency_id)
        .limit(1)
    ).scalar()
    scope = json.loads(proposed) if proposed else {}
    consumers = list(scope.get("consumers", []))
    data = {
        "emergency_id": event.emergency_id,
        "consumers": consumers,
        "resources": scope.get("resources", []),
        "valid_from": _int(scope.get("validFrom", 0)),
        "valid_until": _int(scope.get("validUntil", 0)),
        "approvals": _int(event.args.get("approvals", 0)),
        **_base(event),
    }
    recipients = sorted({*consumers, *staff})
    plan.add("emergency.activated", recipients, data, event.block_number, at)
    if data["valid_until"] < _NEVER:
        clock = {k: data[k] for k in ("emergency_id", "consumers", "resources", "valid_until")}
        session.merge(
            EventClock(
                key=f"emergency.expired:{event.emergency_id}",
                type="emergency.expired",
                due_at=data["valid_until"],
                recipients=json.dumps(recipients),
                data=json.dumps(clock),
                source_block=event.block_number,
                cancelled_block=None,
                fired_at=None,
            )
        )


def _emergency_cancelled(session: Session, plan: _Plan, event: IndexedEvent, _at: int, _staff: list[str]) -> None:
    session.execute(
        update(EventClock)
        .where(EventClock.key == f"emergency.expired:{event.emergency_id}", EventClock.cancelled_block.is_(None))
        .values(cancelled_block=event.block_number)
    )


_CHAIN_EVENTS = {
    "GrantRecorded": _grant_recorded,
    "GrantRevoked": _grant_revoked,
    "GrantPauseChanged": _grant_pause,
    "ReleaseRecorded": _release,
    "EmergencyReleaseRecorded": _release,
    "EmergencyApproved": _emergency_approved,
    "EmergencyCancelled": _emergency_cancelled,
}


def on_rolled_back(session: Session, keep_through: int) -> int:
    """Blocks above ``keep_through`` left the chain: every event they caused is retracted with a
    ``<type>.retracted`` event to the same member (``data.retracts`` = the retracted event's id),
    and their one-time markers and clocks are forgotten. Returns the events retracted."""
    rows = session.scalars(
        select(EventRow)
        .where(EventRow.source_block > keep_through, EventRow.retracted.is_(False), ~EventRow.type.endswith(RETRACTED))
        .order_by(EventRow.member, EventRow.sequence)
    ).all()
    lock_counters(session, {r.member for r in rows})
    now = int(time.time())
    for row in rows:
        data = {
            "retracts": row.id,
            "retracted_sequence": int(row.sequence),
            "block_number": row.block_number,
            "data": json.loads(row.data),
        }
        emit(session, row.type + RETRACTED, [row.member], data, occurred_at=now)
        row.retracted = True
    session.execute(
        EventMarker.__table__.delete().where(EventMarker.source_block > keep_through)  # type: ignore[attr-defined]
    )
    session.execute(EventClock.__table__.delete().where(EventClock.source_block > keep_through))  # type: ignore[attr-defined]
    session.execute(update(EventClock).where(EventClock.cancelled_block > keep_through).values(cancelled_block=None))
    return len(rows)


# ---- clocks (the worker) ---------------------------------------------------------------------------


def _not_marked(key_prefix: str, column: Any) -> Any:
    return ~exists(select(EventMarker.key).where(EventMarker.key == literal(key_prefix) + column))


def indexed_time(store: Store) -> int | None:
    """The chain's time as the index knows it: the timestamp of the highest block indexed (the
    indexer stores the last block of every batch); ``None`` before anything is indexed."""
    with store.session() as s:
        return s.scalar(select(IndexedBlock.timestamp).order_by(IndexedBlock.number.desc()).limit(1))


def fire_due(store: Store, now: int, *, chain_now: int | None = None, limit: int = 200) -> int:
    """Emit every deadline passed that has not been emitted yet, each in a transaction of its own;
    returns how many. The ledger's windows (``grant.expired``, ``emergency.expired``: the clocks
    of ``event_clocks``) are passed at ``chain_now``, the chain's time (:func:`indexed_time`; default
    ``now``), the service clocks (access requests, corrections, demands) at ``now``, the wall
    clock. Each is emitted once: a clock's ``fired_at``, the access request's own status
    (``pending`` -> ``expired``, in the statement that claims it, so an answer racing with the
    expiry either wins or finds it closed), or a marker."""
    fired = 0
    chain_now = now if chain_now is None else chain_now
    with store.session() as s:
        clocks = s.scalars(
            select(EventClock.key)
            .where(EventClock.fired_at.is_(None), EventClock.cancelled_block.is_(None), EventClock.due_at <= chain_now)
            .order_by(EventClock.due_at)
            .limit(limit)
        ).all()
        requests = s.scalars(
            select(AccessRequestRow.id)
            .where(
                AccessRequestRow.status == "pending",
                AccessRequestRow.expires_at.is_not(None),
                AccessRequestRow.expires_at <= now,
            )
            .limit(limit)
        ).all()
        corrections = s.scalars(
            select(CorrectionRow.id)
            .where(
                CorrectionRow.status == "open",
                CorrectionRow.due_at <= now,
                _not_marked("correction.overdue:", CorrectionRow.id),
            )
            .limit(limit)
        ).all()
        demands = [
            (step, demand_id)
            for step, due, states in (
                ("confirm", DemandRow.confirm_by, ("open",)),
                ("publish", DemandRow.publish_by, ("open", "confirmed")),
            )
            for demand_id in s.scalars(
                select(DemandRow.id)
                .where(DemandRow.status.in_(states), due <= now, _not_marked(f"demand.overdue.{step}:", DemandRow.id))
                .limit(limit)
            ).all()
        ]
    for key in clocks:
        with store.session() as s:
            clock = s.get(EventClock, key, with_for_update=True)
            if clock is None or clock.fired_at is not None or clock.cancelled_block is not None:
                continue
            recipients, data = json.loads(clock.recipients), json.loads(clock.data)
            emit(s, clock.type, recipients, data, occurred_at=clock.due_at, source_block=clock.source_block)
            clock.fired_at = now
            fired += 1
    for request_id in requests:
        with store.session() as s:
            claimed = s.execute(
                update(AccessRequestRow)
                .where(AccessRequestRow.id == request_id, AccessRequestRow.status == "pending")
                .values(status="expired")
            )
            if not getattr(claimed, "rowcount", 0):
                continue
            request = s.get(AccessRequestRow, request_id)
            assert request is not None
            emit_access_request(s, request, "expired", at=request.expires_at)
            fired += 1
    for correction_id in corrections:
        with store.session() as s:
            correction = s.get(CorrectionRow, correction_id)
            if correction is None or not _mark_once(s, f"correction.overdue:{correction_id}", now, None):
                continue
            emit_correction(s, correction, "overdue", at=correction.due_at)
            fired += 1
    for step, demand_id in demands:
        with store.session() as s:
            demand = s.get(DemandRow, demand_id)
            if demand is None or not _mark_once(s, f"demand.overdue.{step}:{demand_id}", now, None):
                continue
            due_at = demand.confirm_by if step == "confirm" else demand.publish_by
            emit_demand(s, demand, "overdue", at=due_at, step=step)
            fired += 1
    return fired


def events_after(session: Session, member: str, after: int, offset: int, limit: int) -> tuple[list[EventRow], int]:
    """A member's events with ``sequence > after`` in order, paged; and how many there are."""
    where = and_(EventRow.member == _address(member), EventRow.sequence > after)
    total = int(session.scalar(select(func.count()).select_from(EventRow).where(where)) or 0)
    rows = session.scalars(select(EventRow).where(where).order_by(EventRow.sequence).offset(offset).limit(limit)).all()
    return list(rows), total


__all__ = [
    "EVENT_TYPES",
    "emit",
    "emit_access_request",
    "emit_correction",
    "emit_demand",
    "events_after",
    "fire_due",
    "indexed_time",
    "lock_counters",
    "on_indexed",
    "on_rolled_back",
    "public",
    "type_matches",
]
