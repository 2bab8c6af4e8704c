"""The ledger's state at the chain's head, read from the index plus the blocks it has not reached.

Reads of grants and emergencies never ask the chain per row: the index (``db``, kept by the worker's
indexer) holds every event up to its cursor, and the blocks after it — a few while the indexer
follows, all of them when no indexer ever ran — are read from the chain in one ``eth_getLogs``.
A read therefore costs at most two RPC calls however many rows it returns (the newest block's header,
and the logs after the cursor when there are any), sees every write the caller made (read your
writes: the tail reaches the head), and gives what the contract's own views give at that block.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit import rules, snapshot
from chain_client import Ledger
from chain_client.indexer import IndexedEvent, Indexer
from db import ledger_state
from db.index_store import SqlIndexStore
from db.store import Store


@dataclass(frozen=True)
class Head:
    """The block a read is at: the chain's newest, its time, and the events the index lacks."""

    block: int
    timestamp: int
    #: Last block the index holds (-1: none); events after it are in ``tail``.
    indexed_through: int
    tail: tuple[IndexedEvent, ...]

    def grant_tail(self) -> ledger_state.GrantTail:
        return ledger_state.GrantTail.of((e.event, e.args) for e in self.tail)


@dataclass(frozen=True)
class EmergencyView:
    """What ``emergencyState``, ``emergencyApprovers`` and ``emergencyActive`` answer at the head."""

    known: bool
    approvers: list[str]
    approvals: int
    cancelled: bool
    activated_at: int
    active: bool


class LedgerView:
    """Reads of the ledger's state for ``ledger``'s deployment on ``store``'s index."""

    def __init__(self, ledger: Ledger, store: Store, indexer: Indexer | None = None) -> None:
        self.ledger = ledger
        self.store = store
        self._indexer = indexer

    @functools.cached_property
    def indexer(self) -> Indexer:
        """The index's reader (the worker's follower writes it; this process only reads)."""
        return self._indexer or Indexer(ledger=self.ledger, store=SqlIndexStore(self.store))

    @functools.cached_property
    def threshold(self) -> int:
        """The emergency threshold (immutable in the contract: asked once per process)."""
        return self.ledger.emergency_threshold()

    def head(self) -> Head:
        """The newest block and the events after the index's cursor (at most two RPC calls)."""
        header = self.indexer.head_header()
        cursor = self.indexer.cursor()
        through = min(cursor.number, header.number) if cursor is not None else self.indexer.start_block - 1
        tail = self.indexer.read_events(through + 1, header.number) if through < header.number else []
        return Head(block=header.number, timestamp=header.timestamp, indexed_through=through, tail=tuple(tail))

    # ---- emergencies -----------------------------------------------------------------------------

    def emergencies(self, head: Head, emergency_ids: Iterable[str]) -> dict[str, EmergencyView]:
        """The state of each of ``emergency_ids`` (lower-case 0x hex) at ``head``: their events and
        those of their approvers' memberships, replayed through :mod:`audit.snapshot`."""
        ids = {e.lower() for e in emergency_ids}
        if not ids:
            return {}
        indexed = self._indexed(ids, head)
        tail = [e for e in head.tail if e.event in snapshot.EMERGENCY_EVENTS and e.emergency_id in ids]
        approvers = {a["approver"] for _b, _i, name, a, _t in indexed if name == "EmergencyApproved"}
        approvers |= {e.args["approver"] for e in tail if e.event == "EmergencyApproved"}
        with self.store.session() as session:
            members = ledger_state.events_of(
                session,
                names=snapshot.MEMBER_EVENTS,
                column="account",
                values=approvers,
                through=head.indexed_through,
            )
        tail += [e for e in head.tail if e.event in snapshot.MEMBER_EVENTS and e.account in approvers]
        events = sorted(
            [(b, i, name, args, stamp) for b, i, name, args, stamp in (*indexed, *members)]
            + [(e.block_number, e.log_index, e.event, e.args, e.block_timestamp) for e in tail],
            key=lambda event: (event[0], event[1]),
        )
        state = rules.State(threshold=self.threshold)
        stamps = self._timestamps(head, events)
        for block, _index, name, args, stamp in events:
            snapshot.apply_event(state, name, args, block=block, timestamp=stamp or stamps.get(block, 0))
        state.block, state.timestamp = head.block, head.timestamp
        return {emergency_id: _emergency(state, emergency_id) for emergency_id in ids}

    def _indexed(self, ids: set[str], head: Head) -> list[tuple[int, int, str, dict[str, Any], int | None]]:
        with self.store.session() as session:
            return ledger_state.events_of(
                session,
                names=snapshot.EMERGENCY_EVENTS,
                column="emergency_id",
                values=ids,
                through=head.indexed_through,
            )

    def _timestamps(self, head: Head, events: list[tuple[int, int, str, dict[str, Any], int | None]]) -> dict[int, int]:
        """Times of tail blocks whose logs came without one, where an approval may have activated an
        emergency (its ``activated_at``): one more RPC batch, only then."""
        missing = sorted({b for b, _i, name, _a, stamp in events if stamp is None and name == "EmergencyApproved"})
        if not missing:
            return {}
        known = {head.block: head.timestamp}
        wanted = [b for b in missing if b not in known]
        if wanted:
            known.update({n: h.timestamp for n, h in self.indexer.headers(wanted).items()})
        return known


def _emergency(state: rules.State, emergency_id: str) -> EmergencyView:
    emergency = state.emergencies.get(emergency_id)
    if emergency is None:
        return EmergencyView(False, [], 0, False, 0, False)
    terms = emergency.terms
    active = (
        not emergency.cancelled
        and emergency.activated_at != 0
        and terms.valid_from <= state.timestamp < terms.valid_until
        and rules.approved_now(state, emergency)
    )
    return EmergencyView(
        known=True,
        approvers=list(emergency.approvers),
        approvals=len(emergency.approvers),
        cancelled=emergency.cancelled,
        activated_at=emergency.activated_at,
        active=active,
    )
