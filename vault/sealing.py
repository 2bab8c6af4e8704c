"""The sealed release of SPEC §4 (the platform's sending half; ``qcl_client`` opens): RFC 9180
HPKE base mode, single shot.

Suite ``DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM``, empty AAD, and
``info = b"quanchenglian/release/v1" || grant_id || request_id`` (the emergency id stands in for
the grant id of an emergency release). The wire value is ``enc || ciphertext``.

Extension (documented in the README): a consumer that registers a 1216-byte key gets the
post-quantum hybrid KEM ``MLKEM768-X25519`` (KEM id 0x647A, key = ML-KEM-768 public key (1184
bytes) || X25519 public key (32 bytes)) with the same KDF, AEAD and info.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from .errors import InvalidInput

INFO_PREFIX = b"quanchenglian/release/v1"
X25519_KEY_BYTES = 32
MLKEM768_PUBLIC_BYTES = 1184
HYBRID_KEY_BYTES = MLKEM768_PUBLIC_BYTES + X25519_KEY_BYTES

SUITE_X25519 = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SUITE_HYBRID = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def release_info(grant_id: bytes, request_id: bytes) -> bytes:
    if len(grant_id) != 32 or len(request_id) != 32:
        raise InvalidInput("grant id and request id must be 32 bytes each")
    return INFO_PREFIX + grant_id + request_id


def seal(plaintext: bytes, recipient_key: bytes, grant_id: bytes, request_id: bytes) -> bytes:
    """Seal ``plaintext`` to a consumer's registered public key (32 or 1216 bytes)."""
    info = release_info(grant_id, request_id)
    if len(recipient_key) == X25519_KEY_BYTES:
        return SUITE_X25519.encrypt(plaintext, x25519.X25519PublicKey.from_public_bytes(recipient_key), info=info)
    if len(recipient_key) == HYBRID_KEY_BYTES:
        public = hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(recipient_key[:MLKEM768_PUBLIC_BYTES]),
            x25519.X25519PublicKey.from_public_bytes(recipient_key[MLKEM768_PUBLIC_BYTES:]),
        )
        return SUITE_HYBRID.encrypt(plaintext, public, info=info)
    raise InvalidInput(f"unsupported HPKE public key length {len(recipient_key)} (expected 32 or 1216)")
