"""The release log's RFC 9162 Merkle tree, kept per process and extended with new entries only.

Proofs and checkpoints then cost O(log² n) node hashes plus reading the entries appended since the
last call, instead of reading and hashing the whole log each time. The log is append-only; should
it change under the cached tree all the same (a restore, a repair), the last cached leaf no longer
matches the database and the tree is rebuilt.
"""

from __future__ import annotations

import threading

from db.release_log import log_entries
from db.store import Store

from .merkle import MerkleLog, leaf_hash


class LogTree:
    """The tree of ``store``'s release log. Thread-safe: every read syncs, then answers under a lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tree = MerkleLog()
        self._lock = threading.Lock()

    def _sync(self) -> MerkleLog:
        tree = self._tree
        if tree.size:
            last = log_entries(self.store, start=tree.size - 1, end=tree.size)
            if not last or leaf_hash(last[0]) != tree.leaf_hash(tree.size - 1):
                tree = self._tree = MerkleLog()  # the log changed under us: rebuild
        tree.extend(leaf_hash(entry) for entry in log_entries(self.store, start=tree.size))
        return tree

    def size(self) -> int:
        with self._lock:
            return self._sync().size

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            return self._sync().root(size)

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The root of the first ``size`` entries and the audit path of entry ``index``."""
        with self._lock:
            tree = self._sync()
            return tree.root(size), tree.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> tuple[bytes, bytes, list[bytes]]:
        """The roots of both sizes and the RFC 9162 consistency proof between them."""
        with self._lock:
            tree = self._sync()
            return tree.root(first), tree.root(second), tree.consistency_proof(first, second)
