"""The release path (DESIGN.md "The release path"): durable intents, group commit, one log writer.

1. :meth:`ReleaseDesk.admit` writes a durable **intent** for a department's signed request (the
   release id, ``keccak256(grantee || request id)``, is its key: SPEC §9.7's idempotency key).
2. :class:`ReleaseRelayer` — one per deployment, in the worker (``qcl worker``, or the single
   ``qcl dev`` process) — takes every pending intent that arrived while its previous transaction
   was being mined and records them in ONE grouped ``recordReleases`` transaction (group commit).
   The contract checks each item on its own and reports each item's outcome. The relayer does not
   wait for a group's block before it sends the next one: up to ``PIPELINE_DEPTH`` transactions of
   its account are in flight at once (consecutive nonces, so the chain mines them in that order).
3. When a receipt is in (the oldest transaction's first), the relayer appends the block's releases to the release log **in chain
   order** and marks every intent ``recorded`` (with its log index) or ``rejected`` (with the
   contract's refusal) in ONE database transaction, so the log, its Merkle tree and the chain
   agree by construction: it is the log's only writer.
4. Waiting callers are woken; the API then seals the document to the grantee's key
   (:meth:`ReleaseDesk.deliver`). No receipt, no document.
5. Crash safety: each transaction is signed and stored (:class:`db.models.RelayerTransaction`)
   before it is sent. After a restart :meth:`ReleaseRelayer.reconcile` reads the receipt of every
   transaction that was in flight (or sends the same bytes again), so a recorded release always
   gets its log entry and the department can fetch it again with the same signed request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Table, bindparam, func, select, update

from chain_client import ChainError, ChainUnavailable, Ledger
from chain_client.errors import ContractRevert
from chain_client.ids import checksum
from chain_client.indexer import _EventDecoder
from chain_client.ledger import abi_type
from chain_client.relayer import LINGER, PIPELINE_DEPTH, BlockPace, RawSender, SendRefused, SignedTx
from chain_client.types import EmergencyScope, GrantTerms
from db.batch import looks_up, lookup, remember
from db.models import RelayerTransaction, ReleaseIntent, ReleaseLogRow
from db.release_log import LogEntry, release_id
from db.shapes import padded
from db.store import Store, StoreUnavailable

log = logging.getLogger("qcl.releases")

#: Items of one grouped release (the contract takes up to 256; this keeps a batch well inside a
#: block's gas limit with the fixed gas per item below).
MAX_GROUP = 200
#: Gas given to a grouped release: a fixed part and a part per item (no eth_estimateGas; an item
#: costs about 20,000 gas, a first request id of a bitmap word 17,000 more, an EIP-1271 grantee up
#: to 100,000 more; unused gas is not paid for).
GROUP_GAS_BASE = 80_000
GROUP_GAS_PER_ITEM = 75_000
#: Gas of one emergency release.
EMERGENCY_GAS = 250_000
#: Whole-transaction failures (out of gas, a node that lost it) an intent survives before it fails.
MAX_ATTEMPTS = 3
#: Seconds the relayer waits before sending again after the node refused a transaction (a node
#: restarting, a full pool): a refusal is not counted as an attempt of its intents, so without a
#: pause a run of refusals would be met with a resend every few milliseconds.
REFUSED_BACKOFF = 0.25
#: Seconds without a receipt after which the relayer asks whether the node still has the transaction.
LOST_AFTER = 3.0
#: Seconds between the idle relayer's checks that the chain still holds what it recorded.
CHECK_CHAIN_EVERY = 2.0
#: Receipt polling of the transactions in flight: one JSON-RPC batch per poll, the interval
#: growing from POLL to MAX_POLL while nothing is mined.
POLL = 0.005
MAX_POLL = 0.1
#: How long the idle relayer sleeps when no intent wakes it (another process's intents).
IDLE_WAIT = 0.05
#: Seconds between a waiting caller's own reads of its intent: a safety net only (the relayer in
#: this process, or the process's IntentWatcher, wakes it). On a chain with 2 s blocks and 512
#: callers waiting, a read each second per caller cost the API more than the release itself.
SAFETY_READ = 5.0
#: Intent states from which nothing changes any more.
FINAL = frozenset({"recorded", "rejected", "failed"})
#: The refusal recorded for an item the ledger skipped silently (a signature that is not the grantee's).
SIGNATURE_REFUSAL = "ConsentLedgerNotGrantee"


@dataclass(frozen=True)
class ReleaseRequest:
    """A department's signed request, checked and ready to be recorded."""

    kind: str  # "grant" or "emergency"
    authority: bytes  # grant id, or emergency id
    grantee: str
    subject: str
    resource: bytes
    request_id: bytes
    deadline: int
    signature: bytes
    terms: GrantTerms | EmergencyScope

    @property
    def release_id(self) -> str:
        return release_id(self.grantee, self.request_id)

    def body_hash(self) -> str:
        """SHA-256 of the signed request: equal for the exact same request sent again."""
        body = [self.kind, self.authority.hex(), self.subject.lower(), self.resource.hex(), self.request_id.hex()]
        body += [str(self.deadline), self.signature.hex()]
        return "0x" + hashlib.sha256("|".join(body).encode()).hexdigest()

    def terms_json(self) -> str:
        message = self.terms.message()
        return json.dumps({k: _jsonable(v) for k, v in message.items()}, separators=(",", ":"))


@dataclass(frozen=True)
class Intent:
    """What the API needs of an intent: its state and, once recorded, where."""

    id: str
    kind: str
    authority: str
    grantee: str
    subject: str
    resource: str
    request_id: str
    document_id: str
    body_hash: str
    status: str
    error: str | None
    tx_hash: str | None
    block_number: int | None
    log_index: int | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @classmethod
    def of(cls, row: ReleaseIntent) -> Intent:
        return cls(
            id=row.id,
            kind=row.kind,
            authority=row.authority,
            grantee=row.grantee,
            subject=row.subject,
            resource=row.resource,
            request_id=row.request_id,
            document_id=row.document_id,
            body_hash=row.body_hash,
            status=row.status,
            error=row.error,
            tx_hash=row.tx_hash,
            block_number=row.block_number,
            log_index=row.log_index,
        )


@dataclass
class _Flight:
    """A transaction of the release relayer sent and not yet settled."""

    tx: SignedTx
    ids: list[str]
    group: bool
    #: when (monotonic) it was sent
    sent: float
    #: when (monotonic) to look after it if it is still not mined
    look_at: float
    #: when (monotonic) to give up on it (the relayer then reconciles)
    deadline: float


class RequestReused(Exception):
    """A different signed request arrived under a request id already used by this grantee."""


class Waiters:
    """Wakes the callers waiting for intents (asyncio futures, woken from the relayer's thread)."""

    #: Keys notified lately, remembered so that a caller registering just after its key was
    #: notified is woken at once (bounded; a caller that misses it still polls).
    RECENT = 20_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._recent: dict[str, None] = {}

    def register(self, key: str, *, recent: bool = False) -> asyncio.Future[None]:
        """A future resolved when ``key`` is notified; with ``recent``, at once when it was lately
        (for a caller that does not read the state after registering)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if recent and key in self._recent:
                future.set_result(None)
            else:
                self._waiting.setdefault(key, []).append((loop, future))
        return future

    def discard(self, key: str, future: asyncio.Future[None]) -> None:
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is None:
                return
            waiting[:] = [(lp, f) for lp, f in waiting if f is not future]
            if not waiting:
                del self._waiting[key]

    def waiting(self) -> list[str]:
        """The keys callers wait for now."""
        with self._lock:
            return list(self._waiting)

    def notify(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        with self._lock:
            if len(self._recent) + len(keys) > self.RECENT:
                for old in list(self._recent)[: len(self._recent) // 2]:  # the older half (insertion order)
                    del self._recent[old]
            self._recent.update(dict.fromkeys(keys))
            woken = [w for key in keys for w in self._waiting.pop(key, [])]
        for loop, future in woken:
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class IntentWatcher:
    """Wakes the callers of a process whose releases another process records (``qcl serve``
    beside ``qcl worker``): every ``interval`` seconds ONE query reads which of the intents waited
    for are final, however many callers wait (instead of one query per caller and poll)."""

    def __init__(self, store: Store, waiters: Waiters, *, interval: float = 0.05) -> None:
        self.store = store
        self.waiters = waiters
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._outcomes: dict[str, Intent] = {}
        self._outcomes_lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="qcl-intent-watcher", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def check(self) -> int:
        """Notify the waiting callers whose intents are final (their outcomes kept for them to
        :meth:`take`, so they need not read them again); how many."""
        from db.lookup import rows_in

        keys = self.waiters.waiting()
        if not keys:
            return 0
        with self.store.session() as s:
            rows = rows_in(s, select(ReleaseIntent).where(ReleaseIntent.status.in_(FINAL)), ReleaseIntent.id, keys)
            final = [Intent.of(r) for r in rows]
        if final:
            with self._outcomes_lock:
                if len(self._outcomes) > Waiters.RECENT:  # outcomes of callers that gave up waiting
                    self._outcomes.clear()
                self._outcomes.update((i.id, i) for i in final)
            self.waiters.notify([i.id for i in final])
        return len(final)

    def take(self, intent_id: str) -> Intent | None:
        """The outcome :meth:`check` found for ``intent_id`` (once), if any."""
        with self._outcomes_lock:
            return self._outcomes.pop(intent_id, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the database is down: callers time out or read it themselves
                log.debug("intent watcher: the database did not answer", exc_info=True)


class ReleaseDesk:
    """Admission of release requests and waiting for their outcome (the API's half)."""

    def __init__(self, *, store: Store, waiters: Waiters | None = None, wake: Callable[[], None] | None = None):
        self.store = store
        self.waiters = waiters or Waiters()
        #: Called after an intent is admitted (wakes an in-process relayer at once).
        self.wake = wake or (lambda: None)
        #: Whether a relayer in this process wakes the waiting callers (else the watcher does).
        self.local = wake is not None
        self.watcher = IntentWatcher(store, self.waiters)

    def find(self, intent_id: str) -> Intent | None:
        with self.store.session() as s:
            row = s.get(ReleaseIntent, intent_id)
            return Intent.of(row) if row is not None else None

    def admit(self, request: ReleaseRequest, *, document_id: str) -> tuple[Intent, bool]:
        """Write the intent (durable before anything is sent); returns it and whether it is new.

        The exact same request sent again returns the existing intent; a different one under the
        same request id raises :class:`RequestReused`. Intents arriving together are written in one
        transaction (:class:`db.batch.WriteBatcher`).
        """
        return self._checked(request, self.store.writer.run(self._writer_of(request, document_id)))

    async def admit_async(self, request: ReleaseRequest, *, document_id: str) -> tuple[Intent, bool]:
        """:meth:`admit` without holding a thread while the batch commits."""
        written = await asyncio.wrap_future(self.store.writer.submit(self._writer_of(request, document_id)))
        return self._checked(request, written)

    def _writer_of(self, request: ReleaseRequest, document_id: str) -> Callable[[Any], tuple[Intent, bool]]:
        body_hash = request.body_hash()
        terms = request.terms_json()

        def write(s: Any) -> tuple[Intent, bool]:
            existing = lookup(s, ReleaseIntent, request.release_id)
            if existing is not None:
                return Intent.of(existing), False
            now = time.time()
            row = ReleaseIntent(
                id=request.release_id,
                kind=request.kind,
                authority="0x" + request.authority.hex(),
                grantee=checksum(request.grantee),
                subject=checksum(request.subject),
                resource="0x" + request.resource.hex(),
                request_id="0x" + request.request_id.hex(),
                deadline=str(request.deadline),
                signature="0x" + request.signature.hex(),
                body_hash=body_hash,
                terms=terms,
                document_id=document_id,
                status="pending",
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            s.add(row)  # a request id taken meanwhile by another process fails the batch's flush: the
            # batch is then written again one write at a time, and this one reads the other's back
            remember(s, ReleaseIntent, request.release_id, row)
            return Intent.of(row), True

        return looks_up(write, ReleaseIntent, request.release_id)

    def _checked(self, request: ReleaseRequest, written: tuple[Intent, bool]) -> tuple[Intent, bool]:
        intent, created = written
        if intent.body_hash != request.body_hash():
            raise RequestReused(
                f"request id 0x{request.request_id.hex()} was already used by this grantee for another request"
            )
        if created:
            self.wake()
        return intent, created

    async def wait(
        self,
        intent_id: str,
        *,
        timeout: float,
        poll: float | None = None,
        known: Intent | None = None,
        hop: Callable[..., Awaitable[Any]] | None = None,
    ) -> Intent:
        """Wait until the intent is final: woken by the relayer when it runs in this process, else
        by the process's :class:`IntentWatcher` (one query every 50 ms for all waiting callers);
        the caller reads the database itself again only every ``SAFETY_READ`` seconds, as a safety net, on a thread
        through ``hop`` (default: asyncio's default executor; the API passes its own)."""
        hop = hop or _default_hop
        if not self.local:
            self.watcher.ensure_started()
        poll = poll if poll is not None else SAFETY_READ
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            skip_read = known is not None and not known.final
            future = self.waiters.register(intent_id, recent=skip_read)
            try:
                intent: Intent | None
                if skip_read:
                    # just admitted: the database says pending; a relayer in this process that
                    # settled it since has notified, which ``register`` saw (no read needed)
                    intent, known = known, None
                elif (found := self.watcher.take(intent_id)) is not None:
                    intent = found  # the watcher read it for this caller
                else:
                    intent = await hop(self.find, intent_id)
                if intent is None or intent.final:
                    assert intent is not None
                    return intent
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return intent
                try:
                    async with asyncio.timeout(min(remaining, poll)):  # no task per wait (wait_for's)
                        await future
                except TimeoutError:
                    pass
            finally:
                self.waiters.discard(intent_id, future)


class ReleaseRelayer:
    """The release log's one writer: records pending intents in grouped transactions.

    ``sender`` signs for the relayer account; ``notify`` is told which intents became final.
    Its thread runs :meth:`pump` (up to ``depth`` transactions in flight, their receipts applied in
    nonce order); :meth:`step` sends and waits (callers without the thread). One turn at a time (a
    lock), so within a process there is one writer; across processes the worker's lock
    (``qcl worker``) keeps one active relayer per deployment.
    """

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: RawSender,
        notify: Callable[[Sequence[str]], None] = lambda _ids: None,
        max_group: int = MAX_GROUP,
        receipt_timeout: float = 120.0,
        clock: Callable[[], float] = time.time,
        depth: int = PIPELINE_DEPTH,
        linger: float = LINGER,
    ) -> None:
        if depth < 1:
            raise ValueError("the pipeline's depth is at least 1")
        self.store = store
        self.ledger = ledger
        self.sender = sender
        self.notify = notify
        self.max_group = max_group
        self.receipt_timeout = receipt_timeout
        self._clock = clock
        self.depth = depth
        self.linger = linger
        self._flights: deque[_Flight] = deque()
        self._last_sent = 0.0
        #: the chain's pace, from the blocks the receipts land in
        self.pace = BlockPace()
        #: when (monotonic) to query for pending intents again after a query found none (unless
        #: woken): a pipeline polling its receipts every few ms does not query the intents as often
        self._look_from = 0.0
        #: no group is sent before this (monotonic) after the node refused one
        self._refused_until = 0.0
        self._poll = POLL
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._address = to_checksum_address(ledger.consent.address)
        entries = cast(list[dict[str, Any]], ledger.consent.abi)
        abi = {str(e.get("name")): e for e in entries if e.get("type") in ("function", "event")}
        self._events = {
            bytes(keccak(text=_event_signature(e))): _EventDecoder.of(e)
            for name, e in abi.items()
            if e.get("type") == "event" and name in ("ReleaseRecorded", "ReleaseRejected", "EmergencyReleaseRecorded")
        }
        self.groups = 0
        self.items = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: A nonce gap below a waiting transaction is filled with this account's stored bytes first.
        from .reconcile import stored_transactions

        self.sender.stored = stored_transactions(store, sender.address)
        #: What the last reconciliation against the chain found (vault/reconcile.py).
        self.last_recovery: Any = None

    def chain_behind(self) -> bool:
        """Whether the chain lost transactions this relayer saw mined (a node restarted from an
        older state, a deep reorg): its account's mined nonce is below one of them."""
        with self.store.session() as s:
            highest = s.scalar(
                select(func.max(RelayerTransaction.nonce)).where(
                    RelayerTransaction.sender == self.sender.address, RelayerTransaction.status == "mined"
                )
            )
        if highest is None:
            return False
        behind = self.sender.mined_nonce() <= int(highest)
        if behind:
            log.warning("release relayer: the chain is behind the release log; reconciling")
        return behind

    # ---- running ---------------------------------------------------------------------------------

    def wake(self) -> None:
        """New intents are waiting (an API in this process admitted them): look at once."""
        self._look_from = 0.0
        self._wake.set()

    def start(self) -> None:
        """Reconcile what a crash left in flight, then run :meth:`step` in a thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="qcl-release-relayer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        reconciled = False
        checked = time.monotonic()
        while not self._stop.is_set():
            try:
                if not reconciled:
                    self.reconcile()
                    reconciled = True
                if self.pump():
                    continue  # what arrived meanwhile goes into the next group at once
                if not self._flights and time.monotonic() - checked >= CHECK_CHAIN_EVERY:
                    checked = time.monotonic()
                    reconciled = not self.chain_behind()
            except ChainError as exc:
                log.warning("release relayer: %s (retrying)", exc)
                self._land()  # a send may or may not have reached the node: settle it first
                reconciled = False
                self._stop.wait(0.5)
            except StoreUnavailable as exc:  # e.g. a locked SQLite file while a receipt was applied
                log.warning("release relayer: %s (retrying)", exc)
                self._land()  # a mined transaction may wait for its log entries: settle it first
                reconciled = False
                self._stop.wait(0.5)
            except Exception:  # the thread must survive; the intents stay pending
                log.exception("release relayer failed (retrying)")
                self._land()
                reconciled = False
                self._stop.wait(0.5)
            self._wake.wait(self._poll if self._flights else IDLE_WAIT)
            self._wake.clear()

    def _land(self) -> None:
        """Forget the transactions in flight: they are stored as sent, and :meth:`reconcile`
        settles them in nonce order (their receipts applied, or their intents back to pending)."""
        with self._lock:
            self._flights.clear()

    # ---- the pipeline ----------------------------------------------------------------------------

    def step(self) -> int:
        """Record every pending intent and wait for the outcome: up to ``max_group`` grant releases
        in one transaction and each emergency release in its own, the pipeline drained. Returns how
        many intents were handled."""
        done: list[str] = []
        with self._lock:
            try:
                handled = self._launch(done)
                self._drain(done)
            except BaseException:
                self._flights.clear()  # stored as sent: reconcile() settles them
                raise
            finally:
                if done:
                    self.notify(done)
            return handled

    def pump(self) -> int:
        """One turn of the pipeline, without waiting for a block: apply the receipts that are in
        (oldest transaction first, so the log follows the chain's order), look after the oldest
        transaction if it waits too long, and send the next group when fewer than ``depth``
        transactions are in flight. While earlier groups are in flight a partial group is held back
        for ``linger`` seconds, so that a slow block gathers a few large groups rather than many
        small ones. Returns how many intents were sent or settled. Whatever became final is
        notified, even when a later part of the turn fails."""
        done: list[str] = []
        with self._lock:
            try:
                if self._flights:
                    self._settle(done)
                handled = 0
                now = time.monotonic()
                if (
                    len(self._flights) < self.depth
                    and now >= self._look_from
                    and now >= self._refused_until
                    and (not self._flights or now - self._last_sent >= self.pace.linger(self.depth, self.linger))
                ):
                    handled = self._launch(done)
            finally:
                if done:
                    self.notify(done)
            self._poll = POLL if handled or done else min(self._poll * 1.5, MAX_POLL)
            return handled + len(done)

    @property
    def in_flight(self) -> int:
        """Transactions sent and not yet settled."""
        return len(self._flights)

    def _launch(self, done: list[str]) -> int:
        """Send the pending intents (one grouped transaction and one per emergency release);
        returns how many were taken, and adds to ``done`` those final already (refused at once)."""
        with self.store.session() as s:
            rows = s.scalars(
                select(ReleaseIntent)
                .where(ReleaseIntent.status == "pending")
                .order_by(ReleaseIntent.created_at, ReleaseIntent.id)
                .limit(self.max_group)
            ).all()
        if not rows:
            self._look_from = time.monotonic() + IDLE_WAIT
            return 0
        grants = [r for r in rows if r.kind == "grant"]
        self._last_sent = time.monotonic()
        if grants:
            done += self._send_group(grants)
        for row in rows:
            if row.kind == "emergency":
                done += self._send_emergency(row)
        return len(rows)

    def _send_group(self, rows: Sequence[ReleaseIntent]) -> list[str]:
        items = []
        for row in rows:
            terms = GrantTerms.from_message(json.loads(row.terms))
            items.append(
                (
                    terms.as_tuple(),
                    _b32(row.resource),
                    _b32(row.request_id),
                    int(row.deadline),
                    bytes(HexBytes(row.signature)),
                )
            )
        data = self.ledger.calldata("recordReleases", items)
        gas = GROUP_GAS_BASE + GROUP_GAS_PER_ITEM * len(items)
        tx = self.sender.sign(self._address, data, gas)
        return self._send(tx, "releases", [r.id for r in rows], group=True)

    def _send_emergency(self, row: ReleaseIntent) -> list[str]:
        scope = EmergencyScope.from_message(json.loads(row.terms))
        fn = self.ledger.consent.functions.recordEmergencyRelease(
            scope.as_tuple(),
            to_checksum_address(row.subject),
            _b32(row.resource),
            _b32(row.request_id),
            int(row.deadline),
            bytes(HexBytes(row.signature)),
        )
        try:  # emergencies are rare: simulate first, so a refusal costs no transaction
            self.ledger.relay.call(fn)
        except ContractRevert as exc:
            self._finish([(row.id, "rejected", exc.error, None, None, None)])
            return [row.id]
        data = bytes(HexBytes(fn._encode_transaction_data()))
        tx = self.sender.sign(self._address, data, EMERGENCY_GAS)
        return self._send(tx, "emergency-release", [row.id], group=False)

    def _send(self, tx: SignedTx, purpose: str, ids: list[str], *, group: bool) -> list[str]:
        """Store ``tx`` and its intents, send it and put it in flight; returns the intents that
        became final (a node that refused it: they wait for the next group, or fail after
        ``MAX_ATTEMPTS``)."""
        self._submitted(tx, purpose, ids)
        try:
            self.sender.send(tx)
        except SendRefused as exc:
            log.warning("release relayer: %s; the %d intents wait for the next group", exc, len(ids))
            self._refused_until = time.monotonic() + REFUSED_BACKOFF
            return self._requeue(tx.tx_hash, ids, dropped=True, refused=True)
        now = time.monotonic()
        self._flights.append(
            _Flight(
                tx=tx, ids=ids, group=group, sent=now, look_at=now + LOST_AFTER, deadline=now + self.receipt_timeout
            )
        )
        return []

    def _settle(self, done: list[str]) -> None:
        """Apply the receipts of the transactions in flight that are mined, oldest first (one
        JSON-RPC batch for all of them), and look after the oldest if it is not; adds the intents
        that became final to ``done``."""
        receipts = self.sender.receipts([f.tx.tx_hash for f in self._flights])
        while self._flights:
            receipt = receipts.get(self._flights[0].tx.tx_hash)
            if receipt is None:
                break
            flight = self._flights.popleft()
            self.pace.observe(time.monotonic() - flight.sent)
            done += self._apply(receipt, flight.tx.tx_hash)
            if flight.group:
                self.groups += 1
        if self._flights:
            done += self._look_after(self._flights[0])

    def _drain(self, done: list[str]) -> None:
        """Settle every transaction in flight, waiting for their blocks."""
        delay = POLL
        while self._flights:
            before = len(done)
            self._settle(done)
            if not self._flights:
                break
            if self._stop.is_set():
                raise ChainUnavailable("the release relayer is stopping")
            time.sleep(delay)
            delay = POLL if len(done) > before else min(delay * 1.5, MAX_POLL)

    def _look_after(self, flight: _Flight) -> list[str]:
        """The oldest transaction in flight is not mined. After ``LOST_AFTER`` seconds: one the node
        lost is sent again (the same bytes), a nonce gap below it is filled from the stored
        transactions, and one whose nonce another transaction used leaves the pipeline, its
        intents back to pending (returns those that became final). After ``receipt_timeout``:
        :class:`ChainUnavailable` (the relayer reconciles before it takes new work)."""
        now = time.monotonic()
        if now >= flight.deadline:
            raise ChainUnavailable(f"transaction {flight.tx.tx_hash} was not mined within {self.receipt_timeout:.0f} s")
        if now < flight.look_at:
            return []
        flight.look_at = now + LOST_AFTER
        tx = flight.tx
        try:
            outcome = self.sender.heal(tx)
        except SendRefused as exc:
            outcome, reason = "refused", str(exc)
        else:
            reason = f"nonce {tx.nonce} is used by another transaction"
        if outcome in ("mined", "pending"):
            return []
        if outcome in ("resent", "filled"):
            log.warning("release relayer: transaction %s (nonce %d): %s", tx.tx_hash, tx.nonce, outcome)
            return []
        if self.sender.receipt(tx.tx_hash) is not None:
            return []  # mined after all: the next turn applies it
        log.warning("release relayer: %s; the %d intents wait for the next group", reason, len(flight.ids))
        self._flights.remove(flight)
        if outcome == "refused":
            self._refused_until = time.monotonic() + REFUSED_BACKOFF
        return self._requeue(tx.tx_hash, flight.ids, dropped=True, refused=outcome == "refused")

    def _submitted(self, tx: SignedTx, purpose: str, ids: Sequence[str]) -> None:
        """Store the signed transaction and mark its intents, before the bytes leave the process."""
        now = self._clock()
        with self.store.session() as s:
            s.add(
                RelayerTransaction(
                    tx_hash=tx.tx_hash,
                    sender=self.sender.address,
                    nonce=tx.nonce,
                    raw=tx.raw,
                    purpose=purpose,
                    status="sent",
                    created_at=now,
                )
            )
            table = cast(Table, ReleaseIntent.__table__)
            s.execute(  # one statement run for every intent (executemany)
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values(
                    status="submitted",
                    tx_hash=tx.tx_hash,
                    position=bindparam("_position"),
                    attempts=table.c.attempts + 1,
                    updated_at=now,
                ),
                [{"_id": i, "_position": p} for p, i in enumerate(ids)],
            )

    def _requeue(self, tx_hash: str, ids: Sequence[str], *, dropped: bool, refused: bool = False) -> list[str]:
        """Put ``ids`` (submitted with ``tx_hash``) back to pending, or failed after
        ``MAX_ATTEMPTS``; returns those that failed. ``refused``: the node refused the transaction,
        which says nothing about its intents: the send is not counted as one of their attempts,
        and none fails for it."""
        now = self._clock()
        failed: list[str] = []
        with self.store.session() as s:
            if dropped:
                s.execute(
                    update(RelayerTransaction).where(RelayerTransaction.tx_hash == tx_hash).values(status="dropped")
                )
            for intent_id in ids:
                row = s.get(ReleaseIntent, intent_id)
                if row is None or row.status != "submitted":
                    continue
                if refused:
                    row.status, row.attempts = "pending", max(0, row.attempts - 1)
                elif row.attempts >= MAX_ATTEMPTS:
                    row.status, row.error = "failed", "TransactionFailed"
                    failed.append(intent_id)
                else:
                    row.status = "pending"
                row.tx_hash, row.position, row.updated_at = None, None, now
        return failed

    def _is_final(self, intent_id: str) -> bool:
        with self.store.session() as s:
            row = s.get(ReleaseIntent, intent_id)
            return row is not None and row.status in FINAL

    # ---- outcomes --------------------------------------------------------------------------------

    def _apply(self, receipt: dict[str, Any], tx_hash: str) -> list[str]:
        """Append the receipt's releases to the log in chain order and settle its intents, in ONE
        database transaction; returns the intents that became final."""
        with self.store.session() as s:
            rows = sorted(
                s.scalars(select(ReleaseIntent).where(ReleaseIntent.tx_hash == tx_hash)).all(),
                key=lambda r: r.position or 0,
            )
            if not rows:
                return []
            ids = [r.id for r in rows]
        block = int(receipt["blockNumber"], 16) if isinstance(receipt["blockNumber"], str) else receipt["blockNumber"]
        status = receipt.get("status")
        ok = (int(status, 16) if isinstance(status, str) else int(status or 0)) == 1
        if not ok:  # the whole transaction failed (out of gas, …): try again, a few times
            log.warning("release relayer: transaction %s failed as a whole; %d intents retried", tx_hash, len(rows))
            self._requeue(tx_hash, ids, dropped=False)
            with self.store.session() as s:
                s.execute(
                    update(RelayerTransaction).where(RelayerTransaction.tx_hash == tx_hash).values(status="mined")
                )
            return [i for i in ids if self._is_final(i)]
        recorded, rejected = self.outcomes(receipt)
        outcomes: list[tuple[str, str, str | None, int | None, str | None, int | None]] = []
        chain_order = []
        for index, row in enumerate(rows):
            key = (row.grantee.lower(), row.request_id.lower())
            if key in recorded:
                chain_order.append((recorded[key], row))
            else:
                error = rejected.get(index, SIGNATURE_REFUSAL)
                outcomes.append((row.id, "rejected", error, None, tx_hash, block))
        chain_order.sort(key=lambda pair: pair[0])
        self._finish(
            outcomes, recorded=[row for _, row in chain_order], tx_hash=tx_hash, block=block, at=_block_time(receipt)
        )
        self.items += len(rows)
        return ids

    def outcomes(self, receipt: dict[str, Any]) -> tuple[dict[tuple[str, str], int], dict[int, str]]:
        """A receipt's releases: ``(grantee, request id)`` -> log index of every recorded one, and
        item index -> the contract's refusal of every rejected one."""
        recorded: dict[tuple[str, str], int] = {}
        rejected: dict[int, str] = {}
        for entry in receipt.get("logs") or ():
            if str(entry.get("address", "")).lower() != self._address.lower():
                continue
            topics = [bytes(HexBytes(t)) for t in entry["topics"]]
            decoder = self._events.get(topics[0]) if topics else None
            if decoder is None:
                continue
            args = decoder.decode(topics, bytes(HexBytes(entry["data"])))
            position = int(entry["logIndex"], 16) if isinstance(entry["logIndex"], str) else int(entry["logIndex"])
            if decoder.name == "ReleaseRejected":
                reason = self.ledger.decoder.from_selector(bytes(HexBytes(args["reason"])), {})
                rejected[int(args["index"])] = reason.error
            else:
                grantee = args.get("grantee") or args.get("consumer")
                recorded[(str(grantee).lower(), str(args["requestId"]).lower())] = position
        return recorded, rejected

    def _finish(
        self,
        outcomes: Sequence[tuple[str, str, str | None, int | None, str | None, int | None]],
        *,
        recorded: Sequence[ReleaseIntent] = (),
        tx_hash: str | None = None,
        block: int | None = None,
        at: int | None = None,
    ) -> None:
        """One transaction: the recorded releases appended to the log in chain order, every
        intent settled, the relayer transaction marked mined. A log entry's ``released_at`` is
        ``at``, the block's time (when the contract judged the release), else the relayer's clock."""
        now = self._clock()
        with self.store.session() as s:
            index = s.scalar(select(func.max(ReleaseLogRow.idx)))
            index = 0 if index is None else int(index) + 1
            commitments = _document_commitments(s, {row.document_id for row in recorded})
            settled: list[dict[str, Any]] = []
            for row in recorded:
                entry = LogEntry(
                    index=index,
                    release_id=row.id,
                    kind=row.kind,
                    authority=row.authority,
                    subject=row.subject,
                    grantee=row.grantee,
                    resource=row.resource,
                    request_id=row.request_id,
                    document_id=row.document_id,
                    commitment=commitments.get(row.document_id, ""),
                    tx_hash=str(tx_hash),
                    block_number=int(block or 0),
                    released_at=int(now if at is None else at),
                )
                s.add(
                    ReleaseLogRow(
                        idx=index,
                        release_id=entry.release_id,
                        subject=entry.subject,
                        grantee=entry.grantee,
                        entry=entry.canonical(),
                        created_at=entry.released_at,
                        tx_hash=entry.tx_hash,
                    )
                )
                settled.append(
                    {
                        "id": row.id,
                        "status": "recorded",
                        "error": None,
                        "log_index": index,
                        "tx_hash": tx_hash,
                        "block_number": block,
                        "updated_at": now,
                    }
                )
                index += 1
            for intent_id, status, error, log_index, tx, blk in outcomes:
                settled.append(
                    {
                        "id": intent_id,
                        "status": status,
                        "error": error,
                        "log_index": log_index,
                        "tx_hash": tx,
                        "block_number": blk,
                        "updated_at": now,
                    }
                )
            s.flush()  # the log rows first: an index taken twice fails here, before any intent moves
            if settled:
                table = cast(Table, ReleaseIntent.__table__)
                s.execute(  # executemany
                    update(table)
                    .where(table.c.id == bindparam("_id"))
                    .values({k: bindparam("_" + k) for k in settled[0] if k != "id"}),
                    [{"_" + k: v for k, v in row.items()} for row in settled],
                )
            if tx_hash is not None:
                s.execute(
                    update(RelayerTransaction).where(RelayerTransaction.tx_hash == tx_hash).values(status="mined")
                )

    # ---- after a crash ---------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Settle every transaction a crash left in flight: its receipt's releases are logged (in
        nonce order); one the node never got is sent again (the same bytes); one the node can no
        longer take puts its intents back to pending. Returns the transactions settled."""
        with self._lock:
            self._flights.clear()  # every one is stored as sent: settled below, in nonce order
            with self.store.session() as s:
                txs = s.scalars(
                    select(RelayerTransaction)
                    .where(RelayerTransaction.status == "sent", RelayerTransaction.sender == self.sender.address)
                    .order_by(RelayerTransaction.nonce)
                ).all()
                orphans = s.scalars(
                    select(ReleaseIntent.id).where(
                        ReleaseIntent.status == "submitted",
                        ReleaseIntent.tx_hash.not_in(select(RelayerTransaction.tx_hash)),
                    )
                ).all()
            if orphans:
                self._requeue("", orphans, dropped=False)
            settled = 0
            for tx in txs:
                signed = SignedTx(tx_hash=tx.tx_hash, nonce=tx.nonce, raw=bytes(tx.raw))
                receipt = self.sender.receipt(tx.tx_hash)
                if receipt is None and not self.sender.known(tx.tx_hash):
                    try:
                        self.sender.send(signed)
                    except SendRefused:
                        receipt = self.sender.receipt(tx.tx_hash)
                        if receipt is None:
                            with self.store.session() as s:
                                ids = s.scalars(
                                    select(ReleaseIntent.id).where(ReleaseIntent.tx_hash == tx.tx_hash)
                                ).all()
                            self._requeue(tx.tx_hash, ids, dropped=True)
                            self.notify([i for i in ids if self._is_final(i)])
                            settled += 1
                            continue
                if receipt is None:
                    receipt = self.sender.wait(tx.tx_hash, timeout=self.receipt_timeout, tx=signed)
                self.notify(self._apply(receipt, tx.tx_hash))
                settled += 1
            if txs:
                self.sender.resync()
        from .reconcile import restore_lost_releases

        self.last_recovery = restore_lost_releases(self)
        if self.last_recovery.lost_transactions:
            self.sender.resync()
        return settled


async def _default_hop(func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _document_commitments(session: Any, document_ids: set[str]) -> dict[str, str]:
    """The commitment of each document (without loading its ciphertext)."""
    from db.models import DocumentRow

    if not document_ids:
        return {}
    rows = session.execute(
        select(DocumentRow.id, DocumentRow.commitment).where(DocumentRow.id.in_(padded(sorted(document_ids))))
    ).all()
    return {str(i): str(c) for i, c in rows}


def _b32(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
        return str(value)
    return value


def _event_signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(abi_type(i) for i in entry['inputs'])})"


def _block_time(receipt: dict[str, Any]) -> int | None:
    """The block's timestamp as the receipt's logs give it (``blockTimestamp``: anvil, recent geth);
    ``None`` from a node that does not."""
    for entry in receipt.get("logs") or ():
        stamp = entry.get("blockTimestamp")
        if stamp is not None:
            return int(stamp, 16) if isinstance(stamp, str) else int(stamp)
    return None
