"""Background work of an API process: anchoring release-log checkpoints and pending tombstones,
following the chain into the index, and long verifications."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from audit.checkpoints import anchor_checkpoint
from audit.log_tree import LogTree
from audit.trail import Auditor
from chain_client import ChainError, Ledger
from chain_client.indexer import Indexer
from db.models import EmergencyRecord, MemberProfile, VerificationJobRow
from db.store import Store
from vault import Vault, VaultError

from .errors import lookup, public_detail

log = logging.getLogger("qcl.background")


def stop_all(stoppers: Sequence[Callable[[float], None]], timeout: float) -> None:
    """Ask every background loop to stop at once, then wait for them within ONE deadline.

    Each ``stopper(t)`` sets its loop's stop event and joins its thread for at most ``t`` seconds.
    A loop stuck in a call to a chain or a database that does not answer is a daemon thread: it is
    left behind (its work is durable and resumes on the next start), never waited on for long.
    """
    for stop in stoppers:
        stop(0.0)
    deadline = time.monotonic() + timeout
    for stop in stoppers:
        stop(max(0.0, deadline - time.monotonic()))


class CheckpointAnchor:
    """Anchors the release log's root every ``every`` entries or ``interval`` seconds after growth.

    One thread; chain failures are logged and retried on the next tick, so a down chain delays
    checkpoints but loses nothing (the log itself is in the database).
    """

    def __init__(self, vault: Vault, *, interval: float, every: int, tick: float = 0.5) -> None:
        self._vault = vault
        self._tree = LogTree(vault.store)
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
            last = self._vault.ledger.last_checkpoint()
            self._anchored_size = last.tree_size if last is not None else 0
        if size <= self._anchored_size:
            self._grew_at = None
            return False
        if self._grew_at is None:
            self._grew_at = now
        if size - self._anchored_size < self._every and now - self._grew_at < self._interval:
            return False
        self._vault.anchor_pending_tombstones()
        result = anchor_checkpoint(self._vault.ledger, self._vault.store, self._tree)
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
    """One verification and its progress (a row of ``verification_jobs``)."""

    id: str
    owner: str
    from_block: int
    to_block: int
    #: Events the replay will read (None when the source cannot tell, e.g. over RPC).
    total_events: int | None
    status: str = "queued"  # queued | running | done | failed
    stage: str = "events"
    events: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: VerificationJobRow) -> VerificationJob:
        return cls(
            id=row.id,
            owner=row.owner,
            from_block=row.from_block,
            to_block=row.to_block,
            total_events=row.total_events,
            status=row.status,
            stage=row.stage,
            events=row.events,
            started_at=row.started_at,
            finished_at=row.finished_at,
            report=json.loads(row.report) if row.report else None,
            error=json.loads(row.error) if row.error else None,
        )


#: (from_block, to_block, progress) -> the report of a verification
RunFn = Callable[[int, int, Callable[[str, int], None]], Any]


class VerificationJobs:
    """Verifications started with ``POST /v1/audit/verifications``, kept in the database.

    Any API process queues one (at most ``max_running`` queued or running at once) and reads its
    progress; :meth:`run_forever` (the worker's thread, or the single ``qcl dev`` process) runs
    them one at a time, writing progress as it goes. A job a crashed worker left ``running`` is
    queued again when a worker starts, so it resumes.
    """

    def __init__(self, *, store: Store, max_running: int = 2, run: RunFn | None = None, describe=lookup) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.max_running = max_running
        #: What runs a job (set by the process that runs them).
        self.run = run
        self.describe = describe
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, owner: str, from_block: int, to_block: int, total_events: int | None) -> VerificationJob | None:
        """Queue a job; None when ``max_running`` jobs are queued or running."""
        with self.store.session() as s:
            busy = s.scalar(
                select(func.count())
                .select_from(VerificationJobRow)
                .where(VerificationJobRow.status.in_(("queued", "running")))
            )
            if int(busy or 0) >= self.max_running:
                return None
            row = VerificationJobRow(
                id=secrets.token_hex(16),
                owner=owner,
                from_block=from_block,
                to_block=to_block,
                total_events=total_events,
                status="queued",
                stage="events",
                events=0,
                created_at=time.time(),
            )
            s.add(row)
        self._wake.set()
        return VerificationJob.of(row)

    def get(self, job_id: str) -> VerificationJob | None:
        with self.store.session() as s:
            row = s.get(VerificationJobRow, job_id)
            return VerificationJob.of(row) if row is not None else None

    # ---- the runner (the worker's side) --------------------------------------------------------

    def start_runner(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="qcl-verifications", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def run_forever(self) -> None:
        with self.store.session() as s:  # a crashed worker's jobs run again
            s.execute(update(VerificationJobRow).where(VerificationJobRow.status == "running").values(status="queued"))
        while not self._stop.is_set():
            try:
                ran = self.run_next()
            except Exception:  # the thread must survive; the job is marked failed where possible
                log.exception("verification runner failed")
                ran = False
            if not ran:
                self._wake.wait(0.5)
                self._wake.clear()

    def run_next(self) -> bool:
        """Run the oldest queued job; False when none is queued."""
        if self.run is None:
            return False
        with self.store.session() as s:
            row = s.scalars(
                select(VerificationJobRow)
                .where(VerificationJobRow.status == "queued")
                .order_by(VerificationJobRow.created_at)
                .limit(1)
            ).first()
            if row is None:
                return False
            row.status, row.started_at, row.events, row.stage = "running", time.time(), 0, "events"
            job_id, first, last = row.id, row.from_block, row.to_block
        written = [0.0]

        def progress(stage: str, count: int) -> None:
            now = time.monotonic()
            if stage == "events" and now - written[0] < 0.5:
                return
            written[0] = now
            values: dict[str, Any] = {"stage": stage}
            if stage == "events":
                values["events"] = count
            with self.store.session() as s:
                s.execute(update(VerificationJobRow).where(VerificationJobRow.id == job_id).values(**values))

        try:
            report = self.run(first, last, progress).as_dict()
            values: dict[str, Any] = {"status": "done", "report": json.dumps(report)}
        except Exception as exc:  # every failure is reported in the job
            found = self.describe(exc)
            status, code = found if found else (500, "verification_failed")
            if found is None:
                log.exception("verification %s failed", job_id)
            error = {"status": status, "code": code, "detail": public_detail(exc) if found else "internal error"}
            values = {"status": "failed", "error": json.dumps(error)}
        with self.store.session() as s:
            row = s.get(VerificationJobRow, job_id)
            if row is not None:
                if values["status"] == "done" and row.total_events is not None:
                    row.events = row.total_events
                for key, value in values.items():
                    setattr(row, key, value)
                row.finished_at = time.time()
        return True


def make_auditor(*, ledger: Ledger, vault: Vault, indexer: Indexer | None, workers: int | None) -> Auditor:
    """The auditor of this deployment: over the index (brought up to date first) when there is
    one, over RPC otherwise. Raises ChainUnavailable when the chain does not answer."""

    def private_texts() -> list[str]:
        with vault.store.session() as s:
            names = [p.name for p in s.scalars(select(MemberProfile)).all()]
            codes = [p.org_code for p in s.scalars(select(MemberProfile)).all() if p.org_code]
            reasons = [e.reason_text for e in s.scalars(select(EmergencyRecord)).all()]
        return names + codes + reasons

    if indexer is not None:
        indexer.sync()
    return Auditor(
        ledger=ledger, log_entries=vault.release_log, private_texts=private_texts, indexer=indexer, workers=workers
    )


def verification_runner(*, ledger: Ledger, vault: Vault, indexer: Indexer | None, workers: int | None) -> RunFn:
    """What runs a verification job in the worker."""

    def run(first: int, last: int, progress: Callable[[str, int], None]) -> Any:
        auditor = make_auditor(ledger=ledger, vault=vault, indexer=indexer, workers=workers)
        return auditor.verify(from_block=first, to_block=last, progress=progress)

    return run
