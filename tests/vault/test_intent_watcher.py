"""An API process whose releases the worker records (``qcl serve`` beside ``qcl worker``) learns
the outcomes with ONE query per interval for all its waiting callers (vault/releases.py
``IntentWatcher``), not one query per caller and poll."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

from sqlalchemy import event, update

from db.lookup import CHUNK
from db.models import ReleaseIntent
from db.store import Store
from vault.releases import Intent, ReleaseDesk

#: Ids of this module's intents (the PostgreSQL database is shared by the module's tests).
BASE = secrets.randbits(128) << 64


def _id(i: int) -> str:
    return f"0x{BASE + i:064x}"


def _intent(i: int) -> ReleaseIntent:
    return ReleaseIntent(
        id=_id(i),
        kind="grant",
        authority="0x" + "11" * 32,
        grantee="0x" + "22" * 20,
        subject="0x" + "33" * 20,
        resource="0x" + "44" * 32,
        request_id=_id(i),
        deadline="0",
        signature="0x",
        body_hash="0x" + "55" * 32,
        terms="{}",
        document_id="0x" + "66" * 32,
        status="pending",
        attempts=0,
        created_at=time.time(),
        updated_at=time.time(),
    )


def _callers_wait_for_a_block(
    store: Store, first: int, count: int, block_seconds: float
) -> tuple[list[Intent], list[str], float]:
    """``count`` callers wait for their pending intents (ids from ``first``) while the worker, in
    another process, records them all after ``block_seconds``. Returns the outcomes, the reads of
    ``release_intents`` meanwhile, and how long the callers waited."""
    with store.session() as s:
        s.add_all([_intent(first + i) for i in range(count)])
    with store.session() as s:
        pending = [Intent.of(s.get(ReleaseIntent, _id(first + i))) for i in range(count)]  # type: ignore[arg-type]
    desk = ReleaseDesk(store=store)
    assert not desk.local  # no relayer in this process
    reads: list[str] = []

    def counted(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "release_intents" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    def record_later() -> None:  # the worker settles every intent at once
        time.sleep(block_seconds)
        with store.session() as s:
            s.execute(
                update(ReleaseIntent)
                .where(ReleaseIntent.id.in_([i.id for i in pending]))
                .values(status="recorded", log_index=7)
            )

    async def run() -> tuple[list[Intent], float]:
        event.listen(store.engine, "before_cursor_execute", counted)
        threading.Thread(target=record_later).start()
        started = time.monotonic()
        outcomes = await asyncio.gather(*(desk.wait(i.id, timeout=10, known=i) for i in pending))
        waited = time.monotonic() - started
        event.remove(store.engine, "before_cursor_execute", counted)
        return outcomes, waited

    try:
        outcomes, waited = asyncio.run(run())
    finally:
        desk.watcher.stop()
    return outcomes, reads, waited


def test_waiting_callers_are_woken_by_one_query_per_interval(store: Store) -> None:
    outcomes, reads, waited = _callers_wait_for_a_block(store, 0, 100, 0.4)
    assert waited < 0.95  # woken by the watcher, not by the callers' own re-reads
    assert {(o.status, o.log_index) for o in outcomes} == {("recorded", 7)}
    # about one query per 50 ms while the callers wait (0.4 s), not 100 callers times 8 polls
    assert 3 <= len(reads) <= 20, len(reads)


def test_callers_waiting_for_a_slow_block_do_not_read_their_intents_themselves(store: Store) -> None:
    """A block that takes 2.5 s: the watcher's one query per 50 ms answers every caller; none of
    the 100 callers reads its own intent meanwhile (each did once a second: 200 more reads)."""
    outcomes, reads, _ = _callers_wait_for_a_block(store, 5000, 100, 2.5)
    assert {o.status for o in outcomes} == {"recorded"}
    assert len(reads) <= 2.5 / 0.05 * 1.5 + 5, len(reads)  # the watcher's polls only


def test_the_watcher_notifies_final_intents_only(store: Store) -> None:
    with store.session() as s:
        s.add_all([_intent(1000 + i) for i in range(3)])
        s.flush()
        s.execute(update(ReleaseIntent).where(ReleaseIntent.id == _id(1001)).values(status="rejected"))
    desk = ReleaseDesk(store=store)

    async def run() -> list[bool]:
        futures = [desk.waiters.register(_id(1000 + i)) for i in range(3)]
        assert desk.watcher.check() == 1
        await asyncio.sleep(0.01)
        return [f.done() for f in futures]

    assert asyncio.run(run()) == [False, True, False]


def test_the_watcher_reads_more_waiting_intents_than_one_in_list_holds(store: Store) -> None:
    count = 2 * CHUNK + 3  # three IN lists
    with store.session() as s:
        s.add_all([_intent(2000 + i) for i in range(count)])
        s.flush()
        final = [_id(2000 + i) for i in range(0, count, 2)]
        s.execute(update(ReleaseIntent).where(ReleaseIntent.id.in_(final)).values(status="recorded"))
    desk = ReleaseDesk(store=store)
    reads: list[str] = []

    def counted(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "release_intents" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    async def run() -> list[bool]:
        futures = [desk.waiters.register(_id(2000 + i)) for i in range(count)]
        event.listen(store.engine, "before_cursor_execute", counted)
        try:
            assert desk.watcher.check() == len(final)
        finally:
            event.remove(store.engine, "before_cursor_execute", counted)
        await asyncio.sleep(0.01)
        return [f.done() for f in futures]

    assert asyncio.run(run()) == [i % 2 == 0 for i in range(count)]
    assert len(reads) == 3
    assert {desk.watcher.take(i).status for i in final} == {"recorded"}  # type: ignore[union-attr]
