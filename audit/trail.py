"""Audit (SPEC §7): the trail of ledger events, and the sources verification reads.

The checks themselves are in :mod:`audit.verify`; this module gives them their data:

* :class:`RpcTrail` reads a node over JSON-RPC: every event of both contracts (release events carry
  their signed request's deadline and signature), the timestamp of each block with an event, and
  every block in the range for the calldata scan. Needs nothing but the node; slow on long
  chains.
* :class:`IndexTrail` reads the indexer's tables (:mod:`db.index_store`), where the release
  signatures, block timestamps and calldata were stored at index time: no RPC at all. Verifies
  up to the indexer's cursor; the API uses it when the indexer runs.

:class:`Auditor` is what the API and the CLI call: :meth:`Auditor.verify` and :meth:`Auditor.trail`,
through the index when it has one, over RPC otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from chain_client import Ledger, eip712
from chain_client.indexer import Indexer, jsonable, normalize_address

from .verify import ProgressFn, Report, TrailEvent, Verifier, Violation

__all__ = ["Auditor", "IndexTrail", "Report", "RpcTrail", "Violation"]

#: Events the trail shows (grants, revocations, pauses, releases, emergencies).
TRAIL_EVENTS = (
    "GrantRecorded",
    "GrantRevoked",
    "GrantPauseChanged",
    "ReleaseRecorded",
    "EmergencyProposed",
    "EmergencyApproved",
    "EmergencyCancelled",
    "EmergencyReleaseRecorded",
)
#: Events verification replays.
VERIFY_EVENTS = (
    "MemberOnboarded",
    "MemberUpdated",
    "MemberSuspensionChanged",
    "ResourceRegistered",
    "ResourceUpdated",
    *TRAIL_EVENTS,
    "CheckpointAnchored",
)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class RpcTrail:
    """A :class:`audit.verify.TrailSource` reading the ledger's node over JSON-RPC."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        log_entries: Callable[[], Sequence[bytes]],
        private_texts: Callable[[], Sequence[str]] = lambda: [],
    ) -> None:
        self.ledger = ledger
        self._log_entries = log_entries
        self._private_texts = private_texts

    def head(self) -> int:
        return self.ledger.head_block()

    def domain(self) -> eip712.Eip712Domain:
        return self.ledger.domain()

    def emergency_threshold(self) -> int:
        return int(self.ledger.tx.call(self.ledger.consent.functions.emergencyThreshold()))

    def raw_events(self, names: Iterable[str], to_block: int) -> list[Any]:
        found: list[Any] = []
        for name in names:
            found.extend(self.ledger.events(name, from_block=self.ledger.deployment.deploy_block, to_block=to_block))
        found.sort(key=lambda e: (e.blockNumber, e.logIndex))
        return found

    def events(self, to_block: int) -> Iterator[TrailEvent]:
        timestamps: dict[int, int] = {}
        for raw in self.raw_events(VERIFY_EVENTS, to_block):
            number = int(raw.blockNumber)
            if number not in timestamps:
                timestamps[number] = self.ledger.block_timestamp(number)
            tx = _hex(raw.transactionHash)
            yield TrailEvent(raw.event, number, int(raw.logIndex), tx, timestamps[number], jsonable(dict(raw.args)))

    def transactions(self, from_block: int, to_block: int) -> Iterator[tuple[str, bytes]]:
        addresses = {self.ledger.consent.address.lower(), self.ledger.anchor.address.lower()}
        w3 = self.ledger.w3
        for block in range(max(from_block, self.ledger.deployment.deploy_block), to_block + 1):
            for tx in w3.eth.get_block(block, full_transactions=True)["transactions"]:
                if isinstance(tx, bytes) or not tx.get("to") or str(tx["to"]).lower() not in addresses:
                    continue
                yield _hex(tx["hash"]), bytes(tx["input"])

    def log_entries(self) -> Sequence[bytes]:
        return self._log_entries()

    def private_texts(self) -> Sequence[str]:
        return self._private_texts()


class IndexTrail(RpcTrail):
    """A :class:`audit.verify.TrailSource` reading the indexer's tables; verifies up to its cursor.

    Only the domain and the emergency threshold (both fixed at deployment) are read from the node.
    """

    def __init__(
        self,
        indexer: Indexer,
        *,
        log_entries: Callable[[], Sequence[bytes]],
        private_texts: Callable[[], Sequence[str]] = lambda: [],
    ) -> None:
        super().__init__(indexer.ledger, log_entries=log_entries, private_texts=private_texts)
        self.indexer = indexer
        self._threshold: int | None = None

    def head(self) -> int:
        cursor = self.indexer.cursor()
        return cursor.number if cursor is not None else self.ledger.deployment.deploy_block - 1

    def emergency_threshold(self) -> int:
        if self._threshold is None:
            self._threshold = super().emergency_threshold()
        return self._threshold

    def events(self, to_block: int) -> Iterator[TrailEvent]:
        for event in self.indexer.store.stream(VERIFY_EVENTS, to_block):
            args = event.args
            if event.signature is not None and "signature" not in args:  # v1 events: the proof from calldata
                args = {**args, "deadline": event.deadline, "signature": event.signature}
            yield TrailEvent(
                event.event, event.block_number, event.log_index, event.tx_hash, event.block_timestamp or 0, args
            )

    def transactions(self, from_block: int, to_block: int) -> Iterator[tuple[str, bytes]]:
        for tx in self.indexer.transactions(from_block=from_block, to_block=to_block):
            yield tx.hash, bytes.fromhex(tx.input[2:])


class Auditor:
    """Trail and verification of one deployment: through ``indexer`` when given, over RPC otherwise."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        log_entries: Callable[[], Sequence[bytes]],
        private_texts: Callable[[], Sequence[str]] = lambda: [],
        indexer: Indexer | None = None,
        workers: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.indexer = indexer
        self.workers = workers
        self.rpc = RpcTrail(ledger, log_entries=log_entries, private_texts=private_texts)
        self.source: RpcTrail = (
            IndexTrail(indexer, log_entries=log_entries, private_texts=private_texts)
            if indexer is not None
            else self.rpc
        )

    def head(self) -> int:
        """The last block verification and the trail can cover (the index's cursor, or the chain's head)."""
        return self.source.head()

    def event_count(self, to_block: int) -> int | None:
        """Events a verification through ``to_block`` replays (None over RPC: not known in advance)."""
        return self.indexer.store.count(VERIFY_EVENTS, to_block) if self.indexer is not None else None

    def verify(self, *, from_block: int = 0, to_block: int | None = None, progress: ProgressFn | None = None) -> Report:
        head = self.source.head()
        end = head if to_block is None else min(to_block, head)
        return Verifier(self.source, workers=self.workers).verify(
            from_block=from_block, to_block=end, progress=progress
        )

    def trail(
        self,
        *,
        subject: str | None = None,
        grantee: str | None = None,
        resource: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[dict[str, Any]]:
        """Grants, revocations, pauses, releases and emergencies in chain order, filtered.

        ``subject`` and ``grantee`` also match the releases, revocations and pauses of their grants;
        ``resource`` matches releases of it and grants and emergencies that name it.
        """
        head = self.head()
        end = head if to_block is None else min(to_block, head)
        subject = normalize_address(subject) if subject else None
        grantee = normalize_address(grantee) if grantee else None
        resource_hex = _hex(resource) if resource is not None else None
        if self.indexer is not None:  # the subject column also holds the subject of a grant's releases
            indexed = self.indexer.events(event=TRAIL_EVENTS, to_block=end, subject=subject)
            rows = [(e.event, e.block_number, e.log_index, e.tx_hash, e.args) for e in indexed]
        else:
            raw = self.rpc.raw_events(TRAIL_EVENTS, end)
            rows = [(e.event, e.blockNumber, e.logIndex, _hex(e.transactionHash), jsonable(dict(e.args))) for e in raw]
        grants = {r[4]["grantId"]: r[4] for r in rows if r[0] == "GrantRecorded"}
        out = []
        for name, block, log_index, tx_hash, args in rows:
            if block < from_block:
                continue
            grant = grants.get(args.get("grantId", ""), {})
            who_subject = args.get("subject") or grant.get("subject")
            who_grantee = args.get("grantee") or args.get("consumer") or grant.get("grantee")
            resources = (
                [args["resource"]] if "resource" in args else list(args.get("resources", grant.get("resources", [])))
            )
            if subject and who_subject != subject:
                continue
            if grantee and who_grantee != grantee:
                continue
            if resource_hex and resource_hex not in resources:
                continue
            out.append({"event": name, "block_number": block, "log_index": log_index, "tx_hash": tx_hash, "args": args})
        return out
