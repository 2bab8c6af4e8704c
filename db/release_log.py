"""The vault's release log: the canonical bytes of its entries (one per release) and its reads.

The log's format lives here, beside its table, so that the vault (which writes it) and the
auditor (which checks it against the chain) share one definition."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from eth_utils import keccak
from sqlalchemy import func, select

from chain_client.ids import checksum

from .models import ReleaseLogRow
from .store import Store

#: Version tag every entry's canonical bytes start with.
LOG_PREFIX = b"qcl-release-log/1\n"


def release_id(grantee: str, request_id: bytes) -> str:
    """The id of a release: keccak256(grantee || request id); unique because request ids are."""
    return "0x" + keccak(bytes.fromhex(checksum(grantee)[2:]) + request_id).hex()


@dataclass(frozen=True)
class LogEntry:
    """What the vault released, to whom, under what, and where the chain recorded it.

    The canonical bytes (:meth:`canonical`) are the Merkle leaf of RFC 9162 checkpoints.
    No document content or personal identifier other than accounts appears here.
    """

    index: int
    release_id: str
    kind: str  # "grant" or "emergency"
    authority: str  # grant id, or emergency id
    subject: str
    grantee: str
    resource: str  # resource id (0x…)
    request_id: str
    document_id: str
    commitment: str
    tx_hash: str
    block_number: int
    released_at: int

    def canonical(self) -> bytes:
        """UTF-8 JSON with sorted keys and no whitespace, prefixed by a version tag."""
        return LOG_PREFIX + json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes) -> LogEntry:
        if not data.startswith(LOG_PREFIX):
            raise ValueError("not a release log entry")
        return cls(**json.loads(data[len(LOG_PREFIX) :]))


def log_size(store: Store) -> int:
    """Entries in the release log."""
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(ReleaseLogRow)) or 0)


def log_entries(store: Store, *, start: int = 0, end: int | None = None) -> list[bytes]:
    """Canonical bytes of log entries ``start`` (inclusive) to ``end`` (exclusive), in log order."""
    with store.session() as s:
        query = select(ReleaseLogRow.entry).where(ReleaseLogRow.idx >= start).order_by(ReleaseLogRow.idx)
        if end is not None:
            query = query.where(ReleaseLogRow.idx < end)
        return [bytes(e) for e in s.scalars(query).all()]
