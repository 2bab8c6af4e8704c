"""The ledger's grant state read from the index in SQL, so that lists filter by status and page in
the database (one query for a page, one for its total) instead of asking the chain per row.

A grant's state at block ``through`` comes from the indexed events up to it: ``uses`` counts its
``ReleaseRecorded``, it is revoked once a ``GrantRevoked`` is indexed, paused as its last
``GrantPauseChanged`` says. Events of later blocks, which the caller read from the chain (the part
the index has not reached yet), come in as a :class:`GrantTail` and are added in the same query. The
status is the contract's ``grantStatus`` (ConsentLedger.sol) at ``timestamp``, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .models import GrantRecord, LedgerEvent
from .shapes import padded, padded_cases

_Row = TypeVarTuple("_Row")

#: How ``GrantPauseChanged`` arguments read when the grant is now paused (the indexer stores
#: arguments as compact JSON, ``chain_client.indexer.IndexedEvent.args_json``).
_PAUSED_JSON = '%"paused":true%'


@dataclass
class GrantTail:
    """Grant events past the index, read from the chain, folded per grant id (lower-case 0x hex)."""

    recorded: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    uses: dict[str, int] = field(default_factory=dict)
    #: grant id -> (paused, sequence) of its last ``GrantPauseChanged`` in the tail
    paused: dict[str, tuple[bool, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Iterable[tuple[str, dict[str, Any]]]) -> GrantTail:
        """Fold ``(event name, JSON-form arguments)`` pairs, in chain order."""
        tail = cls()
        for name, args in events:
            grant_id = str(args.get("grantId", "")).lower()
            if name == "GrantRecorded":
                tail.recorded.add(grant_id)
            elif name == "GrantRevoked":
                tail.revoked.add(grant_id)
            elif name == "ReleaseRecorded":
                tail.uses[grant_id] = tail.uses.get(grant_id, 0) + 1
            elif name == "GrantPauseChanged":
                tail.paused[grant_id] = (bool(args["paused"]), int(args["sequence"]))
        return tail

    def only(self, grant_id: str) -> GrantTail:
        """The part of the tail about ``grant_id`` (a query of that grant alone is then one of a
        few SQL texts, whatever else the tail holds: see :mod:`db.shapes`)."""
        key = grant_id.lower()
        return GrantTail(
            recorded=self.recorded & {key},
            revoked=self.revoked & {key},
            uses={key: self.uses[key]} if key in self.uses else {},
            paused={key: self.paused[key]} if key in self.paused else {},
        )


@dataclass(frozen=True)
class GrantFilter:
    """Which grants: all given conditions hold. ``party``: the subject or the grantee is this address."""

    subject: str | None = None
    grantee: str | None = None
    party: str | None = None
    status: str | None = None
    grant_id: str | None = None


@dataclass(frozen=True)
class GrantStateRow:
    record: GrantRecord
    status: str
    uses: int


def _in(column: InstrumentedAttribute[str], values: Iterable[str]) -> ColumnElement[bool]:
    values = sorted(values)
    return column.in_(padded(values)) if values else false()


def _indexed(event: str, through: int) -> ColumnElement[bool]:
    return and_(
        LedgerEvent.event == event, LedgerEvent.grant_id == GrantRecord.grant_id, LedgerEvent.block_number <= through
    )


def state_columns(through: int, timestamp: int, tail: GrantTail) -> tuple[ColumnElement[str], ColumnElement[int]]:
    """The ``status`` and ``uses`` of a ``grants`` row at block ``through`` plus ``tail``, at ``timestamp``."""
    indexed_uses = select(func.count()).where(_indexed("ReleaseRecorded", through)).scalar_subquery()
    tail_uses = case(padded_cases(tail.uses, 0), value=GrantRecord.grant_id, else_=0) if tail.uses else literal(0)
    uses = indexed_uses + tail_uses
    revoked = or_(exists().where(_indexed("GrantRevoked", through)), _in(GrantRecord.grant_id, tail.revoked))
    recorded = or_(exists().where(_indexed("GrantRecorded", through)), _in(GrantRecord.grant_id, tail.recorded))
    last_pause = (
        select(LedgerEvent.args)
        .where(_indexed("GrantPauseChanged", through))
        .order_by(LedgerEvent.block_number.desc(), LedgerEvent.log_index.desc())
        .limit(1)
        .scalar_subquery()
    )
    paused_now = {gid for gid, (paused, _) in tail.paused.items() if paused}
    resumed_now = {gid for gid, (paused, _) in tail.paused.items() if not paused}
    paused = case(
        (_in(GrantRecord.grant_id, paused_now), True),
        (_in(GrantRecord.grant_id, resumed_now), False),
        else_=func.coalesce(last_pause.like(_PAUSED_JSON), False),
    )
    status = case(
        (revoked, "revoked"),
        (~recorded, "unknown"),
        (GrantRecord.valid_until <= timestamp, "expired"),
        (and_(GrantRecord.max_uses != 0, uses >= GrantRecord.max_uses), "exhausted"),
        (paused, "paused"),
        (GrantRecord.valid_from > timestamp, "not_yet_valid"),
        else_="active",
    )
    return status, uses


def _filtered(query: Select[*_Row], where: GrantFilter, status: ColumnElement[str]) -> Select[*_Row]:
    if where.grant_id is not None:
        query = query.where(GrantRecord.grant_id == where.grant_id)
    if where.subject is not None:
        query = query.where(GrantRecord.subject == where.subject)
    if where.grantee is not None:
        query = query.where(GrantRecord.grantee == where.grantee)
    if where.party is not None:
        query = query.where(or_(GrantRecord.subject == where.party, GrantRecord.grantee == where.party))
    if where.status is not None:
        query = query.where(status == where.status)
    return query


def grant_page(
    session: Session,
    where: GrantFilter,
    *,
    through: int,
    timestamp: int,
    tail: GrantTail,
    offset: int,
    limit: int,
) -> tuple[list[GrantStateRow], int]:
    """One page of grants (newest block first, then by id) with their status and uses, and the
    number of grants the filter matches."""
    if where.grant_id is not None:  # the rest of the tail cannot change this grant's row
        tail = tail.only(where.grant_id)
    status, uses = state_columns(through, timestamp, tail)
    rows = session.execute(
        _filtered(select(GrantRecord, status.label("status"), uses.label("uses")), where, status)
        .order_by(GrantRecord.block_number.desc(), GrantRecord.grant_id)
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.scalar(_filtered(select(func.count()).select_from(GrantRecord), where, status)) or 0
    return [GrantStateRow(row[0], str(row[1]), int(row[2])) for row in rows], int(total)


def pause_sequence(session: Session, grant_id: str, *, through: int, tail: GrantTail) -> int:
    """The sequence of the grant's last applied ``SetPaused`` (0 before any)."""
    if grant_id in tail.paused:
        return tail.paused[grant_id][1]
    args = session.scalar(
        select(LedgerEvent.args)
        .where(
            LedgerEvent.event == "GrantPauseChanged",
            LedgerEvent.grant_id == grant_id,
            LedgerEvent.block_number <= through,
        )
        .order_by(LedgerEvent.block_number.desc(), LedgerEvent.log_index.desc())
        .limit(1)
    )
    return 0 if args is None else int(json.loads(args)["sequence"])


def events_of(
    session: Session, *, names: Sequence[str], column: str, values: Iterable[str], through: int
) -> list[tuple[int, int, str, dict[str, Any], int | None]]:
    """``(block, log index, event, args, block timestamp)`` of the indexed events named ``names``
    whose key ``column`` (e.g. ``emergency_id``, ``account``) is one of ``values``, up to block
    ``through``, in chain order."""
    from .models import IndexedBlock

    wanted = sorted(set(values))
    if not wanted:
        return []
    stmt = (
        select(
            LedgerEvent.block_number, LedgerEvent.log_index, LedgerEvent.event, LedgerEvent.args, IndexedBlock.timestamp
        )
        .join(IndexedBlock, IndexedBlock.number == LedgerEvent.block_number, isouter=True)
        .where(
            LedgerEvent.event.in_(list(names)),
            getattr(LedgerEvent, column).in_(padded(wanted)),
            LedgerEvent.block_number <= through,
        )
        .order_by(LedgerEvent.block_number, LedgerEvent.log_index)
    )
    return [
        (int(block), int(index), name, json.loads(args), None if stamp is None else int(stamp))
        for block, index, name, args, stamp in session.execute(stmt)
    ]


def events_page(
    session: Session, *, name: str, through: int, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The arguments of one page of the indexed events called ``name`` up to block ``through``, in
    chain order, and how many there are."""
    where = (LedgerEvent.event == name, LedgerEvent.block_number <= through)
    page = session.scalars(
        select(LedgerEvent.args)
        .where(*where)
        .order_by(LedgerEvent.block_number, LedgerEvent.log_index)
        .offset(offset)
        .limit(limit)
    )
    total = session.scalar(select(func.count()).select_from(LedgerEvent).where(*where)) or 0
    return [json.loads(args) for args in page], int(total)
