"""The process's group commit of ledger calls (grants; see :mod:`chain_client.relayer.group`),
created on first use with the ledger's relayer account (sharing its nonces in this process)."""

from __future__ import annotations

import threading

from chain_client import Ledger
from chain_client.relayer import PIPELINE_DEPTH, RawSender
from chain_client.relayer.group import CallGroup
from db.store import Store


class CallGroups:
    """Holds the one :class:`CallGroup` of this process, built when a route first needs it."""

    def __init__(self, ledger: Ledger, store: Store | None = None, *, depth: int = PIPELINE_DEPTH) -> None:
        """``store``: where the group's signed transactions are kept (vault/reconcile.py);
        ``depth``: multicalls in flight at once."""
        self._ledger = ledger
        self._store = store
        self._depth = depth
        self._group: CallGroup | None = None
        self._lock = threading.Lock()

    def get(self) -> CallGroup:
        with self._lock:
            if self._group is None:
                ledger, relay = self._ledger, self._ledger.relay
                self._group = CallGroup(
                    sender=RawSender(
                        w3=ledger.w3, account=relay.account, chain_id=ledger.chain_id, nonces=relay.nonces
                    ),
                    ledger_address=ledger.consent.address,
                    abi=ledger.consent.abi,  # type: ignore[arg-type]
                    decoder=ledger.decoder,
                    depth=self._depth,
                )
                if self._store is not None:
                    from vault.reconcile import keep_transactions

                    keep_transactions(self._group, self._store)
            return self._group

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._group is not None:
                self._group.stop(timeout)
