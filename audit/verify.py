"""The verification engine of SPEC §7, over a trail of chain data from any source.

:class:`Verifier` replays a :class:`TrailSource` — the ledger's events from the deployment block
in chain order, each with its block's timestamp and, for releases, the signature and deadline
from the calldata — into a model of the rules (members, catalog, grants, emergencies), and
checks, for every release recorded in the requested block range:

1. it was covered at its block by a grant that was active, not revoked, not paused, inside its
   window, under ``maxUses``, naming that grantee and resource, with both parties active members,
   and its request id was not used before by that grantee — or by an approved, unexpired
   emergency whose scope covers it;
2. it carries a valid ``ReleaseRequest`` (``EmergencyReleaseRequest``) signature by the grantee
   (consumer), recomputed from the calldata under the deployment's EIP-712 domain;
3. the vault's release log and the chain agree one to one and field by field, and every
   checkpoint anchored on chain equals the RFC 9162 root of the log's first ``tree_size`` entries;
4. no personal data on chain: no member's name or organisation code and no emergency reason text
   appears in the calldata of any transaction to the ledger's contracts (reverted ones included).

Every difference is a :class:`Violation` naming the transaction or log entry that shows it.

Sources: :class:`audit.trail.RpcTrail` reads a node over JSON-RPC (no index needed; one request
per release transaction and per block), :class:`audit.trail.IndexTrail` reads the indexer's tables
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
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import ahocorasick_rs
import orjson

from chain_client import eip712
from chain_client.ids import WILDCARD
from db.release_log import LOG_PREFIX

from . import _sigcheck
from .merkle import MerkleLog, leaf_hash

_ROLE_ADMIN, _ROLE_CONSUMER, _ROLE_AUDITOR, _ROLE_SUBJECT = 1, 4, 8, 16
#: Catalog sensitivity from which a resource must be named in a grant (the wildcard does not cover it).
_NAMED_ONLY_SENSITIVITY = 3
_WILDCARD_HEX = "0x" + WILDCARD.hex()
_RELEASE_TYPEHASH = eip712.typehash("ReleaseRequest")
_EMERGENCY_RELEASE_TYPEHASH = eip712.typehash("EmergencyReleaseRequest")
#: Texts shorter than this are not searched for (too many chance matches in binary calldata).
MIN_TEXT_BYTES = 4
#: Signature jobs per worker chunk, and the fewest jobs for which worker processes are started.
CHUNK = 20_000
PARALLEL_MIN = 40_000

ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One ledger event as verification reads it.

    ``args`` is the JSON form of the event's arguments (see :func:`chain_client.indexer.jsonable`):
    32-byte values as lower-case ``0x`` hex, addresses EIP-55, integers as ints. For
    ``ReleaseRecorded`` and ``EmergencyReleaseRecorded``, ``signature`` and ``deadline`` are those of
    the calldata item that produced the event (None when the calldata holds no such item).
    """

    name: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    args: Mapping[str, Any]
    signature: bytes | None = None
    deadline: int | None = None


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

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["ok"] = self.ok
        return body


@dataclass(slots=True)
class _Grant:
    subject: str
    grantee: str
    resources: frozenset[str]
    valid_from: int
    valid_until: int
    max_uses: int
    uses: int = 0
    revoked: bool = False
    paused: bool = False


@dataclass(slots=True)
class _Emergency:
    resources: frozenset[str]
    consumers: frozenset[str]
    valid_from: int
    valid_until: int
    approvers: set[str] = field(default_factory=set)
    admin: bool = False
    auditor: bool = False


@dataclass(slots=True)
class _Release:
    """A release the chain recorded, for the comparison with the vault's log (check 3)."""

    tx_hash: str
    block_number: int
    kind: str
    authority: str
    subject: str | None
    grantee: str
    resource: str
    request_id: str


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
        self._pool: ProcessPoolExecutor | None = None
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


_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    """The process's pool of check-2 workers, started once and kept (starting one costs ~1 s).

    ``forkserver``: the API process has threads, which ``fork()`` would copy mid-flight.
    """
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_WORKERS != workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["audit._sigcheck"])
            _POOL, _POOL_WORKERS = (
                ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_sigcheck.ignore_interrupts),
                workers,
            )
        return _POOL


def _discard_pool(pool: ProcessPoolExecutor | None) -> None:
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
        first = report.from_block
        threshold = self.source.emergency_threshold()
        members: dict[str, tuple[int, bool]] = {}
        catalog: dict[str, int] = {}
        grants: dict[str, _Grant] = {}
        emergencies: dict[str, _Emergency] = {}
        releases: dict[tuple[str, str], _Release] = {}  # (grantee, request id) -> release
        checkpoints: list[tuple[int, bytes, str]] = []
        violations = report.violations

        def active(account: str, role: int) -> bool:
            roles, suspended = members.get(account, (0, False))
            return not suspended and roles & role == role

        replayed = 0
        for event in self.source.events(report.to_block):
            replayed += 1
            if progress and not replayed % 100_000:
                progress("events", replayed)
            a, name, tx = event.args, event.name, event.tx_hash
            in_range = event.block_number >= first
            if name == "ReleaseRecorded":
                grant_id, grantee, resource, request_id = a["grantId"], a["grantee"], a["resource"], a["requestId"]
                grant = grants.get(grant_id)
                key = (grantee.lower(), request_id)
                reused = key in releases
                releases[key] = _Release(
                    tx,
                    event.block_number,
                    "grant",
                    grant_id,
                    grant.subject if grant else None,
                    grantee,
                    resource,
                    request_id,
                )
                if grant is not None:
                    grant.uses += 1
                if not in_range:
                    continue
                report.releases += 1
                if reused:
                    violations.append(
                        Violation(1, "request_reused", f"request {request_id} of {grantee} released twice", tx)
                    )
                if grant is None:
                    violations.append(Violation(1, "unknown_grant", f"release under unknown grant {grant_id}", tx))
                    continue
                now = event.timestamp
                if grant.revoked:
                    violations.append(Violation(1, "grant_revoked", "released after the grant was revoked", tx))
                if grant.paused:
                    violations.append(Violation(1, "grant_paused", "released while the grant was paused", tx))
                if not grant.valid_from <= now < grant.valid_until:
                    violations.append(
                        Violation(
                            1,
                            "grant_window",
                            f"released at {now}, outside [{grant.valid_from}, {grant.valid_until})",
                            tx,
                        )
                    )
                if grant.max_uses and grant.uses > grant.max_uses:
                    violations.append(Violation(1, "grant_exhausted", f"use {grant.uses} of {grant.max_uses}", tx))
                if grantee != grant.grantee:
                    violations.append(Violation(1, "not_grantee", "the release names another grantee", tx))
                if not (
                    resource in grant.resources
                    or (
                        _WILDCARD_HEX in grant.resources
                        and resource != _WILDCARD_HEX
                        and catalog.get(resource, _NAMED_ONLY_SENSITIVITY) < _NAMED_ONLY_SENSITIVITY
                    )
                ):
                    violations.append(Violation(1, "resource_not_granted", f"resource {resource} not covered", tx))
                if not active(grant.subject, _ROLE_SUBJECT) or not active(grant.grantee, _ROLE_CONSUMER):
                    violations.append(
                        Violation(1, "member_inactive", "the subject or grantee was not an active member", tx)
                    )
                signatures.add(
                    _RELEASE_TYPEHASH
                    + bytes.fromhex(grant_id[2:] + resource[2:] + request_id[2:])
                    + (event.deadline or 0).to_bytes(32, "big"),
                    event.signature if event.deadline is not None else None,
                    grant.grantee,
                    tx,
                )
            elif name == "EmergencyReleaseRecorded":
                emergency_id, consumer, resource, request_id = (
                    a["emergencyId"],
                    a["consumer"],
                    a["resource"],
                    a["requestId"],
                )
                key = (consumer.lower(), request_id)
                reused = key in releases
                releases[key] = _Release(
                    tx, event.block_number, "emergency", emergency_id, a["subject"], consumer, resource, request_id
                )
                if not in_range:
                    continue
                report.emergency_releases += 1
                if reused:
                    violations.append(
                        Violation(1, "request_reused", f"request {request_id} of {consumer} released twice", tx)
                    )
                scope = emergencies.get(emergency_id)
                now = event.timestamp
                if scope is None:
                    violations.append(Violation(1, "unknown_emergency", "release under an unknown emergency", tx))
                elif not (len(scope.approvers) >= threshold and scope.admin and scope.auditor):
                    violations.append(Violation(1, "emergency_not_approved", "emergency lacked approvals", tx))
                elif not scope.valid_from <= now < scope.valid_until:
                    violations.append(Violation(1, "emergency_outside_window", "outside the window", tx))
                elif resource not in scope.resources or consumer not in scope.consumers:
                    violations.append(Violation(1, "emergency_out_of_scope", "outside the scope", tx))
                signatures.add(
                    _EMERGENCY_RELEASE_TYPEHASH
                    + _word(emergency_id)
                    + _address_word(a["subject"])
                    + _word(resource)
                    + _word(request_id)
                    + (event.deadline or 0).to_bytes(32, "big"),
                    event.signature if event.deadline is not None else None,
                    consumer,
                    tx,
                )
            elif name in ("MemberOnboarded", "MemberUpdated"):
                members[a["account"]] = (int(a["roles"]), members.get(a["account"], (0, False))[1])
            elif name == "MemberSuspensionChanged":
                members[a["account"]] = (members.get(a["account"], (0, False))[0], bool(a["suspended"]))
            elif name in ("ResourceRegistered", "ResourceUpdated"):
                catalog[a["resource"]] = int(a["sensitivity"])
            elif name == "GrantRecorded":
                grants[a["grantId"]] = _Grant(
                    subject=a["subject"],
                    grantee=a["grantee"],
                    resources=frozenset(a["resources"]),
                    valid_from=int(a["validFrom"]),
                    valid_until=int(a["validUntil"]),
                    max_uses=int(a["maxUses"]),
                )
                report.grants += in_range
            elif name == "GrantRevoked" and a["grantId"] in grants:
                grants[a["grantId"]].revoked = True
            elif name == "GrantPauseChanged" and a["grantId"] in grants:
                grants[a["grantId"]].paused = bool(a["paused"])
            elif name == "EmergencyProposed":
                emergencies[a["emergencyId"]] = _Emergency(
                    resources=frozenset(a["resources"]),
                    consumers=frozenset(a["consumers"]),
                    valid_from=int(a["validFrom"]),
                    valid_until=int(a["validUntil"]),
                )
            elif name == "EmergencyApproved" and a["emergencyId"] in emergencies:
                emergency = emergencies[a["emergencyId"]]
                emergency.approvers.add(a["approver"])
                roles = members.get(a["approver"], (0, False))[0]
                emergency.admin |= bool(roles & _ROLE_ADMIN)
                emergency.auditor |= bool(roles & _ROLE_AUDITOR)
            elif name == "CheckpointAnchored":
                checkpoints.append((int(a["treeSize"]), _word(a["rootHash"]), tx))
        if progress:
            progress("events", replayed)
        return releases, checkpoints

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
                if not raw.startswith(LOG_PREFIX):
                    raise ValueError("no version tag")
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
            if release.tx_hash != tx_hash and release.tx_hash != str(tx_hash).lower():
                violations.append(
                    Violation(3, "receipt_mismatch", "log and chain name different transactions", tx_hash, index)
                )
            elif (
                release.kind != entry.get("kind")
                or not _same(release.authority, entry.get("authority"))
                or not _same(release.resource, entry.get("resource"))
                or release.block_number != block
                or (release.subject is not None and not _same(release.subject, entry.get("subject")))
            ):
                violations.append(
                    Violation(3, "log_mismatch", "the log entry and the chain's receipt differ", tx_hash, index)
                )
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
            if size >= 64 << 20:
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
