"""Symmetric profiles, envelope encryption and the sealed release of SPEC §4.

Two deployment-wide profiles:

* ``aes-256-gcm`` (default): AES-256-GCM, SHA-256;
* ``sm4-gcm-sm3``: the Chinese national-standard profile (国密): SM4-GCM (128-bit key), SM3.

Every document gets a fresh data key from the OS CSPRNG; it encrypts that document (and its
metadata) only. Data keys are wrapped by a versioned key-encryption key (KEK). Nonces are 96-bit
random values: a data key encrypts at most two messages, so nonce collisions under one key are
impossible in practice; a KEK wraps at most ``MAX_WRAPS_PER_KEK`` data keys (the NIST SP 800-38D
bound for random nonces) before it must be rotated.

Every failure to decrypt raises the same :class:`DecryptionError`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError, InvalidInput

NONCE_BYTES = 12
TAG_BYTES = 16
#: 2^32 invocations of GCM with random nonces per key (NIST SP 800-38D §8.3); we stop at half.
MAX_WRAPS_PER_KEK = 2**31


@dataclass(frozen=True)
class Profile:
    name: str
    key_bytes: int
    hash_name: str

    def new_key(self) -> bytes:
        return os.urandom(self.key_bytes)

    def digest(self, data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3() if self.hash_name == "sm3" else hashes.SHA256())
        h.update(data)
        return h.finalize()

    def encrypt_parts(self, key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext || tag)``: large bodies are stored as produced, without a copy."""
        if len(key) != self.key_bytes:
            raise InvalidInput(f"{self.name} needs a {self.key_bytes}-byte key")
        nonce = os.urandom(NONCE_BYTES)
        if self.name == AES_256_GCM.name:
            return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        body = encryptor.update(plaintext) + encryptor.finalize()
        return nonce, body + encryptor.tag

    def decrypt_parts(self, key: bytes, nonce: bytes, body: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`encrypt_parts`; :class:`DecryptionError` on any failure."""
        if len(key) != self.key_bytes or len(nonce) != NONCE_BYTES or len(body) < TAG_BYTES:
            raise DecryptionError()
        try:
            if self.name == AES_256_GCM.name:
                return AESGCM(key).decrypt(nonce, body, aad)
            view = memoryview(body)
            decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, bytes(view[-TAG_BYTES:]))).decryptor()
            decryptor.authenticate_additional_data(aad)
            return decryptor.update(view[:-TAG_BYTES]) + decryptor.finalize()
        except (InvalidTag, ValueError):
            raise DecryptionError() from None

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """``nonce || ciphertext || tag`` under ``key`` with associated data ``aad``."""
        nonce, body = self.encrypt_parts(key, plaintext, aad)
        return nonce + body

    def decrypt(self, key: bytes, sealed: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`encrypt`; :class:`DecryptionError` on any failure."""
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError()
        view = memoryview(sealed)
        return self.decrypt_parts(key, bytes(view[:NONCE_BYTES]), view[NONCE_BYTES:], aad)  # type: ignore[arg-type]


AES_256_GCM = Profile("aes-256-gcm", 32, "sha256")
SM4_GCM_SM3 = Profile("sm4-gcm-sm3", 16, "sm3")
PROFILES = {p.name: p for p in (AES_256_GCM, SM4_GCM_SM3)}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput(f"unknown crypto profile {name!r}; expected one of {', '.join(PROFILES)}") from None


def _field(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def content_aad(document_id: bytes, subject: str) -> bytes:
    """Associated data of a document's content: its id and its subject (length-prefixed)."""
    return b"qcl/content/v1" + _field(document_id) + _field(subject.lower().encode())


def wrap_aad(document_id: bytes, subject: str, key_version: int) -> bytes:
    """Associated data of a wrapped data key: document id, subject and KEK version."""
    return b"qcl/dek/v1" + _field(document_id) + _field(subject.lower().encode()) + struct.pack(">Q", key_version)


def commitment(salt: bytes, content: bytes) -> bytes:
    """SPEC §4: ``sha256(salt || content)``."""
    h = hashlib.sha256(salt)
    h.update(content)
    return h.digest()
