"""Checkpoints of the release log: its RFC 9162 root anchored on chain."""

from __future__ import annotations

from chain_client import Ledger
from db.store import Store

from .log_tree import LogTree


def anchor_checkpoint(ledger: Ledger, store: Store, tree: LogTree | None = None) -> tuple[int, bytes, str] | None:
    """Anchor the release log's RFC 9162 root on chain if the log grew since the last anchor.

    ``tree``: the process's cached tree (only new entries are read and hashed). Returns
    ``(tree_size, root_hash, tx_hash)``, or None when there is nothing new.
    """
    tree = tree or LogTree(store)
    size = tree.size()
    last = ledger.last_checkpoint()
    if not size or (last is not None and last.tree_size >= size):
        return None
    root = tree.root(size)
    receipt = ledger.anchor_checkpoint(size, root)
    return size, root, receipt.tx_hash
