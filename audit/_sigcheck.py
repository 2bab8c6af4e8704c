"""Check 2 of the audit (SPEC §7) in bulk: EIP-712 release signatures, one chunk at a time.

This module is what the worker processes of :mod:`audit.verify` import, so it imports nothing
of the project and nothing heavy: Keccak from safe-pysha3 and libsecp256k1 through coincurve's
public API (``PublicKey.from_signature_and_message``, ``PublicKey.verify``).

A job is ``(encoded, signature, signer)``: ``encoded`` is the EIP-712 ``encodeData`` of the
request (type hash followed by the 32-byte words of its fields), ``signature`` the 65 bytes
``r || s || v`` from the release's calldata (``None`` when the calldata held no matching item),
``signer`` the lower-case hex address that must have signed. The digest is
``keccak256(0x1901 || domainSeparator || keccak256(encoded))``, as the ledger computes it.

The rules are the ledger's (OpenZeppelin ``ECDSA.tryRecover``): 65 bytes, ``v`` 27 or 28, ``s``
in the lower half of the curve order (else the signature is malleable), and the key that signed
is the signer's. The signer's key is found once per process by public-key recovery and kept; signatures are then
checked with ``PublicKey.verify`` against it (``secp256k1_ecdsa_verify``; the compact ``r || s`` is
DER-encoded here for it), faster than recovery. So the
proof asked for is a valid ``(r, s)`` under the signer's key: ``v`` (27 or 28) only says which
of two candidate keys to recover, and is not held against a signature whose ``(r, s)`` is the
signer's (the ledger, which recovers, would have refused such a release; the auditor reports
what was signed). Every result is the same whatever the order of the jobs or the chunking.
"""

from __future__ import annotations

import signal

from coincurve import PublicKey
from sha3 import keccak_256  # safe-pysha3: the C Keccak eth-hash also offers, ~5x faster per call

#: Half the secp256k1 group order, big-endian: larger ``s`` values are malleable (EIP-2).
HALF_ORDER = bytes.fromhex("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")

#: Problem codes.
MISSING = "signature_missing"
MALFORMED = "signature_malformed"
MALLEABLE = "signature_malleable"
INVALID = "signature_invalid"

Job = tuple[bytes, bytes | None, str]
Problem = tuple[int, str, str]

# Keys recovered in this process, by lower-case address.
_KEYS: dict[str, PublicKey] = {}


def ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group; the parent decides, not the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def keccak256(data: bytes) -> bytes:
    return keccak_256(data).digest()


def _recover(digest: bytes, signature: bytes) -> tuple[str | None, PublicKey | None]:
    """(lower-case address, key) that signed ``digest``, or (None, None)."""
    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([signature[64] - 27]), digest, hasher=None)
    except ValueError:
        return None, None
    return "0x" + keccak256(key.format(compressed=False)[1:])[-20:].hex(), key


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + bytes([len(value)]) + value


def _der(signature: bytes) -> bytes:
    """The DER form of the compact ``r || s`` (what ``PublicKey.verify`` reads)."""
    body = _der_integer(signature[:32]) + _der_integer(signature[32:64])
    return b"\x30" + bytes([len(body)]) + body


def signer_of(domain_separator: bytes, encoded: bytes, signature: bytes) -> str | None:
    """The lower-case address that signed the request, by recovery (None: no valid signature)."""
    if len(signature) != 65 or signature[64] not in (27, 28) or signature[32:64] > HALF_ORDER:
        return None
    digest = keccak256(b"\x19\x01" + domain_separator + keccak256(encoded))
    return _recover(digest, signature)[0]


def _verified(key: PublicKey | None, signature: bytes, digest: bytes) -> bool:
    if key is None:
        return False
    try:
        return bool(key.verify(_der(signature), digest, hasher=None))
    except ValueError:  # r or s out of range
        return False


def check_chunk(domain_separator: bytes, jobs: list[Job]) -> list[Problem]:
    """Problems ``(position in jobs, code, detail)`` of the jobs whose signature is not the signer's."""
    prefix = b"\x19\x01" + domain_separator
    keys = _KEYS
    problems: list[Problem] = []
    for position, (encoded, signature, signer) in enumerate(jobs):
        if signature is None:
            problems.append((position, MISSING, "no signed request for this release in its transaction"))
            continue
        if len(signature) != 65 or signature[64] not in (27, 28):
            problems.append((position, MALFORMED, f"a {len(signature)}-byte signature is not r || s || v"))
            continue
        if signature[32:64] > HALF_ORDER:
            problems.append((position, MALLEABLE, "s is in the upper half of the curve order"))
            continue
        digest = keccak_256(prefix + keccak_256(encoded).digest()).digest()
        if _verified(keys.get(signer), signature, digest):  # reads r || s
            continue
        recovered, recovered_key = _recover(digest, signature)
        if recovered != signer:  # (r, s) may still be the signer's with the other recovery id
            other = signature[:64] + bytes([55 - signature[64]])
            if _recover(digest, other)[0] == signer:
                recovered, recovered_key = _recover(digest, other)
        if recovered == signer and recovered_key is not None:
            keys[signer] = recovered_key
            continue
        problems.append((position, INVALID, f"signed by {recovered or 'no valid key'}, not by {signer}"))
    return problems
