"""One account's nonces shared by several processes through the database.

The API processes of ``qcl serve --workers N`` all relay grants, revocations and pauses with the
deployment's relayer account. Each process keeping its own count (``chain_client.NonceManager``)
would sign two transactions with the same nonce whenever two processes send within one block: the
node refuses the second, and its callers get 503. Here a nonce is taken by one atomic
``UPDATE … RETURNING`` of a row per account, so every process gets a different one. The row is
started from the node's pending count, and dropped by :meth:`SharedNonces.reset` (after any send
error), so the next take asks the node again, as the local counter does.

A nonce taken by a process that then fails to send it leaves a gap the node queues later
transactions behind; the relayer's :meth:`chain_client.relayer.RawSender.heal` fills it (with the
stored bytes of that nonce, which every process writes to ``relayer_transactions`` before sending).
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from .models import RelayNonce
from .store import Store


class SharedNonces:
    """:class:`chain_client.NonceManager`'s interface, the count kept in ``relay_nonces``."""

    def __init__(self, store: Store, w3: Any, address: str) -> None:
        self._store = store
        self._w3 = w3
        self._address = to_checksum_address(address)

    def take(self) -> int:
        for _ in range(3):
            with self._store.engine.begin() as conn:
                taken = conn.execute(
                    update(RelayNonce)
                    .where(RelayNonce.account == self._address)
                    .values(next=RelayNonce.next + 1)
                    .returning(RelayNonce.next)
                ).scalar()
            if taken is not None:
                return int(taken) - 1
            pending = int(self._w3.eth.get_transaction_count(self._address, "pending"))
            try:
                with self._store.engine.begin() as conn:
                    conn.execute(insert(RelayNonce).values(account=self._address, next=pending + 1))
                return pending
            except IntegrityError:
                continue  # another process started the row meanwhile: take from it
        raise RuntimeError(f"could not take a nonce for {self._address}")  # pragma: no cover - 3 races in a row

    def reset(self) -> None:
        """Forget the shared count; the next :meth:`take` (in any process) asks the node again."""
        with self._store.engine.begin() as conn:
            conn.execute(delete(RelayNonce).where(RelayNonce.account == self._address))
