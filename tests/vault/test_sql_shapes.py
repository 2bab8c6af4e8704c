"""Queries over lists of values render a bounded number of SQL texts (db/shapes.py), on SQLite and
on PostgreSQL.

Each distinct text is a prepared statement that SQLite keeps on every pooled connection (128 per
connection), so texts that vary with a list's length filled the API process's memory over a soak
(BENCHMARKS.md, soak): the intent watcher's read of the waiting callers, the write batcher's read
ahead and a grant's read with the chain's tail each made one text per length."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from db import ledger_state
from db.batch import _prefetch, looks_up, lookup
from db.models import GrantRecord, ReleaseIntent
from db.shapes import bucket, padded, padded_cases
from db.store import Store
from tests.vault.test_intent_watcher import _id, _intent
from vault.releases import ReleaseDesk


@contextmanager
def texts(store: Store, table: str) -> Iterator[set[str]]:
    """The distinct SELECT texts on ``table`` sent while the block runs."""
    seen: set[str] = set()

    def sent(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.add(statement)

    event.listen(store.engine, "before_cursor_execute", sent)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", sent)


def test_padding_rounds_up_to_a_power_of_two() -> None:
    assert [bucket(n) for n in (0, 1, 2, 3, 4, 5, 100, 500)] == [0, 1, 2, 4, 4, 8, 128, 512]
    assert padded([]) == []
    assert padded(["a", "b", "c"]) == ["a", "b", "c", "c"]
    assert len(padded(range(100))) == 128 and set(padded(range(100))) == set(range(100))
    cases = padded_cases({"0xa": 1, "0xb": 2, "0xc": 3}, 0)
    assert len(cases) == 4 and cases["0xa"] == 1 and cases["0xc"] == 3
    assert all(k.startswith("~") and v == 0 for k, v in cases.items() if k not in ("0xa", "0xb", "0xc"))


def test_the_intent_watcher_reads_any_number_of_waiters_in_few_texts(store: Store) -> None:
    """1 to 100 waiting callers: at most 8 texts (1, 2, 4 … 128), not one per number; and every
    final intent is still found (a third of them here)."""
    with store.session() as s:
        s.add_all([_intent(i) for i in range(100)])
        s.flush()
        final = [_id(i) for i in range(0, 100, 3)]
        s.execute(update(ReleaseIntent).where(ReleaseIntent.id.in_(final)).values(status="recorded"))
    desk = ReleaseDesk(store=store)

    async def run() -> list[int]:
        settled = []
        with texts(store, "release_intents") as seen:
            for n in range(1, 101):
                futures = [desk.waiters.register(_id(i)) for i in range(n)]
                settled.append(desk.watcher.check())
                for i, future in enumerate(futures):
                    desk.waiters.discard(_id(i), future)
        assert len(seen) <= 8, len(seen)
        return settled

    try:
        settled = asyncio.run(run())
    finally:
        desk.watcher.stop()
    assert settled == [len(range(0, n, 3)) for n in range(1, 101)]


def _grant(i: int) -> GrantRecord:
    return GrantRecord(
        grant_id=_id(i),
        subject="0x" + "11" * 20,
        grantee="0x" + "22" * 20,
        terms="{}",
        tx_hash="0x" + "33" * 32,
        block_number=1,
        relayed_by="0x" + "11" * 20,
        created_at=1,
        valid_until=2**40,
    )


def test_the_batchers_read_ahead_is_one_of_few_texts(store: Store) -> None:
    with store.session() as s:
        s.add_all([_grant(i) for i in range(0, 100, 2)])
    with texts(store, "grants") as seen, store.session() as s:
        for n in range(1, 101):
            writes = [looks_up(lambda _s: None, GrantRecord, _id(i)) for i in range(n)]
            _prefetch(s, writes)
            found = {i for i in range(n) if lookup(s, GrantRecord, _id(i)) is not None}
            assert found == set(range(0, n, 2))
    assert len(seen) <= 8, len(seen)


def test_a_grant_read_is_one_of_few_texts_whatever_the_chains_tail(store: Store) -> None:
    """The tail (events past the index) names up to 60 other grants: the read of one grant renders
    the same few texts, and still counts the tail's uses of that grant."""
    with store.session() as s:
        s.add_all([_grant(1000 + i) for i in range(61)])
    with texts(store, "grants") as seen:
        for n in range(1, 61):
            tail = ledger_state.GrantTail.of(
                [("GrantRecorded", {"grantId": _id(1000 + i)}) for i in range(n + 1)]
                + [("ReleaseRecorded", {"grantId": _id(1000 + i)}) for i in range(n + 1) for _ in range(i % 3)]
            )
            with store.session() as s:
                rows = _read(s, _id(1000 + n), tail)
            assert [(r.record.grant_id, r.uses, r.status) for r in rows] == [(_id(1000 + n), n % 3, "active")]
    assert len(seen) <= 4, len(seen)


def _read(session: Session, grant_id: str, tail: ledger_state.GrantTail) -> list[ledger_state.GrantStateRow]:
    rows, total = ledger_state.grant_page(
        session,
        ledger_state.GrantFilter(grant_id=grant_id),
        through=0,
        timestamp=1,
        tail=tail,
        offset=0,
        limit=1,
    )
    assert total == len(rows)
    return rows
