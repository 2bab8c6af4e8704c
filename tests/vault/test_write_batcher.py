"""The database's group commit (db/batch.py): many writers, one transaction per batch, each write
succeeding or failing on its own; on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.batch import WriteBatcher
from db.models import GrantRecord
from db.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.sqlite(tmp_path / "vault.db")
    else:
        s = Store(request.getfixturevalue("pg_database"))
        with s.session() as session:
            session.query(GrantRecord).delete()
    yield s
    s.dispose()


def _record(grant_id: str, subject: str = "0x" + "11" * 20) -> GrantRecord:
    return GrantRecord(
        grant_id=grant_id,
        subject=subject,
        grantee="0x" + "22" * 20,
        terms="{}",
        tx_hash="0x" + "33" * 32,
        block_number=1,
        relayed_by=subject,
        created_at=1,
    )


def _gid(i: int) -> str:
    return "0x" + f"{i:064x}"


def test_concurrent_writes_all_land_in_fewer_transactions(store: Store) -> None:
    """128 threads, 8 writes each: every write committed exactly once, in far fewer transactions."""

    def writer(t: int) -> list[str]:
        done = []
        for k in range(8):
            gid = _gid(t * 1000 + k)

            def write(s: Session, gid: str = gid) -> str:
                s.add(_record(gid))
                return gid

            done.append(store.writer.run(write))
        return done

    with ThreadPoolExecutor(128) as pool:
        results = [gid for chunk in pool.map(writer, range(128)) for gid in chunk]
    assert len(results) == len(set(results)) == 1024
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(GrantRecord)) == 1024
    assert store.writer.writes == 1024
    assert store.writer.batches < 1024 / 2, f"{store.writer.batches} transactions for 1024 writes: nothing grouped"


def test_a_failing_write_fails_alone(store: Store) -> None:
    """A write that raises (here: a duplicate key) gets its own error; the batch's others commit."""
    with store.session() as s:
        s.add(_record(_gid(7)))
    gate = threading.Event()

    def block(_s: Session) -> None:  # holds the writer so the next writes form one batch
        gate.wait(5)

    first = store.writer.submit(block)
    futures = []
    for i in range(5, 10):  # 7 already exists

        def write(s: Session, i: int = i) -> int:
            s.add(_record(_gid(i)))
            return i

        futures.append(store.writer.submit(write))
    gate.set()
    first.result(10)
    outcomes = {}
    for f in futures:
        try:
            outcomes[f.result(10)] = "ok"
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[type(exc).__name__] = "error"
    assert sorted(k for k, v in outcomes.items() if v == "ok") == [5, 6, 8, 9]
    assert outcomes.get("IntegrityError") == "error"
    with store.session() as s:
        ids = set(s.scalars(select(GrantRecord.grant_id)))
    assert ids == {_gid(i) for i in range(5, 10)}


def test_stopped_writer_refuses(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "vault.db")
    batcher = WriteBatcher(store)
    assert batcher.run(lambda s: 42) == 42
    started = time.monotonic()
    batcher.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit(lambda s: 1)
    store.dispose()


def test_a_batch_reads_what_its_writes_look_up_once_and_inserts_in_one_flush(store: Store) -> None:
    """64 writes that each look their row up (the release intents' and grant terms' way): one
    SELECT for the batch, one INSERT statement (rows already there are found, not inserted
    again), and two writes of one key in the batch make one row."""
    from sqlalchemy import event

    from db.batch import looks_up, lookup, remember

    with store.session() as s:
        s.add(_record(_gid(3)))
    gate = threading.Event()
    first = store.writer.submit(lambda _s: gate.wait(5))  # holds the writer: the next writes form one batch
    keys = [*range(64), 10]  # 3 exists already; 10 twice

    def writer(i: int):  # type: ignore[no-untyped-def]
        def write(s: Session) -> str:
            row = lookup(s, GrantRecord, _gid(i))
            if row is not None:
                return "found"
            row = _record(_gid(i))
            s.add(row)
            remember(s, GrantRecord, _gid(i), row)
            return "added"

        return looks_up(write, GrantRecord, _gid(i))

    futures = [store.writer.submit(writer(i)) for i in keys]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "grant_records" in statement or "grants" in statement:
            statements.append(statement.split()[0].upper())

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        gate.set()
        first.result(10)
        outcomes = [f.result(10) for f in futures]
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert outcomes.count("found") == 2 and outcomes[3] == "found" and outcomes[-1] == "found"
    assert outcomes.count("added") == 63
    assert statements == ["SELECT", "INSERT"], statements
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(GrantRecord)) == 64
