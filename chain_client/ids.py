"""Identifiers of SPEC §2: resource and purpose ids, nonces and request ids."""

from __future__ import annotations

import secrets

from eth_utils import keccak

#: In a grant's resource list, covers every catalog resource of sensitivity 1-2 (never 3-4).
WILDCARD = keccak(text="*")


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
