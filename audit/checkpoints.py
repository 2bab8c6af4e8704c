"""Checkpoints of the release log: its RFC 9162 root anchored on chain."""

from __future__ import annotations

from chain_client import Ledger
from db.release_log import log_entries
from db.store import Store

from . import merkle


def anchor_checkpoint(ledger: Ledger, store: Store) -> tuple[int, bytes, str] | None:
    """Anchor the release log's RFC 9162 root on chain if the log grew since the last anchor.

    Returns ``(tree_size, root_hash, tx_hash)``, or None when there is nothing new.
    """
    entries = log_entries(store)
    anchored = ledger.checkpoints()
    if not entries or (anchored and anchored[-1].tree_size >= len(entries)):
        return None
    root = merkle.root(entries)
    receipt = ledger.anchor_checkpoint(len(entries), root)
    return len(entries), root, receipt.tx_hash
