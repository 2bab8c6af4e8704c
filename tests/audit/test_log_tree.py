"""The cached release-log tree: it reads only new entries, equals a tree built from scratch, and
is rebuilt when the log changed under it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import keccak
from sqlalchemy import update

from audit import merkle
from audit.log_tree import LogTree
from db.models import ReleaseLogRow
from db.store import Store
from tests.conftest import create_pg_database, drop_pg_database


def _append(store: Store, start: int, count: int) -> None:
    with store.session() as s:
        for i in range(start, start + count):
            s.add(
                ReleaseLogRow(
                    idx=i,
                    release_id=f"0x{i:064x}",
                    subject="0x" + "1" * 40,
                    grantee="0x" + "2" * 40,
                    entry=b"entry %d" % i,
                    created_at=0,
                    tx_hash="0x" + "3" * 64,
                )
            )


def test_the_cached_tree_follows_the_log(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import audit.log_tree as module

    store = Store.sqlite(tmp_path / "log.db")
    reads: list[tuple[int, int | None]] = []
    real = module.log_entries
    monkeypatch.setattr(
        module,
        "log_entries",
        lambda st, *, start=0, end=None: reads.append((start, end)) or real(st, start=start, end=end),
    )
    tree = LogTree(store)
    _append(store, 0, 7)
    assert tree.root() == merkle.MerkleLog.from_leaves([b"entry %d" % i for i in range(7)]).root()
    _append(store, 7, 6)
    reads.clear()
    root, path = tree.inclusion_proof(3, 13)
    assert reads == [(6, 7), (7, None)]  # the last cached leaf (6) alone checked, then only the new entries read
    scratch = merkle.MerkleLog.from_leaves([b"entry %d" % i for i in range(13)])
    assert (root, path) == (scratch.root(13), scratch.inclusion_proof(3, 13))
    assert merkle.verify_inclusion(b"entry 3", 3, 13, path, root)
    first, second, proof = tree.consistency_proof(5, 13)
    assert merkle.verify_consistency(5, 13, first, second, proof)
    with store.session() as s:  # the log changed under the tree: it is rebuilt, never stale
        s.execute(update(ReleaseLogRow).where(ReleaseLogRow.idx == 12).values(entry=b"rewritten"))
    rebuilt = merkle.MerkleLog.from_leaves([b"entry %d" % i for i in range(12)] + [b"rewritten"])
    assert tree.root() == rebuilt.root()
    store.dispose()


def test_proofs_and_roots_of_an_earlier_size(tmp_path: Path) -> None:
    """Sizes smaller than the log: each answer is of the size asked for, not of the whole log."""
    store = Store.sqlite(tmp_path / "log.db")
    _append(store, 0, 13)
    tree = LogTree(store)
    scratch = merkle.MerkleLog.from_leaves([b"entry %d" % i for i in range(13)])
    assert tree.size() == 13
    assert tree.root(5) == scratch.root(5) != scratch.root()
    assert tree.inclusion_proof(3, 8) == (scratch.root(8), scratch.inclusion_proof(3, 8))
    assert tree.consistency_proof(5, 8) == (scratch.root(5), scratch.root(8), scratch.consistency_proof(5, 8))
    store.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_release_log_reads(tmp_path: Path, database: str) -> None:
    """db.release_log: entries by index range, in index order whatever the insertion order (on
    PostgreSQL a scan returns them as inserted); the size; the canonical bytes and their parsing;
    the release id."""
    from db.release_log import LOG_PREFIX, LogEntry, log_entries, log_size, release_id

    url = create_pg_database("qcl_log") if database == "postgresql" else None
    store = Store(url) if url else Store.sqlite(tmp_path / "log.db")
    assert log_size(store) == 0 and log_entries(store) == []
    for i in (2, 0, 3, 1):  # inserted out of order
        _append(store, i, 1)
    assert log_size(store) == 4
    assert log_entries(store) == [b"entry 0", b"entry 1", b"entry 2", b"entry 3"]
    assert log_entries(store, start=1, end=3) == [b"entry 1", b"entry 2"]
    assert log_entries(store, start=2) == [b"entry 2", b"entry 3"]
    store.dispose()
    if url:
        drop_pg_database(url)
    entry = LogEntry(
        index=7,
        release_id="0x" + "aa" * 32,
        kind="grant",
        authority="0x" + "bb" * 32,
        subject="0x" + "11" * 20,
        grantee="0x" + "22" * 20,
        resource="0x" + "cc" * 32,
        request_id="0x" + "dd" * 32,
        document_id="0x" + "ee" * 32,
        commitment="0x" + "ff" * 32,
        tx_hash="0x" + "33" * 32,
        block_number=12,
        released_at=1_700_000_000,
    )
    raw = entry.canonical()
    assert raw.startswith(b"qcl-release-log/1\n") and raw.startswith(LOG_PREFIX)
    assert b" " not in raw  # compact
    keys = list(json.loads(raw[len(LOG_PREFIX) :]))
    assert keys == sorted(keys) and keys[0] == "authority"  # sorted, not in declaration order
    assert LogEntry.parse(raw) == entry
    with pytest.raises(ValueError, match=r"^not a release log entry$"):
        LogEntry.parse(raw[len(LOG_PREFIX) :])
    grantee = "0x" + "22" * 20
    request = bytes(range(32))
    expected = "0x" + keccak(bytes.fromhex(grantee[2:]) + request).hex()
    assert release_id(grantee, request) == release_id(grantee.upper().replace("0X", "0x"), request) == expected
