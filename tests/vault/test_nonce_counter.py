"""db/nonces.py without a chain: a stand-in node answers the pending count. Where the shared count
starts (the node's pending count, asked once, the account in EIP-55 form), what a reset drops (that
account's row only), and the race of two processes starting the row at once (taken from the other
process's row; three races in a row give up)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import event, insert

from db.models import RelayNonce
from db.nonces import SharedNonces
from db.store import Store


class PendingCount:
    """``w3.eth.get_transaction_count``: a fixed pending count, the questions recorded; with
    ``races``, another process starts the account's row (at ``racer_next``) each time it is asked."""

    def __init__(self, store: Store, pending: int) -> None:
        self.eth = self
        self.store = store
        self.pending = pending
        self.asked: list[tuple[str, str]] = []
        self.races = 0
        self.racer_next = 100

    def get_transaction_count(self, address: str, block: str) -> int:
        self.asked.append((address, block))
        if self.races:
            self.races -= 1
            with self.store.engine.begin() as conn:
                conn.execute(insert(RelayNonce).values(account=address, next=self.racer_next))
        return self.pending


def test_the_count_starts_from_the_nodes_pending_count_and_is_shared(store: Store) -> None:
    account = Account.create().address
    node = PendingCount(store, 5)
    first = SharedNonces(store, node, account)
    second = SharedNonces(store, node, account.lower())  # the same account, however it is spelt
    other = SharedNonces(store, PendingCount(store, 50), Account.create().address)
    assert [first.take(), second.take(), other.take(), first.take()] == [5, 6, 50, 7]
    assert node.asked == [(account, "pending")]  # once, in EIP-55 form; then the row counts
    node.pending = 3
    second.reset()
    assert node.asked == [(account, "pending")]  # a reset asks nothing by itself
    assert [first.take(), second.take()] == [3, 4]
    assert node.asked == [(account, "pending")] * 2
    assert other.take() == 51  # another account's row is not reset


def test_a_row_another_process_started_meanwhile_is_taken_from(store: Store) -> None:
    account = Account.create().address
    node = PendingCount(store, 5)
    node.races = 1  # between this process's update (no row yet) and its insert
    assert SharedNonces(store, node, account).take() == 100
    assert SharedNonces(store, node, account).take() == 101
    assert len(node.asked) == 1


def test_a_nonce_is_taken_after_two_races_not_after_three(store: Store) -> None:
    """Each try: the update finds no row (another process reset it), the node is asked, and another
    process starts the row first. Two such races in a row are survived, three give up."""
    account = Account.create().address
    node = PendingCount(store, 5)
    resets = [0]

    def reset_before_update(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RELAY_NONCES") and resets[0]:
            resets[0] -= 1
            cursor.execute("DELETE FROM relay_nonces")

    event.listen(store.engine, "before_cursor_execute", reset_before_update)
    try:
        node.races, resets[0] = 2, 2
        assert SharedNonces(store, node, account).take() == 100
        assert len(node.asked) == 2
        node.races, resets[0] = 3, 3
        with pytest.raises(RuntimeError, match=f"^could not take a nonce for {account}$"):
            SharedNonces(store, node, account).take()
        assert len(node.asked) == 5
    finally:
        event.remove(store.engine, "before_cursor_execute", reset_before_update)
