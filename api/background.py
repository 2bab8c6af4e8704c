"""Background work of an API process: anchoring release-log checkpoints and pending tombstones,
and following the chain into the index."""

from __future__ import annotations

import logging
import threading
import time

from chain_client import ChainError
from chain_client.indexer import Indexer
from vault import Vault, VaultError

log = logging.getLogger("qcl.background")


class CheckpointAnchor:
    """Anchors the release log's root every ``every`` entries or ``interval`` seconds after growth.

    One thread; chain failures are logged and retried on the next tick, so a down chain delays
    checkpoints but loses nothing (the log itself is in the database).
    """

    def __init__(self, vault: Vault, *, interval: float, every: int, tick: float = 0.5) -> None:
        self._vault = vault
        self._interval = interval
        self._every = every
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qcl-checkpoints", daemon=True)
        self._anchored_size: int | None = None
        self._grew_at: float | None = None
        self.anchored = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.step()
            except (ChainError, VaultError) as exc:
                log.warning("checkpoint not anchored yet: %s", exc)
            except Exception:
                log.exception("checkpoint thread failed")

    def step(self, now: float | None = None) -> bool:
        """Anchor if due; True when a checkpoint was anchored."""
        now = time.monotonic() if now is None else now
        size = self._vault.log_size()
        if self._anchored_size is None:
            anchored = self._vault.ledger.checkpoints()
            self._anchored_size = anchored[-1].tree_size if anchored else 0
        if size <= self._anchored_size:
            self._grew_at = None
            return False
        if self._grew_at is None:
            self._grew_at = now
        if size - self._anchored_size < self._every and now - self._grew_at < self._interval:
            return False
        self._vault.anchor_pending_tombstones()
        result = self._vault.anchor_checkpoint()
        self._anchored_size = result[0] if result else size
        self._grew_at = None
        self.anchored += result is not None
        return result is not None


class IndexFollower:
    """Runs :meth:`chain_client.indexer.Indexer.run_forever` in a thread of the API process.

    The audit resources also bring the index up to date before they read it, so the thread only
    keeps that catch-up short; an unreachable chain is logged and retried at the next interval.
    """

    def __init__(self, indexer: Indexer, *, interval: float) -> None:
        self.indexer = indexer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qcl-indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        self.indexer.run_forever(self._interval, self._stop)
