"""Identifiers of SPEC §2: resource and purpose ids, nonces and request ids."""

from __future__ import annotations

import functools
import secrets

from eth_utils import keccak, to_checksum_address

#: In a grant's resource list, covers every catalog resource of sensitivity 1-2 (never 3-4).
WILDCARD = keccak(text="*")


@functools.lru_cache(maxsize=65_536)
def checksum(address: str) -> str:
    """``address`` in its EIP-55 form (remembered: eth_utils spends a keccak and a few
    microseconds of checks on every call, and the same few thousand members' addresses come back
    on every request). Raises ValueError for what is not an address."""
    return str(to_checksum_address(address))


def resource_id(code: str) -> bytes:
    """``keccak256(utf8(code))`` of a catalog code such as ``"id_card"``."""
    return keccak(text=code)


def purpose_id(code: str) -> bytes:
    """``keccak256(utf8(purpose_code))`` such as ``"loan-application"``."""
    return keccak(text=code)


def new_nonce() -> int:
    """A random unordered nonce (any unused uint256 works)."""
    return secrets.randbits(256)


def new_request_ids(count: int = 1) -> list[bytes]:
    """``count`` fresh request ids sharing one random 248-bit prefix.

    The ledger records request ids in a bitmap of 256-bit words selected by the top 248 bits, so
    ids from one call share a storage word (≈17,000 gas less per release after the first).
    Fully random ids are just as valid. At most 256 ids per call.
    """
    if not 1 <= count <= 256:
        raise ValueError("count must be 1-256")
    prefix = secrets.randbits(248) << 8
    return [(prefix | i).to_bytes(32, "big") for i in range(count)]


class RequestIdAllocator:
    """Hands out request ids in runs of 256 that share one random 248-bit prefix.

    Keep one per requesting account (e.g. per department client): consecutive releases then
    share the ledger's bitmap word, so only the first of every 256 pays for a new storage slot.
    Ids stay unpredictable to others (the prefix is random) and are never reused by one allocator.
    """

    def __init__(self) -> None:
        self._prefix = 0
        self._next = 256

    def next(self) -> bytes:
        if self._next == 256:
            self._prefix = secrets.randbits(248) << 8
            self._next = 0
        value = self._prefix | self._next
        self._next += 1
        return value.to_bytes(32, "big")


class NonceAllocator:
    """Hands out a signer's nonces in runs of 256 that share one random 248-bit prefix.

    The ledger keeps one nonce space per signer for ``Grant``, ``Revoke``, ``SetPaused`` (and an
    auditor's ``AuditorEnrolment``) in a bitmap of 256-bit words selected by the top 248 bits
    (SPEC §9.8), so consecutive nonces of one allocator share a storage word and only the first
    of every 256 pays for a new slot (≈17,000 gas). Keep one per signing account; the prefix is
    random, so nonces stay unpredictable and two allocators of one account practically never meet.
    """

    def __init__(self) -> None:
        self._prefix = 0
        self._next = 256

    def next(self) -> int:
        if self._next == 256:
            self._prefix = secrets.randbits(248) << 8
            self._next = 0
        value = self._prefix | self._next
        self._next += 1
        return value
