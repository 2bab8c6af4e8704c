"""EIP-712 messages of SPEC §3: type definitions, digests and signing, matching the contracts."""

from __future__ import annotations

import functools
from typing import Any

from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address
from sha3 import keccak_256

from .types import Eip712Domain

DOMAIN_NAME = "Quanchenglian"
DOMAIN_VERSION = "1"

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

#: SPEC §3 message types, field by field, in signing order.
TYPES: dict[str, list[dict[str, str]]] = {
    "Grant": [
        {"name": "subject", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "resources", "type": "bytes32[]"},
        {"name": "purpose", "type": "bytes32"},
        {"name": "validFrom", "type": "uint64"},
        {"name": "validUntil", "type": "uint64"},
        {"name": "maxUses", "type": "uint32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "Revoke": [
        {"name": "grantId", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    # v1.1 (SPEC §9.8): ``sequence`` must exceed the last one applied to the grant.
    "SetPaused": [
        {"name": "grantId", "type": "bytes32"},
        {"name": "paused", "type": "bool"},
        {"name": "sequence", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "ReleaseRequest": [
        {"name": "grantId", "type": "bytes32"},
        {"name": "resource", "type": "bytes32"},
        {"name": "requestId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    "Emergency": [
        {"name": "emergencyId", "type": "bytes32"},
        {"name": "resources", "type": "bytes32[]"},
        {"name": "consumers", "type": "address[]"},
        {"name": "validFrom", "type": "uint64"},
        {"name": "validUntil", "type": "uint64"},
        {"name": "reason", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    "EmergencyReleaseRequest": [
        {"name": "emergencyId", "type": "bytes32"},
        {"name": "subject", "type": "address"},
        {"name": "resource", "type": "bytes32"},
        {"name": "requestId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    # v1.1 (SPEC §9.8): an ADMIN or AUDITOR ends an emergency at once.
    "EmergencyCancel": [
        {"name": "emergencyId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    # v1.1 (SPEC §9.8): an existing AUDITOR approves the enrolment of ``account`` as AUDITOR.
    "AuditorEnrolment": [
        {"name": "account", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    # v1.1 (SPEC §9.8): a contract wallet's proof of control, checked by its isValidSignature.
    "WalletOnboarding": [
        {"name": "account", "type": "address"},
        {"name": "roles", "type": "uint8"},
        {"name": "orgId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
}

#: The Solidity constant that holds each type's hash (``ConsentLedger.<name>()``).
TYPEHASH_CONSTANTS: dict[str, str] = {
    "Grant": "GRANT_TYPEHASH",
    "Revoke": "REVOKE_TYPEHASH",
    "SetPaused": "SET_PAUSED_TYPEHASH",
    "ReleaseRequest": "RELEASE_REQUEST_TYPEHASH",
    "Emergency": "EMERGENCY_TYPEHASH",
    "EmergencyReleaseRequest": "EMERGENCY_RELEASE_TYPEHASH",
    "EmergencyCancel": "EMERGENCY_CANCEL_TYPEHASH",
    "AuditorEnrolment": "AUDITOR_ENROLMENT_TYPEHASH",
    "WalletOnboarding": "WALLET_ONBOARDING_TYPEHASH",
}


def type_string(primary: str) -> str:
    """The EIP-712 ``encodeType`` string of ``primary`` (none of our types nests another)."""
    fields = ",".join(f"{f['type']} {f['name']}" for f in TYPES[primary])
    return f"{primary}({fields})"


def typehash(primary: str) -> bytes:
    return keccak(text=type_string(primary))


def signable(domain: Eip712Domain, primary: str, message: dict[str, Any]) -> SignableMessage:
    """The EIP-712 signable form of ``message`` of type ``primary`` under ``domain``."""
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": _DOMAIN_FIELDS, primary: TYPES[primary]},
            "primaryType": primary,
            "domain": domain.as_dict(),
            "message": message,
        }
    )


@functools.lru_cache(maxsize=64)
def domain_separator(domain: Eip712Domain) -> bytes:
    """``hashStruct(EIP712Domain)`` of ``domain`` (the contract's ``domainSeparator()``)."""
    sm = signable(domain, "Revoke", {"grantId": bytes(32), "nonce": 0, "deadline": 0})
    return bytes(sm.header)


def digest(domain: Eip712Domain, primary: str, message: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (for a ``Grant`` this is the grant id)."""
    sm = signable(domain, primary, message)
    return keccak(b"\x19" + sm.version + sm.header + sm.body)


def sign(domain: Eip712Domain, primary: str, message: dict[str, Any], private_key: str | bytes) -> bytes:
    """Sign ``message`` with ``private_key``; returns the 65-byte ``r || s || v`` signature."""
    signed = Account.sign_message(signable(domain, primary, message), private_key)
    return bytes(signed.signature)


# ---- the fixed message types without the generic encoder (the release path's hot loop) ----------
#
# ``encode_typed_data`` parses the type definitions and walks the message on every call (about a
# millisecond); these hash our fixed types directly (``hashStruct`` of EIP-712) and recover the
# signer with libsecp256k1. A test holds them equal to the generic encoder.

_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def _keccak(data: bytes) -> bytes:
    return keccak_256(data).digest()


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:] if address.startswith(("0x", "0X")) else address)


def _typed_digest(domain: Eip712Domain, struct_hash: bytes) -> bytes:
    return _keccak(b"\x19\x01" + domain_separator(domain) + struct_hash)


def grant_digest(domain: Eip712Domain, message: dict[str, Any]) -> bytes:
    """The digest of a ``Grant`` (its grant id), fields as in :data:`TYPES` (bytes for bytes32)."""
    resources = b"".join(bytes(r) for r in message["resources"])
    struct = (
        typehash("Grant")
        + _address_word(message["subject"])
        + _address_word(message["grantee"])
        + _keccak(resources)
        + bytes(message["purpose"])
        + _word(int(message["validFrom"]))
        + _word(int(message["validUntil"]))
        + _word(int(message["maxUses"]))
        + _word(int(message["nonce"]))
        + _word(int(message["deadline"]))
    )
    return _typed_digest(domain, _keccak(struct))


def release_request_digest(
    domain: Eip712Domain, grant_id: bytes, resource: bytes, request_id: bytes, deadline: int
) -> bytes:
    """The digest a grantee signs for a ``ReleaseRequest``."""
    struct = typehash("ReleaseRequest") + grant_id + resource + request_id + _word(deadline)
    return _typed_digest(domain, _keccak(struct))


def recover(digest: bytes, signature: bytes) -> str | None:
    """The address that signed ``digest`` (65-byte ``r || s || v``), or None for a malformed or
    malleable (high-s) signature, which the ledger refuses too."""
    if len(signature) != 65:
        return None
    v = signature[64]
    v = v - 27 if v >= 27 else v
    if v not in (0, 1) or not 0 < int.from_bytes(signature[32:64], "big") <= _SECP256K1_HALF_N:
        return None
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except ValueError:
        return None
    return str(to_checksum_address(_keccak(public.format(compressed=False)[1:])[12:]))
