"""The department's side of a release (SPEC §4): open the sealed document and check its commitment.

This is the receiving half of the sealed-release format; the platform's sending half is
``vault.sealing`` (a round-trip test holds the two together). The SDK a department installs
carries no part of the platform's vault.

Suite ``DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM``, empty AAD,
``info = b"quanchenglian/release/v1" || grant_id || request_id`` (the emergency id stands in for
the grant id of an emergency release); the wire value is ``enc || ciphertext``. A consumer that
registered a 1216-byte key opens with the post-quantum hybrid KEM ``MLKEM768-X25519``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

INFO_PREFIX = b"quanchenglian/release/v1"
_SUITE_X25519 = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SUITE_HYBRID = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

PrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


class ReleaseError(Exception):
    """Root of the errors of opening a release."""


class DecryptionError(ReleaseError):
    """The sealed release does not open with this key, grant (or emergency) id and request id.

    Every way opening can fail raises this one error: nothing tells which check failed.
    """

    def __init__(self) -> None:
        super().__init__("decryption failed")


class CommitmentMismatch(ReleaseError):
    """The opened content does not match the commitment (in the answer or anchored on chain)."""


@dataclass(frozen=True)
class OpenedRelease:
    content: bytes
    document_id: str
    commitment: str


def release_info(grant_id: bytes, request_id: bytes) -> bytes:
    if len(grant_id) != 32 or len(request_id) != 32:
        raise ValueError("grant id and request id must be 32 bytes each")
    return INFO_PREFIX + grant_id + request_id


def open_sealed(sealed: bytes, private_key: PrivateKey, grant_id: bytes, request_id: bytes) -> bytes:
    """Open a sealed release with the consumer's private key; :class:`DecryptionError` on any failure."""
    info = release_info(grant_id, request_id)
    suite = _SUITE_X25519 if isinstance(private_key, x25519.X25519PrivateKey) else _SUITE_HYBRID
    try:
        return suite.decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError):
        raise DecryptionError() from None


def generate_hybrid_key() -> tuple[hpke.MLKEM768X25519PrivateKey, bytes]:
    """A new MLKEM768-X25519 key pair: the private key and the 1216-byte public key to register."""
    m, x = mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    public = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    return hpke.MLKEM768X25519PrivateKey(m, x), public


def commitment(salt: bytes, content: bytes) -> bytes:
    """SPEC §4: ``sha256(salt || content)``."""
    h = hashlib.sha256(salt)
    h.update(content)
    return h.digest()


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def open_release(
    answer: dict[str, Any],
    private_key: PrivateKey,
    *,
    grant_id: bytes,
    request_id: bytes,
    anchored_commitment: bytes | None = None,
) -> OpenedRelease:
    """Open the body of ``POST /v1/releases`` (or an emergency release).

    Decrypts ``sealed`` with the department's private key, recomputes
    ``sha256(salt || content)`` and compares it with the answer's ``commitment`` and, when given,
    with the commitment anchored on chain (``Ledger.document(id).commitment``). Raises
    :class:`DecryptionError` or :class:`CommitmentMismatch`.
    """
    document = answer["document"]
    content = open_sealed(base64.b64decode(answer["sealed"], validate=True), private_key, grant_id, request_id)
    computed = commitment(_hex(document["salt"]), content)
    if not hmac.compare_digest(computed, _hex(document["commitment"])):
        raise CommitmentMismatch("the released content does not match the commitment in the answer")
    if anchored_commitment is not None and not hmac.compare_digest(computed, anchored_commitment):
        raise CommitmentMismatch("the released content does not match the commitment anchored on chain")
    return OpenedRelease(content=content, document_id=document["document_id"], commitment=document["commitment"])
