"""Group commit for small independent writes (release intents, relayed grants' terms).

Under load, a write per request in its own transaction makes every request wait for the database's
write lock and its own ``fsync``: on SQLite the losers of the lock sleep in the busy handler (up to
100 ms a try), on PostgreSQL each pays a WAL flush. :class:`WriteBatcher` hands every write that
arrives while the previous batch is being committed to ONE thread, which runs them in ONE
transaction: one lock, one flush for the whole batch. Each write still succeeds or fails on its own:
when the batch's transaction fails, its writes are run again one transaction each, so one bad write
costs the others nothing but a retry. A caller learns its write's result only after the commit.

Within a batch the rows are written by ONE flush (one multi-row ``INSERT`` per table), and the rows
the writes will look up by primary key are read by ONE ``SELECT … IN`` per table beforehand: a write
made with :func:`looks_up` names the row it reads, and finds it (or learns it is absent) with
:func:`lookup`, without a query of its own; a row it adds it tells :func:`remember`, so a later
write of the same batch finds it too.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from .shapes import padded

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Writes committed together at most.
MAX_BATCH = 256

W = TypeVar("W", bound=Callable[..., Any])


def looks_up(write: W, model: type[Any], key: Any) -> W:
    """Mark ``write`` as reading the ``model`` row of primary key ``key`` (read for the whole batch
    at once before the writes run)."""
    write.qcl_looks_up = (model, key)  # type: ignore[attr-defined]
    return write


def lookup(session: Session, model: type[T], key: Any) -> T | None:
    """The ``model`` row of primary key ``key``: from the batch's read when it made one for this
    key (no query), else ``session.get``."""
    known = session.info.get(_KNOWN)
    if known is not None and (model, key) in known:
        return known[(model, key)]  # type: ignore[no-any-return]
    return session.get(model, key)


def remember(session: Session, model: type[Any], key: Any, row: Any) -> None:
    """Tell the batch that a write added ``row`` (a later write of the batch looks it up)."""
    known = session.info.get(_KNOWN)
    if known is not None:
        known[(model, key)] = row


_KNOWN = "qcl_known_rows"


def _prefetch(session: Session, writes: list[Callable[[Session], Any]]) -> None:
    """Read the rows the batch's writes look up, one ``SELECT … IN`` per table."""
    wanted: dict[type[Any], set[Any]] = {}
    for write in writes:
        looked = getattr(write, "qcl_looks_up", None)
        if looked is not None:
            wanted.setdefault(looked[0], set()).add(looked[1])
    known: dict[tuple[type[Any], Any], Any] = {}
    for model, keys in wanted.items():
        (column,) = inspect(model).primary_key
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found = {
                getattr(row, column.key): row for row in session.scalars(select(model).where(column.in_(padded(chunk))))
            }
            known.update(((model, key), found.get(key)) for key in chunk)
    session.info[_KNOWN] = known


class WriteBatcher:
    """One writer thread committing queued writes in batches (started on first use)."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH, name: str = "qcl-db-writer") -> None:
        self._store = store
        self._max = max_batch
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[[Session], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        #: Batches committed and writes in them (for benchmarks and tests).
        self.batches = 0
        self.writes = 0

    def submit(self, write: Callable[[Session], T]) -> Future[T]:
        """Queue ``write`` (called with a session inside the batch's transaction; it must not commit,
        and must build its rows anew on each call: after a failed batch it is called again in a
        transaction of its own). The future resolves with its return value once committed, or with
        its exception."""
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the database writer is stopped")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((write, future))
        return future

    def run(self, write: Callable[[Session], T], timeout: float | None = 60.0) -> T:
        """:meth:`submit` and wait for the result (for callers on a worker thread)."""
        return self.submit(write).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._queue.put(None)
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            batch = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            with self._store.session() as s:
                _prefetch(s, [write for write, _ in batch])
                for write, _ in batch:
                    results.append(write(s))
                s.flush()
        except Exception:  # noqa: BLE001 - one write (or the database) failed: each on its own, to learn which
            if len(batch) > 1:
                log.debug("batch of %d writes failed; committing them one by one", len(batch))
            for write, future in batch:
                try:
                    with self._store.session() as s:
                        result = write(s)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            return
        self.batches += 1
        self.writes += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
