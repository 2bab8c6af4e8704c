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
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from audit import rules, snapshot
from chain_client import Ledger
from chain_client.indexer import IndexedEvent, Indexer
from db import ledger_state
from db.index_store import SqlIndexStore
from db.store import Store

T = TypeVar("T")


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


class SharedFetch(Generic[T]):
    """Calls of :meth:`get` from many threads share calls of ``fetch``, each caller the result of a
    call that started after its own call began (linearisable: never a result older than the caller).

    While a fetch runs, the callers that arrive wait for it to end, then one of them starts the next
    fetch for all of them: at most two fetches' time for each, however many wait.
    """

    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch
        self._changed = threading.Condition()
        self._started = 0  # fetches started so far; each one's number is its generation
        self._running = False
        self._last: tuple[int, T] | None = None  # generation and result of the newest fetch that succeeded
        self._failed = 0  # generation of the newest fetch that raised

    def get(self) -> T:
        with self._changed:
            wanted = self._started + 1  # the first fetch to start from now on
            while True:
                if self._last is not None and self._last[0] >= wanted:
                    return self._last[1]
                if self._failed >= wanted:
                    generation = 0  # that fetch raised: fetch alone, as if nobody had shared
                    break
                if not self._running:
                    self._started += 1
                    generation = self._started
                    self._running = True
                    break
                self._changed.wait()
        if not generation:
            return self._fetch()
        try:
            result = self._fetch()
        except BaseException:
            with self._changed:
                self._failed = max(self._failed, generation)
                self._running = False
                self._changed.notify_all()
            raise
        with self._changed:
            if self._last is None or self._last[0] < generation:
                self._last = (generation, result)
            self._running = False
            self._changed.notify_all()
        return result


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
        """The newest block and the events after the index's cursor (at most two RPC calls).

        Concurrent reads share one such fetch, but only one that began after they were called (a
        caller never gets a head read before its call, so it still sees its own writes): under load
        a burst of status reads costs one header read, one cursor read and one ``eth_getLogs``
        between them instead of each. A fetch that fails is not shared: its waiters read alone."""
        return self._heads.get()

    @functools.cached_property
    def _heads(self) -> SharedFetch[Head]:
        return SharedFetch(self._read_head)

    def _read_head(self) -> Head:
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
