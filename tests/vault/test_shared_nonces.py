"""Several processes sending with one account (``qcl serve --workers N`` relaying grants) take
their nonces from the database (db/nonces.py): never the same nonce twice, none skipped."""

from __future__ import annotations

import threading
from collections import Counter

from eth_account import Account

from chain_client import Node
from chain_client.relayer import RawSender, SendRefused
from db.nonces import SharedNonces
from db.store import Store


def test_senders_of_one_account_never_collide(store: Store, anvil: Node) -> None:
    account = Account.create()
    anvil.fund(account.address)
    # one sender per "process", each with a counter of its own over the same row
    senders = [
        RawSender(
            w3=anvil.w3,
            account=account,
            chain_id=anvil.w3.eth.chain_id,
            nonces=SharedNonces(store, anvil.w3, account.address),
        )
        for _ in range(3)
    ]
    sent: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def send(sender: RawSender) -> None:
        for _ in range(20):
            tx = sender.sign(account.address, b"", 21_000)
            try:
                sender.send(tx)
            except SendRefused as exc:
                with lock:
                    refused.append(str(exc))
                continue
            with lock:
                sent.append(tx.nonce)

    threads = [threading.Thread(target=send, args=(s,)) for s in senders for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == []
    assert sorted(sent) == list(range(120)), [n for n, c in Counter(sent).items() if c > 1]
    assert anvil.w3.eth.get_transaction_count(account.address, "pending") == 120


def test_a_reset_starts_again_from_the_node(store: Store, anvil: Node) -> None:
    account = Account.create()
    anvil.fund(account.address)
    first, second = (SharedNonces(store, anvil.w3, account.address) for _ in range(2))
    assert [first.take(), second.take(), first.take()] == [0, 1, 2]
    sender = RawSender(w3=anvil.w3, account=account, chain_id=anvil.w3.eth.chain_id, nonces=first)
    sender.send(sender.sign(account.address, b"", 21_000, nonce=0))  # only nonce 0 reaches the node
    second.reset()  # e.g. after a send error in another process
    assert first.take() == 1  # the node's pending count, for every process
    assert second.take() == 2
