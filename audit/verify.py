"""The verification engine of SPEC §7, over a trail of chain data from any source.

:class:`Verifier` replays a :class:`TrailSource` — the ledger's events from the deployment block
in chain order, each with its block's timestamp — into the state of :mod:`audit.rules` (members,
catalog, grants, emergencies, used request ids), and checks, for every release recorded in the
requested block range:

1. the contract should have recorded it: :func:`audit.rules.check_release` (or
   :func:`~audit.rules.check_emergency_release`) at its block and time gives no error — the same
   rules, in the same order, as ``ConsentLedger.sol`` (signed deadline, grant known, not revoked,
   inside its window, under ``maxUses``, not paused, the resource covered — the wildcard as fixed
   at the grant's block —, both parties active members, request id unused; for an emergency: not
   cancelled, approved now — approvers still active in the role they approved in —, inside its
   window and scope, consumer and subject members). The first
   failing rule is the violation, as it would have been the contract's error;
2. it carries a valid ``ReleaseRequest`` (``EmergencyReleaseRequest``) signature by the grantee
   (consumer), recomputed from the event's own arguments (``deadline`` and ``signature`` are in the
   event, so a release sent through another contract verifies too) under the deployment's
   EIP-712 domain;
3. the vault's release log and the chain agree one to one and field by field, and every
   checkpoint anchored on chain equals the RFC 9162 root of the log's first ``tree_size`` entries;
4. no personal data on chain: no member's name or organisation code and no emergency reason text
   appears in the calldata of any transaction to the ledger's contracts (reverted ones included).

Every difference is a :class:`Violation` naming the transaction or log entry that shows it.

Sources: :class:`audit.trail.RpcTrail` reads a node over JSON-RPC (no index needed; one request
per block with events and per block scanned), :class:`audit.trail.IndexTrail` reads the indexer's tables
(the fast path), and the benchmark builds synthetic trails in memory.

Speed. Check 2 is most of the work (two Keccak-256 and one secp256k1 verification per release):
it runs in worker processes (:mod:`audit._sigcheck`), fed in chunks while this process replays the
rules, and calldata is searched with an Aho-Corasick automaton over all texts at once.
``scripts/bench_verify.py`` measures it; figures are in ``BENCHMARKS.md``.
"""

from __future__ import annotations

import bisect
import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import ahocorasick_rs
import orjson

from chain_client import eip712
from db.release_log import LOG_PREFIX

from . import _sigcheck, rules, snapshot
from .merkle import MerkleLog, leaf_hash

_RELEASE_TYPEHASH = eip712.typehash("ReleaseRequest")
_EMERGENCY_RELEASE_TYPEHASH = eip712.typehash("EmergencyReleaseRequest")
#: Texts shorter than this are not searched for (too many chance matches in binary calldata).
MIN_TEXT_BYTES = 4
#: Signature jobs per worker chunk, and the fewest jobs for which worker processes are started.
CHUNK = 20_000
PARALLEL_MIN = 40_000
#: Events replayed between two ``progress("events", ...)`` calls.
PROGRESS_EVERY = 100_000
#: Calldata searched at once for check 4 (bytes).
SCAN_BYTES = 64 << 20

ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One ledger event as verification reads it.

    ``args`` is the JSON form of the event's arguments (see :func:`chain_client.indexer.jsonable`):
    32-byte values and byte strings as lower-case ``0x`` hex, addresses EIP-55, integers as ints
    (or decimal strings when large). ``ReleaseRecorded`` and ``EmergencyReleaseRecorded`` carry the
    grantee's signed ``deadline`` and ``signature`` in their args (SPEC §9.8), whatever contract
    sent the release.
    """

    name: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    args: Mapping[str, Any]


class TrailSource(Protocol):
    """What verification reads. Implementations: ``audit.trail.RpcTrail``, ``audit.trail.IndexTrail``."""

    def head(self) -> int:
        """The last block the source can give."""
        ...

    def domain(self) -> eip712.Eip712Domain:
        """The ledger's EIP-712 domain (chain id and contract address)."""
        ...

    def emergency_threshold(self) -> int: ...

    def events(self, to_block: int) -> Iterable[TrailEvent]:
        """Every ledger event from the deployment block through ``to_block``, in chain order."""
        ...

    def transactions(self, from_block: int, to_block: int) -> Iterable[tuple[str, bytes]]:
        """(hash, calldata) of every transaction to the ledger's contracts in the range."""
        ...

    def log_entries(self) -> Sequence[bytes]:
        """The vault's release log, in order (canonical bytes of each entry)."""
        ...

    def private_texts(self) -> Sequence[str]:
        """Names, organisation codes and emergency reasons that must never be on chain."""
        ...


@dataclass(frozen=True)
class Violation:
    check: int
    code: str
    detail: str
    tx_hash: str | None = None
    log_index: int | None = None


@dataclass(frozen=True)
class Relocation:
    """A release the log holds at one block and the chain at another, in the same transaction with
    the same fields (check 3): its first block was lost (a reorg, a node back from an older state)
    and the vault sent the same signed bytes again (vault/reconcile.py), so the contract checked it
    again at ``chain_block``. Reported, not a violation: the log and the chain still agree one to one."""

    tx_hash: str
    log_index: int
    logged_block: int
    chain_block: int


@dataclass
class Report:
    from_block: int
    to_block: int
    releases: int = 0
    emergency_releases: int = 0
    grants: int = 0
    log_entries: int = 0
    checkpoints: int = 0
    transactions_scanned: int = 0
    signatures_checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    relocated: list[Relocation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["ok"] = self.ok
        return body


@dataclass(slots=True)
class _Release:
    """A release the chain recorded, for the comparison with the vault's log (check 3). The replay
    keys it by (grantee, request id), so neither is kept here."""

    tx_hash: str
    block_number: int
    kind: str
    authority: str
    subject: str | None
    resource: str


def _compare(report: Report, release: _Release, entry: dict[str, Any], index: int) -> None:
    """Check 3 for one log entry and the release the chain recorded under its key: the same
    transaction, with the same kind, authority, resource and subject; a different block only is a
    :class:`Relocation`, not a violation."""
    tx_hash, block = entry["tx_hash"], entry["block_number"]
    if release.tx_hash != tx_hash and release.tx_hash != str(tx_hash).lower():
        report.violations.append(
            Violation(3, "receipt_mismatch", "log and chain name different transactions", tx_hash, index)
        )
    elif (
        release.kind != entry.get("kind")
        or not _same(release.authority, entry.get("authority"))
        or not _same(release.resource, entry.get("resource"))
        or not isinstance(block, int)
        or isinstance(block, bool)
        or (release.subject is not None and not _same(release.subject, entry.get("subject")))
    ):
        report.violations.append(
            Violation(3, "log_mismatch", "the log entry and the chain's receipt differ", tx_hash, index)
        )
    elif release.block_number != block:  # the same transaction, mined again after its block was lost
        report.relocated.append(Relocation(release.tx_hash, index, block, release.block_number))


def _word(hex32: str) -> bytes:
    return bytes.fromhex(hex32[2:])


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


class _Signatures:
    """Check-2 jobs, checked in chunks by worker processes (or here, for small trails)."""

    def __init__(self, domain_separator: bytes, workers: int) -> None:
        self.domain_separator = domain_separator
        self.workers = workers
        self.jobs: list[_sigcheck.Job] = []
        self.tx_hashes: list[str] = []
        self._pending: list[tuple[int, list[_sigcheck.Job]]] = []
        self._futures: list[tuple[int, list[_sigcheck.Job], Future[list[_sigcheck.Problem]]]] = []
        self._pool: Executor | None = None
        self._start = 0
        self.count = 0

    def add(self, encoded: bytes, signature: bytes | None, signer: str, tx_hash: str) -> None:
        self.jobs.append((encoded, signature, signer.lower()))
        self.tx_hashes.append(tx_hash)
        self.count += 1
        if len(self.jobs) - self._start >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        chunk = self.jobs[self._start :]
        if not chunk:
            return
        self._pending.append((self._start, chunk))
        self._start = len(self.jobs)
        if self.workers > 1 and (self._pool is not None or len(self.jobs) >= PARALLEL_MIN):
            self._pool = self._pool or _shared_pool(self.workers)
            for start, jobs in self._pending:
                future = self._pool.submit(_sigcheck.check_chunk, self.domain_separator, jobs)
                self._futures.append((start, jobs, future))
            self._pending.clear()

    def results(self) -> Iterator[tuple[int, str, str]]:
        """(job number, code, detail) of every failed job, in job order."""
        self._flush()
        for start, jobs in self._pending:  # never handed to workers: check here
            for position, code, detail in _sigcheck.check_chunk(self.domain_separator, jobs):
                yield start + position, code, detail
        for start, jobs, future in self._futures:
            try:
                problems = future.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): check here instead
                _discard_pool(self._pool)
                problems = _sigcheck.check_chunk(self.domain_separator, jobs)
            for position, code, detail in problems:
                yield start + position, code, detail


_POOL: Executor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()
#: How worker processes start: ``forkserver`` (the API process has threads, which ``fork()`` would
#: copy mid-flight); ``spawn`` in a forked copy of a process that had started its forkserver.
_START_METHOD = "forkserver"
_FORKSERVER_STARTED = False


def _start_pool(workers: int) -> Executor:
    """A new pool of ``workers`` check-2 processes."""
    global _FORKSERVER_STARTED
    context = multiprocessing.get_context(_START_METHOD)
    if _START_METHOD == "forkserver":
        context.set_forkserver_preload(["audit._sigcheck"])
        _FORKSERVER_STARTED = True
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_sigcheck.ignore_interrupts)


def _shared_pool(workers: int) -> Executor:
    """The process's pool of check-2 workers, started once and kept (starting one costs ~1 s)."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_WORKERS != workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL, _POOL_WORKERS = _start_pool(workers), workers
        return _POOL


def _forget_pool_after_fork() -> None:
    """In the child of a ``fork()``: the parent's pool is not this process's.

    Its queue threads did not come along, so work submitted to it would wait forever; and
    multiprocessing's forkserver, once started, is the parent's child, which this process cannot
    wait for. The child starts its own pool when it needs one (``spawn`` if a forkserver ran).
    """
    global _POOL, _POOL_WORKERS, _POOL_LOCK, _START_METHOD
    if _FORKSERVER_STARTED:
        _START_METHOD = "spawn"
    _POOL, _POOL_WORKERS, _POOL_LOCK = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _discard_pool(pool: Executor | None) -> None:
    global _POOL
    with _POOL_LOCK:
        if pool is not None and pool is _POOL:
            _POOL = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def warm_up(workers: int | None = None) -> None:
    """Start the worker processes now (the API does at start-up), so a first verify does not wait."""
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count > 1:
        pool = _shared_pool(count)
        for future in [pool.submit(_sigcheck.check_chunk, b"", []) for _ in range(count)]:
            future.result()


#: Check-1 violation code of each contract error a recorded release should have met (SPEC §7).
RULE_CODES: dict[str, str] = {
    "ConsentLedgerExpiredDeadline": "deadline_expired",
    "ConsentLedgerUnknownGrant": "unknown_grant",
    "ConsentLedgerGrantRevoked": "grant_revoked",
    "ConsentLedgerGrantExpired": "grant_window",
    "ConsentLedgerGrantNotYetValid": "grant_window",
    "ConsentLedgerGrantExhausted": "grant_exhausted",
    "ConsentLedgerGrantPaused": "grant_paused",
    "ConsentLedgerResourceNotGranted": "resource_not_granted",
    "ConsentLedgerInactiveMember": "member_inactive",
    "ConsentLedgerRequestUsed": "request_reused",
    "ConsentLedgerUnknownEmergency": "unknown_emergency",
    "ConsentLedgerEmergencyCancelled": "emergency_cancelled",
    "ConsentLedgerEmergencyNotApproved": "emergency_not_approved",
    "ConsentLedgerEmergencyOutsideWindow": "emergency_outside_window",
    "ConsentLedgerEmergencyOutOfScope": "emergency_out_of_scope",
}
#: Every violation code verification can emit, with its check (tests/audit/test_violation_table.py
#: has one row per code and fails when one is missing).
VIOLATION_CODES: dict[str, int] = {
    **dict.fromkeys(RULE_CODES.values(), 1),
    "not_grantee": 1,
    **dict.fromkeys((_sigcheck.MISSING, _sigcheck.MALFORMED, _sigcheck.MALLEABLE, _sigcheck.INVALID), 2),
    **dict.fromkeys(
        (
            "log_entry_malformed",
            "log_out_of_order",
            "log_duplicate",
            "release_without_receipt",
            "receipt_mismatch",
            "log_mismatch",
            "receipt_without_release",
            "checkpoint_beyond_log",
            "checkpoint_mismatch",
        ),
        3,
    ),
    "personal_data_on_chain": 4,
}
#: Deadline assumed for a release event that carries none (check 2 reports it as unsigned).
_NO_DEADLINE = 2**256 - 1


def _proof(args: Mapping[str, Any]) -> tuple[int | None, bytes | None]:
    """The signed ``deadline`` and ``signature`` a release event carries in its arguments."""
    deadline, signature = args.get("deadline"), args.get("signature")
    if deadline is None or signature is None:
        return None, None
    raw = bytes.fromhex(signature[2:]) if isinstance(signature, str) else bytes(signature)
    return int(deadline), raw


class _Replay:
    """The events replayed into a :class:`audit.rules.State`; every release in range asked of the rules."""

    def __init__(self, report: Report, signatures: _Signatures, threshold: int) -> None:
        self.report = report
        self.signatures = signatures
        self.state = rules.State(threshold=threshold)
        self.releases: dict[tuple[str, str], _Release] = {}  # (grantee, request id) -> release
        self.checkpoints: list[tuple[int, bytes, str]] = []
        #: Events checked here besides being applied (the rest only change the state, audit.snapshot).
        self._checks: dict[str, Callable[[TrailEvent], None]] = {
            "ReleaseRecorded": self._release,
            "EmergencyReleaseRecorded": self._emergency_release,
            "GrantRecorded": self._grant,
            "CheckpointAnchored": self._checkpoint,
        }

    def apply(self, event: TrailEvent) -> None:
        check = self._checks.get(event.name)
        if check is not None:
            self.state.block, self.state.timestamp = event.block_number, event.timestamp
            check(event)
        snapshot.apply_event(self.state, event.name, event.args, block=event.block_number, timestamp=event.timestamp)

    def _violation(self, error: str | None, detail: str, tx: str) -> None:
        if error is not None:
            self.report.violations.append(Violation(1, RULE_CODES.get(error, error), f"{error}: {detail}", tx))

    # -- releases

    def _release(self, event: TrailEvent) -> None:
        a, tx = event.args, event.tx_hash
        grant_id, grantee, resource, request_id = a["grantId"], a["grantee"], a["resource"], a["requestId"]
        grant = self.state.grants.get(grant_id)
        terms = grant.terms if grant is not None else None
        self.releases[(grantee.lower(), request_id)] = _Release(
            tx, event.block_number, "grant", grant_id, terms.subject if terms else None, resource
        )
        deadline, signature = _proof(a)
        if event.block_number >= self.report.from_block:
            self.report.releases += 1
            if terms is not None and terms.grantee != grantee:
                self.report.violations.append(Violation(1, "not_grantee", "the release names another grantee", tx))
            item = rules.ReleaseItem(grant_id, resource, request_id, _NO_DEADLINE if deadline is None else deadline)
            self._violation(rules.check_release(self.state, item), f"release of {resource} under {grant_id}", tx)
            self.signatures.add(
                _RELEASE_TYPEHASH + _word(grant_id) + _word(resource) + _word(request_id) + _deadline_word(deadline),
                signature,
                grantee,
                tx,
            )

    def _emergency_release(self, event: TrailEvent) -> None:
        a, tx = event.args, event.tx_hash
        emergency_id, consumer, subject = a["emergencyId"], a["consumer"], a["subject"]
        resource, request_id = a["resource"], a["requestId"]
        self.releases[(consumer.lower(), request_id)] = _Release(
            tx, event.block_number, "emergency", emergency_id, subject, resource
        )
        deadline, signature = _proof(a)
        if event.block_number >= self.report.from_block:
            self.report.emergency_releases += 1
            item = rules.EmergencyRelease(
                emergency_id, consumer, subject, resource, request_id, _NO_DEADLINE if deadline is None else deadline
            )
            self._violation(rules.check_emergency_release(self.state, item), f"release under {emergency_id}", tx)
            self.signatures.add(
                _EMERGENCY_RELEASE_TYPEHASH
                + _word(emergency_id)
                + _address_word(subject)
                + _word(resource)
                + _word(request_id)
                + _deadline_word(deadline),
                signature,
                consumer,
                tx,
            )

    def _grant(self, event: TrailEvent) -> None:
        self.report.grants += event.block_number >= self.report.from_block

    def _checkpoint(self, event: TrailEvent) -> None:
        a = event.args
        self.checkpoints.append((int(a["treeSize"]), _word(a["rootHash"]), event.tx_hash))


def _deadline_word(deadline: int | None) -> bytes:
    return (deadline or 0).to_bytes(32, "big")


class Verifier:
    """Runs checks 1-4 over a :class:`TrailSource`. ``workers``: processes for check 2 (default: CPUs)."""

    def __init__(self, source: TrailSource, *, workers: int | None = None) -> None:
        self.source = source
        self.workers = workers if workers is not None else (os.cpu_count() or 1)

    def verify(self, *, from_block: int = 0, to_block: int | None = None, progress: ProgressFn | None = None) -> Report:
        """Checks 1-4 for the releases in ``from_block..to_block`` (default: through the head).

        ``progress(stage, count)`` is called now and then with the events replayed so far
        (stage ``"events"``), then once per later stage (``"log"``, ``"calldata"``, ``"signatures"``).
        """
        collecting = gc.isenabled()
        gc.disable()  # the replay builds millions of objects and no cycles: spare the collector's passes
        try:
            return self._verify(from_block, to_block, progress)
        finally:
            if collecting:
                gc.enable()

    def _verify(self, from_block: int, to_block: int | None, progress: ProgressFn | None) -> Report:
        end = self.source.head() if to_block is None else to_block
        report = Report(from_block=from_block, to_block=end)
        domain = self.source.domain()
        signatures = _Signatures(_domain_separator(domain), self.workers)
        chain_releases, checkpoints = self._replay(report, signatures, progress)
        # Checks 3 and 4 run here while the workers check signatures.
        self._check_log(report, chain_releases, checkpoints)
        if progress:
            progress("log", report.log_entries)
        self._check_calldata(report)
        if progress:
            progress("calldata", report.transactions_scanned)
        for job, code, detail in signatures.results():
            report.violations.append(Violation(2, code, detail, tx_hash=signatures.tx_hashes[job]))
        report.signatures_checked = signatures.count
        if progress:
            progress("signatures", signatures.count)
        report.violations.sort(key=lambda v: v.check)
        return report

    # ---- check 1 (and the jobs of check 2) --------------------------------------------------------

    def _replay(
        self, report: Report, signatures: _Signatures, progress: ProgressFn | None
    ) -> tuple[dict[tuple[str, str], _Release], list[tuple[int, bytes, str]]]:
        replay = _Replay(report, signatures, self.source.emergency_threshold())
        replayed = 0
        for event in self.source.events(report.to_block):
            replayed += 1
            if progress and not replayed % PROGRESS_EVERY:
                progress("events", replayed)
            replay.apply(event)
        if progress:
            progress("events", replayed)
        return replay.releases, replay.checkpoints

    # ---- check 3 --------------------------------------------------------------------------------

    def _check_log(
        self,
        report: Report,
        chain: dict[tuple[str, str], _Release],
        checkpoints: list[tuple[int, bytes, str]],
    ) -> None:
        entries = self.source.log_entries()
        report.log_entries = len(entries)
        first, last = report.from_block, report.to_block
        violations = report.violations
        leaves: list[bytes] = []
        logged: set[tuple[str, str]] = set()
        prefix = len(LOG_PREFIX)
        for index, raw in enumerate(entries):
            leaves.append(leaf_hash(raw))
            try:
                if not raw.startswith(LOG_PREFIX):  # no version tag: unparsable like bad JSON
                    raise ValueError
                entry = orjson.loads(raw[prefix:])
                position, tx_hash, block = entry["index"], entry["tx_hash"], entry["block_number"]
                key = (entry["grantee"].lower(), entry["request_id"].lower())
            except (ValueError, TypeError, KeyError, AttributeError):  # orjson.JSONDecodeError is a ValueError
                violations.append(Violation(3, "log_entry_malformed", "unparsable log entry", log_index=index))
                continue
            if position != index:
                violations.append(
                    Violation(3, "log_out_of_order", f"entry {position} at position {index}", tx_hash, index)
                )
            if key in logged:
                violations.append(Violation(3, "log_duplicate", "the release is logged twice", tx_hash, index))
            logged.add(key)
            release = chain.get(key)
            if release is None:
                if isinstance(block, int) and first <= block <= last:
                    violations.append(
                        Violation(
                            3,
                            "release_without_receipt",
                            "the vault logged a release the chain never recorded",
                            tx_hash,
                            index,
                        )
                    )
                continue
            _compare(report, release, entry, index)
        for key, release in chain.items():
            if first <= release.block_number <= last and key not in logged:
                violations.append(
                    Violation(
                        3,
                        "receipt_without_release",
                        "the chain recorded a release the vault never logged",
                        release.tx_hash,
                    )
                )
        report.checkpoints = len(checkpoints)
        tree = MerkleLog(leaves)
        for size, root, tx in checkpoints:
            if size > tree.size:
                violations.append(
                    Violation(3, "checkpoint_beyond_log", f"checkpoint of {size} entries, log has {tree.size}", tx)
                )
            elif tree.root(size) != root:
                violations.append(
                    Violation(3, "checkpoint_mismatch", f"the log's root at size {size} differs from the anchor", tx)
                )

    # ---- check 4 --------------------------------------------------------------------------------

    def _check_calldata(self, report: Report) -> None:
        needles = sorted({t.encode() for t in self.source.private_texts() if len(t.encode()) >= MIN_TEXT_BYTES})
        automaton = ahocorasick_rs.BytesAhoCorasick(needles) if needles else None
        hashes: list[str] = []
        blob: list[bytes] = []
        ends: list[int] = []
        size = 0

        def scan() -> None:
            if automaton is None or not blob:
                return
            data = b"".join(blob)
            flagged: set[int] = set()
            starts = [0, *ends[:-1]]
            for _needle, start, stop in automaton.find_matches_as_indexes(data, overlapping=True):
                tx = bisect.bisect_right(ends, start)
                if tx not in flagged and stop <= ends[tx] and start >= starts[tx]:
                    flagged.add(tx)
            for tx in sorted(flagged):
                report.violations.append(
                    Violation(
                        4,
                        "personal_data_on_chain",
                        "calldata contains a member's name, an org code or a reason text",
                        tx_hash=hashes[tx],
                    )
                )

        for tx_hash, data in self.source.transactions(report.from_block, report.to_block):
            report.transactions_scanned += 1
            hashes.append(tx_hash)
            blob.append(data)
            size += len(data)
            ends.append(size)
            if size >= SCAN_BYTES:
                scan()
                hashes, blob, ends, size = [], [], [], 0
        scan()


def _same(chain_value: str, logged: object) -> bool:
    """Equal hex values, whatever the case of the log's copy (addresses are EIP-55 on chain)."""
    return chain_value == logged or (isinstance(logged, str) and chain_value.lower() == logged.lower())


def _domain_separator(domain: eip712.Eip712Domain) -> bytes:
    """The EIP-712 domain separator, computed here rather than asked of the contract."""
    message = {"grantId": bytes(32), "resource": bytes(32), "requestId": bytes(32), "deadline": 0}
    return bytes(eip712.signable(domain, "ReleaseRequest", message).header)
