"""EIP-712 messages of SPEC §3: type definitions, digests and signing, matching the contracts."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak

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
