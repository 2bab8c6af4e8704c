"""Entries of the vault's release log: canonical bytes, one per release."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from eth_utils import keccak, to_checksum_address

#: Version tag every entry's canonical bytes start with.
LOG_PREFIX = b"qcl-release-log/1\n"


def release_id(grantee: str, request_id: bytes) -> str:
    """The id of a release: keccak256(grantee || request id); unique because request ids are."""
    return "0x" + keccak(bytes.fromhex(to_checksum_address(grantee)[2:]) + request_id).hex()


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
