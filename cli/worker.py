"""``qcl worker``: a deployment's background work in one process type, one active at a time.

The release relayer (the release log's one writer), the chain indexer's follower and checkpoint
anchoring. A second worker started beside the active one stands by until the first one's lock is
released (it exits or dies): a PostgreSQL advisory lock, or on SQLite a lock file in the data
directory, so two processes never write the release log or anchor at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from api.background import CheckpointAnchor, IndexFollower, VerificationJobs, stop_all, verification_runner
from api.heap import settle_heap
from api.notifications import EventClocks, WebhookDeliverer
from api.runtime import bootstrap, open_node, open_vault, release_relayer
from api.settings import Settings
from chain_client import ChainError
from chain_client.indexer import Indexer
from db.errors import DatabaseError
from db.index_store import SqlIndexStore
from db.store import Store
from vault import VaultError

from ._console import fail, say

#: The advisory lock key of the active worker ("QCLW").
_LOCK_KEY = 0x51434C57


@contextlib.contextmanager
def active_lock(store: Store, data_dir: Path, stop: threading.Event, *, retry: float = 2.0) -> Iterator[bool]:
    """Hold the deployment's worker lock while the block runs (False: stopped before getting it)."""
    if store.url.startswith("postgresql"):
        with store.engine.connect() as connection:
            while not stop.is_set():
                if connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar():
                    try:
                        yield True
                    finally:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                    return
                say("another worker is active; standing by")
                stop.wait(retry)
        yield False
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "worker.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while not stop.is_set():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("another worker is active; standing by")
                stop.wait(retry)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
            return
        yield False
    finally:
        os.close(fd)  # closing releases the lock


def exit_without_stragglers(code: int = 0) -> None:
    """End the process now if request threads still wait on a chain or database that does not
    answer (they would hold the interpreter's exit up to their timeouts, and retries, each):
    every piece of work is durable in the database, so nothing is lost by not waiting."""
    main = threading.main_thread()
    stuck = [
        t
        for t in threading.enumerate()
        if t is not main and t.is_alive() and (not t.daemon or t.name.startswith("qcl-"))
    ]
    if stuck:
        say(f"{len(stuck)} threads still wait on a dependency; exiting without them")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_worker() -> None:
    """What ``qcl worker`` runs until SIGTERM or SIGINT."""
    try:
        settings = Settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")
    stop = threading.Event()
    running = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()
        if not running.is_set():  # still starting (e.g. waiting on a chain that does not answer)
            raise SystemExit(130 if _signum == signal.SIGINT else 143)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        node = open_node(settings)
        ledger = bootstrap(settings, node, say)
        vault = open_vault(settings, ledger)
    except (ValueError, ChainError, VaultError, DatabaseError) as exc:
        fail(str(exc))
    running.set()
    try:
        with active_lock(vault.store, settings.data_dir, stop) as active:
            if not active:
                return
            say("worker active: release relayer, indexer, checkpoints, webhooks, clocks")
            relayer = release_relayer(settings, ledger, vault.store)
            vault.use_relayer(relayer)
            anchor = CheckpointAnchor(vault, interval=settings.checkpoint_interval, every=settings.checkpoint_every)
            indexer = (
                Indexer(ledger=ledger, store=SqlIndexStore(vault.store), confirmations=settings.index_confirmations)
                if settings.indexer
                else None
            )
            follower = IndexFollower(indexer, interval=settings.index_interval) if indexer is not None else None
            jobs = VerificationJobs(
                store=vault.store,
                run=verification_runner(ledger=ledger, vault=vault, indexer=indexer, workers=settings.verify_workers),
            )
            webhooks = WebhookDeliverer(
                vault.store, poll=settings.webhook_poll, allow_private=settings.webhooks_reach_private
            )
            clocks = EventClocks(vault.store)
            keeper = settle_heap(settings)
            relayer.start()
            jobs.start_runner()
            webhooks.start()
            clocks.start()
            anchor.start()
            if follower is not None:
                follower.start()
            while not stop.wait(0.5):
                pass
            say("worker stopping")
            stoppers = [relayer.stop, jobs.stop, anchor.stop, webhooks.stop, clocks.stop]
            stoppers += [follower.stop] if follower is not None else []
            stoppers += [keeper.stop] if keeper is not None else []
            stop_all(stoppers, min(1.0, settings.shutdown_timeout))
            webhooks.close(0.0)
    finally:
        vault.store.dispose()
        node.stop(timeout=settings.shutdown_timeout)
    exit_without_stragglers()
