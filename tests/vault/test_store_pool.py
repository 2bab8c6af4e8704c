"""The store's connection pool hands out the most recently returned connection first (LIFO): after
a burst opened many, a steady load keeps using a few hot ones, and the others' statement caches
(SQLite's own heap, outside Python's) stop growing (BENCHMARKS.md, soak)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from db.store import Store


def test_after_a_burst_a_steady_load_reuses_one_connection(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "pool.db")
    try:
        burst = [store.engine.connect() for _ in range(6)]  # six at once
        for connection in burst:
            connection.execute(text("SELECT 1"))
        for connection in burst:
            connection.close()
        used = set()
        for _ in range(12):  # one at a time
            with store.engine.connect() as connection:
                used.add(id(connection.connection.dbapi_connection))
        assert len(used) == 1  # first in, first out would have cycled through all six
    finally:
        store.dispose()
