"""The chain indexer's store on the platform database (tables in :mod:`db.models`, migrations 0003, 0004).

:class:`SqlIndexStore` is the SQLAlchemy adapter of :class:`chain_client.indexer.IndexStore`:
``chain_client`` does not import ``db``, so the indexer writes through that protocol and this
module (``db`` may import ``chain_client`` types) implements it::

    indexer = Indexer(ledger=ledger, store=SqlIndexStore(store))

* ``indexed_blocks``: hash, parent hash and timestamp of every block with events or ledger
  transactions and of the last block of every batch (what reorg detection compares with the chain);
* ``ledger_events``: one row per log, in chain order by (block_number, log_index); arguments as
  JSON text, plus key columns for queries; release events (``ReleaseRecorded``,
  ``EmergencyReleaseRecorded``) also carry the ``deadline`` (decimal text: a uint256 may not fit a
  BIGINT) and ``signature`` (0x hex) of the grantee's signed request, from the transaction's
  calldata (0004; NULL for other events and when the calldata is not known);
* ``ledger_transactions``: every transaction sent directly to one of the ledger's contracts,
  reverted ones included, with its sender and calldata, in chain order by (block_number, tx_index)
  (0004);
* ``indexer_state``: the cursor (last indexed block and its hash) of each named indexer.

Each batch, and each rollback, is one transaction that also checks the stored cursor is the one
the indexer started from, so a crash leaves a consistent prefix and two indexers cannot interleave.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from chain_client.indexer import (
    KEY_COLUMNS,
    BlockHeader,
    Cursor,
    EventQuery,
    IndexConflict,
    IndexedEvent,
    IndexedTransaction,
)

from . import events as member_events
from .models import IndexedBlock, IndexerState, LedgerEvent, LedgerTransaction
from .shapes import padded
from .store import Store


class SqlIndexStore:
    """:class:`chain_client.indexer.IndexStore` on the vault's database.

    ``events``: turn indexed chain events into members' events (SPEC §9.1, :mod:`db.events`) in
    the same transaction as the batch, and retract them on a rollback.
    """

    def __init__(self, store: Store, *, events: bool = True) -> None:
        self.store = store
        self.events = events

    # ---- reads -----------------------------------------------------------------------------------

    def cursor(self, name: str) -> Cursor | None:
        with self.store.session() as session:
            row = session.get(IndexerState, name)
            return None if row is None else Cursor(int(row.last_block), row.last_hash)

    def blocks_below(self, number: int, limit: int) -> list[BlockHeader]:
        stmt = select(IndexedBlock).where(IndexedBlock.number < number).order_by(IndexedBlock.number.desc())
        with self.store.session() as session:
            return [_header(row) for row in session.scalars(stmt.limit(limit))]

    def block(self, number: int) -> BlockHeader | None:
        with self.store.session() as session:
            row = session.get(IndexedBlock, number)
            return None if row is None else _header(row)

    def grant_parties(self, grant_ids: Collection[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        ids = sorted(grant_ids)
        with self.store.session() as session:
            for offset in range(0, len(ids), 500):
                stmt = select(LedgerEvent.grant_id, LedgerEvent.subject, LedgerEvent.grantee).where(
                    LedgerEvent.event == "GrantRecorded", LedgerEvent.grant_id.in_(padded(ids[offset : offset + 500]))
                )
                for grant_id, subject, grantee in session.execute(stmt):
                    if grant_id and subject and grantee:
                        found[grant_id] = (subject, grantee)
        return found

    def query(self, query: EventQuery) -> list[IndexedEvent]:
        stmt = select(LedgerEvent, IndexedBlock.timestamp).join(
            IndexedBlock, IndexedBlock.number == LedgerEvent.block_number, isouter=True
        )
        if query.events:
            stmt = stmt.where(LedgerEvent.event.in_(query.events))
        for column in (*KEY_COLUMNS, "tx_hash"):
            value = getattr(query, column)
            if value is not None:
                stmt = stmt.where(getattr(LedgerEvent, column) == value)
        if query.from_block is not None:
            stmt = stmt.where(LedgerEvent.block_number >= query.from_block)
        if query.to_block is not None:
            stmt = stmt.where(LedgerEvent.block_number <= query.to_block)
        stmt = stmt.order_by(LedgerEvent.block_number, LedgerEvent.log_index).offset(query.offset)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with self.store.session() as session:
            return [_event(row, timestamp) for row, timestamp in session.execute(stmt)]

    def transactions(self, from_block: int | None = None, to_block: int | None = None) -> list[IndexedTransaction]:
        stmt = select(LedgerTransaction)
        if from_block is not None:
            stmt = stmt.where(LedgerTransaction.block_number >= from_block)
        if to_block is not None:
            stmt = stmt.where(LedgerTransaction.block_number <= to_block)
        stmt = stmt.order_by(LedgerTransaction.block_number, LedgerTransaction.tx_index)
        with self.store.session() as session:
            return [_transaction(row) for row in session.scalars(stmt)]

    def stream(self, events: Collection[str], to_block: int) -> Iterator[IndexedEvent]:
        """Events named in ``events`` up to ``to_block`` in chain order, read in pages of 10,000
        (SQLAlchemy Core on one connection: the ORM's row handling would double the cost).

        The arguments of releases are rebuilt from their key columns (no JSON to parse): the
        fields verification reads, not ``uses``.
        """
        stmt = (
            select(
                LedgerEvent.block_number,
                LedgerEvent.block_hash,
                LedgerEvent.log_index,
                LedgerEvent.tx_hash,
                LedgerEvent.tx_index,
                LedgerEvent.contract,
                LedgerEvent.event,
                LedgerEvent.args,
                LedgerEvent.grant_id,
                LedgerEvent.subject,
                LedgerEvent.grantee,
                LedgerEvent.consumer,
                LedgerEvent.resource,
                LedgerEvent.emergency_id,
                LedgerEvent.request_id,
                LedgerEvent.document_id,
                LedgerEvent.account,
                LedgerEvent.deadline,
                LedgerEvent.signature,
                IndexedBlock.timestamp,
            )
            .join(IndexedBlock, IndexedBlock.number == LedgerEvent.block_number, isouter=True)
            .where(LedgerEvent.event.in_(sorted(events)), LedgerEvent.block_number <= to_block)
            .order_by(LedgerEvent.block_number, LedgerEvent.log_index)
        )
        with self.store.engine.connect() as connection:
            result = connection.execution_options(yield_per=10_000).execute(stmt)
            for (
                number,
                block_hash,
                log_index,
                tx_hash,
                tx_index,
                contract,
                name,
                args,
                grant_id,
                subject,
                grantee,
                consumer,
                resource,
                emergency_id,
                request_id,
                document_id,
                account,
                deadline,
                signature,
                timestamp,
            ) in result:
                if name == "ReleaseRecorded":
                    decoded = {"grantId": grant_id, "grantee": grantee, "resource": resource, "requestId": request_id}
                elif name == "EmergencyReleaseRecorded":
                    decoded = {
                        "emergencyId": emergency_id,
                        "consumer": consumer,
                        "subject": subject,
                        "resource": resource,
                        "requestId": request_id,
                    }
                else:
                    decoded = json.loads(args)
                yield IndexedEvent(
                    number,
                    block_hash,
                    log_index,
                    tx_hash,
                    tx_index,
                    contract,
                    name,
                    decoded,
                    grant_id,
                    subject,
                    grantee,
                    consumer,
                    resource,
                    emergency_id,
                    request_id,
                    document_id,
                    account,
                    None if timestamp is None else int(timestamp),
                    None if deadline is None else int(deadline),
                    signature,
                )

    def count(self, events: Collection[str], to_block: int) -> int:
        stmt = select(func.count()).where(LedgerEvent.event.in_(sorted(events)), LedgerEvent.block_number <= to_block)
        with self.store.session() as session:
            return int(session.scalar(stmt) or 0)

    # ---- writes ----------------------------------------------------------------------------------

    def append(
        self,
        name: str,
        *,
        expected: Cursor | None,
        blocks: Sequence[BlockHeader],
        events: Sequence[IndexedEvent],
        cursor: Cursor,
        transactions: Sequence[IndexedTransaction] = (),
    ) -> None:
        with self.store.session() as session:
            state = _check_cursor(session, name, expected)
            if blocks:
                session.execute(
                    insert(IndexedBlock),
                    [
                        {"number": b.number, "hash": b.hash, "parent_hash": b.parent_hash, "timestamp": b.timestamp}
                        for b in blocks
                    ],
                )
            if events:
                session.execute(insert(LedgerEvent), [_row(e) for e in events])
                if self.events:
                    member_events.on_indexed(session, events, {b.number: b.timestamp for b in blocks})
            if transactions:
                session.execute(
                    insert(LedgerTransaction),
                    [
                        {
                            "hash": t.hash,
                            "block_number": t.block_number,
                            "block_hash": t.block_hash,
                            "tx_index": t.tx_index,
                            "sender": t.sender,
                            "recipient": t.recipient,
                            "input": t.input,
                        }
                        for t in transactions
                    ],
                )
            if state is None:
                session.add(IndexerState(name=name, last_block=cursor.number, last_hash=cursor.hash))
            else:
                state.last_block, state.last_hash = cursor.number, cursor.hash

    def truncate(self, name: str, *, expected: Cursor | None, keep_through: int, cursor: Cursor | None) -> int:
        with self.store.session() as session:
            state = _check_cursor(session, name, expected)
            if self.events:
                member_events.on_rolled_back(session, keep_through)
            removed = session.execute(delete(LedgerEvent).where(LedgerEvent.block_number > keep_through))
            session.execute(delete(LedgerTransaction).where(LedgerTransaction.block_number > keep_through))
            session.execute(delete(IndexedBlock).where(IndexedBlock.number > keep_through))
            if state is not None and cursor is None:
                session.delete(state)
            elif state is not None and cursor is not None:
                state.last_block, state.last_hash = cursor.number, cursor.hash
            elif cursor is not None:
                session.add(IndexerState(name=name, last_block=cursor.number, last_hash=cursor.hash))
            return int(getattr(removed, "rowcount", 0) or 0)


def _check_cursor(session: Session, name: str, expected: Cursor | None) -> IndexerState | None:
    state = session.get(IndexerState, name, with_for_update=True)
    stored = None if state is None else Cursor(int(state.last_block), state.last_hash)
    if stored != expected:
        raise IndexConflict(f"indexer {name!r} is at {stored}, expected {expected}")
    return state


def _header(row: IndexedBlock) -> BlockHeader:
    return BlockHeader(number=int(row.number), hash=row.hash, parent_hash=row.parent_hash, timestamp=int(row.timestamp))


def _row(event: IndexedEvent) -> dict[str, Any]:
    row: dict[str, Any] = {
        "block_number": event.block_number,
        "block_hash": event.block_hash,
        "log_index": event.log_index,
        "tx_hash": event.tx_hash,
        "tx_index": event.tx_index,
        "contract": event.contract,
        "event": event.event,
        "args": event.args_json(),
        "deadline": None if event.deadline is None else str(event.deadline),
        "signature": event.signature,
    }
    for column in KEY_COLUMNS:
        row[column] = getattr(event, column)
    return row


def _event(row: LedgerEvent, timestamp: int | None) -> IndexedEvent:
    return IndexedEvent(
        block_number=int(row.block_number),
        block_hash=row.block_hash,
        log_index=int(row.log_index),
        tx_hash=row.tx_hash,
        tx_index=int(row.tx_index),
        contract=row.contract,
        event=row.event,
        args=json.loads(row.args),
        grant_id=row.grant_id,
        subject=row.subject,
        grantee=row.grantee,
        consumer=row.consumer,
        resource=row.resource,
        emergency_id=row.emergency_id,
        request_id=row.request_id,
        document_id=row.document_id,
        account=row.account,
        block_timestamp=None if timestamp is None else int(timestamp),
        deadline=None if row.deadline is None else int(row.deadline),
        signature=row.signature,
    )


def _transaction(row: LedgerTransaction) -> IndexedTransaction:
    return IndexedTransaction(
        block_number=int(row.block_number),
        block_hash=row.block_hash,
        tx_index=int(row.tx_index),
        hash=row.hash,
        sender=row.sender,
        recipient=row.recipient,
        input=row.input,
    )
