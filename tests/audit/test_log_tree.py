"""The cached release-log tree: it reads only new entries, equals a tree built from scratch, and
is rebuilt when the log changed under it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from audit import merkle
from audit.log_tree import LogTree
from db.models import ReleaseLogRow
from db.store import Store


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
    reads: list[int] = []
    real = module.log_entries
    monkeypatch.setattr(
        module, "log_entries", lambda st, *, start=0, end=None: reads.append(start) or real(st, start=start, end=end)
    )
    tree = LogTree(store)
    _append(store, 0, 7)
    assert tree.root() == merkle.MerkleLog.from_leaves([b"entry %d" % i for i in range(7)]).root()
    _append(store, 7, 6)
    reads.clear()
    root, path = tree.inclusion_proof(3, 13)
    assert reads == [6, 7]  # the last cached leaf (6) checked, then only the new entries read
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
