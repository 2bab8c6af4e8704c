"""Background work of an API process: anchoring release-log checkpoints and pending tombstones,
following the chain into the index, and long verifications."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit.checkpoints import anchor_checkpoint
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
        result = anchor_checkpoint(self._vault.ledger, self._vault.store)
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


@dataclass
class VerificationJob:
    """One verification running (or run) in a thread of the API process, and its progress."""

    id: str
    owner: str
    from_block: int
    to_block: int
    #: Events the replay will read (None when the source cannot tell, e.g. over RPC).
    total_events: int | None
    status: str = "running"  # running | done | failed
    stage: str = "events"
    events: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def progress(self, stage: str, count: int) -> None:
        self.stage = stage
        if stage == "events":
            self.events = count


class VerificationJobs:
    """Verifications started with ``POST /v1/audit/verifications``: a thread each, at most
    ``max_running`` at once; the last ``keep`` finished ones stay readable (in memory: a restart
    forgets them, the chain and the log they verified do not change)."""

    def __init__(self, *, max_running: int = 2, keep: int = 50) -> None:
        self.max_running = max_running
        self.keep = keep
        self._jobs: OrderedDict[str, VerificationJob] = OrderedDict()
        self._lock = threading.Lock()

    def start(
        self,
        *,
        owner: str,
        from_block: int,
        to_block: int,
        total_events: int | None,
        run: Callable[[Callable[[str, int], None]], Any],
        describe: Callable[[Exception], tuple[int, str] | None],
    ) -> VerificationJob | None:
        """Start ``run(progress)`` in a thread; None when ``max_running`` jobs are running."""
        with self._lock:
            if sum(j.status == "running" for j in self._jobs.values()) >= self.max_running:
                return None
            job = VerificationJob(
                id=secrets.token_hex(16),
                owner=owner,
                from_block=from_block,
                to_block=to_block,
                total_events=total_events,
            )
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status != "running"]
            for key in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[key]

        def work() -> None:
            try:
                job.report = run(job.progress).as_dict()
                job.status = "done"
            except Exception as exc:  # the thread reports every failure in the job
                found = describe(exc)
                status, code = found if found else (500, "verification_failed")
                if found is None:
                    log.exception("verification %s failed", job.id)
                job.error = {"status": status, "code": code, "detail": str(exc) if found else "internal error"}
                job.status = "failed"
            finally:
                job.finished_at = time.time()

        threading.Thread(target=work, name=f"qcl-verify-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, job_id: str) -> VerificationJob | None:
        with self._lock:
            return self._jobs.get(job_id)
