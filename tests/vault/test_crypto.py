"""vault.crypto (symmetric profiles, AAD, commitment) and vault.sealing (HPKE release)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from qcl_client import DecryptionError as OpenFailed
from qcl_client import PrivateKey, generate_hybrid_key, open_sealed
from vault import crypto, sealing
from vault.crypto import AES_256_GCM, NONCE_BYTES, SM4_GCM_SM3, TAG_BYTES, Profile
from vault.errors import DecryptionError, InvalidInput

PROFILES = [AES_256_GCM, SM4_GCM_SM3]
SUBJECT = "0x1111111111111111111111111111111111111111"
OTHER_SUBJECT = "0x2222222222222222222222222222222222222222"
DOC = bytes(range(32))
OTHER_DOC = bytes(range(1, 33))


def _fails(profile: Profile, key: bytes, sealed: bytes, aad: bytes) -> None:
    """Decryption fails with exactly the opaque DecryptionError and its fixed message."""
    with pytest.raises(DecryptionError) as info:
        profile.decrypt(key, sealed, aad)
    assert type(info.value) is DecryptionError
    assert str(info.value) == "decryption failed"


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---- profiles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profile_parameters(profile: Profile) -> None:
    assert crypto.profile(profile.name) is profile
    assert len(profile.new_key()) == profile.key_bytes
    assert profile.new_key() != profile.new_key()
    assert len(profile.digest(b"abc")) == 32


def test_profile_digests_are_sha256_and_sm3() -> None:
    assert AES_256_GCM.digest(b"abc") == hashlib.sha256(b"abc").digest()
    # GB/T 32905-2016 test vector: SM3("abc")
    assert SM4_GCM_SM3.digest(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_unknown_profile_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        crypto.profile("chacha20")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 100_000])
def test_round_trip(profile: Profile, size: int) -> None:
    key = profile.new_key()
    plaintext = os.urandom(size)
    aad = crypto.content_aad(DOC, SUBJECT)
    sealed = profile.encrypt(key, plaintext, aad)
    assert len(sealed) == NONCE_BYTES + size + TAG_BYTES
    if size >= 15:  # shorter values could occur in random ciphertext by chance
        assert plaintext not in sealed
    assert profile.decrypt(key, sealed, aad) == plaintext


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_single_bit_flip_of_the_sealed_value_fails(profile: Profile) -> None:
    key = profile.new_key()
    aad = crypto.content_aad(DOC, SUBJECT)
    sealed = profile.encrypt(key, b"identity card of a citizen: 37010219800101001X", aad)
    regions = {
        "nonce": range(0, NONCE_BYTES),
        "ciphertext": range(NONCE_BYTES, len(sealed) - TAG_BYTES),
        "tag": range(len(sealed) - TAG_BYTES, len(sealed)),
    }
    for name, byte_range in regions.items():
        assert len(byte_range) > 0, name
        for byte in byte_range:
            for bit in range(8):
                _fails(profile, key, _flip(sealed, byte * 8 + bit), aad)
    assert profile.decrypt(key, sealed, aad).startswith(b"identity card")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_single_bit_flip_of_the_associated_data_fails(profile: Profile) -> None:
    key = profile.new_key()
    for aad in (crypto.content_aad(DOC, SUBJECT), crypto.wrap_aad(DOC, SUBJECT, 7)):
        sealed = profile.encrypt(key, b"payload", aad)
        for bit in range(len(aad) * 8):
            _fails(profile, key, sealed, _flip(aad, bit))
        assert profile.decrypt(key, sealed, aad) == b"payload"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_truncated_extended_and_empty_sealed_values_fail(profile: Profile) -> None:
    key = profile.new_key()
    sealed = profile.encrypt(key, b"payload", b"aad")
    for bad in (
        b"",
        sealed[:NONCE_BYTES],
        sealed[: NONCE_BYTES + TAG_BYTES - 1],
        sealed[:-1],
        sealed + b"\x00",
        sealed[1:],
    ):
        _fails(profile, key, bad, b"aad")
    _fails(profile, key, sealed, b"")  # dropping the associated data


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_wrong_key_and_wrong_key_length_fail_on_decrypt(profile: Profile) -> None:
    key = profile.new_key()
    sealed = profile.encrypt(key, b"payload", b"aad")
    _fails(profile, profile.new_key(), sealed, b"aad")
    for bad_key in (b"", key[:-1], key + b"\x00", key * 2, os.urandom(24)):
        _fails(profile, bad_key, sealed, b"aad")
    assert profile.decrypt(key, sealed, b"aad") == b"payload"


def test_a_key_of_the_other_profile_fails() -> None:
    aes_key = AES_256_GCM.new_key()
    sealed = AES_256_GCM.encrypt(aes_key, b"payload", b"aad")
    _fails(SM4_GCM_SM3, aes_key[:16], sealed, b"aad")
    _fails(SM4_GCM_SM3, aes_key, sealed, b"aad")
    sm4_key = SM4_GCM_SM3.new_key()
    _fails(AES_256_GCM, sm4_key, SM4_GCM_SM3.encrypt(sm4_key, b"payload", b"aad"), b"aad")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_wrong_key_length_on_encrypt_is_invalid_input(profile: Profile) -> None:
    with pytest.raises(InvalidInput):
        profile.encrypt(os.urandom(profile.key_bytes + 1), b"x", b"")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_content_swapped_between_documents_or_subjects_fails(profile: Profile) -> None:
    key = profile.new_key()  # even under one data key, the AAD binds the ciphertext to its row
    sealed = profile.encrypt(key, b"doc-1 content", crypto.content_aad(DOC, SUBJECT))
    _fails(profile, key, sealed, crypto.content_aad(OTHER_DOC, SUBJECT))
    _fails(profile, key, sealed, crypto.content_aad(DOC, OTHER_SUBJECT))
    _fails(profile, key, sealed, crypto.content_aad(OTHER_DOC, OTHER_SUBJECT))
    _fails(profile, key, sealed, crypto.content_aad(DOC, SUBJECT) + b"/meta")  # content is not metadata
    _fails(profile, key, sealed, crypto.wrap_aad(DOC, SUBJECT, 1))  # nor a wrapped key
    # the subject is case-normalised: a checksummed and a lower-case address are the same subject
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    sealed2 = profile.encrypt(key, b"x", crypto.content_aad(DOC, checksummed))
    assert profile.decrypt(key, sealed2, crypto.content_aad(DOC, checksummed.lower())) == b"x"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_wrapped_key_swapped_between_documents_subjects_or_versions_fails(profile: Profile) -> None:
    kek = profile.new_key()
    data_key = profile.new_key()
    wrapped = profile.encrypt(kek, data_key, crypto.wrap_aad(DOC, SUBJECT, 3))
    assert profile.decrypt(kek, wrapped, crypto.wrap_aad(DOC, SUBJECT, 3)) == data_key
    _fails(profile, kek, wrapped, crypto.wrap_aad(OTHER_DOC, SUBJECT, 3))
    _fails(profile, kek, wrapped, crypto.wrap_aad(DOC, OTHER_SUBJECT, 3))
    _fails(profile, kek, wrapped, crypto.wrap_aad(DOC, SUBJECT, 4))
    _fails(profile, kek, wrapped, crypto.content_aad(DOC, SUBJECT))


def test_aad_fields_are_unambiguous() -> None:
    # length prefixes: moving a byte from the id to the subject changes the AAD
    assert crypto.content_aad(b"ab", "c") != crypto.content_aad(b"a", "bc")
    assert crypto.wrap_aad(b"ab", "c", 1) != crypto.wrap_aad(b"a", "bc", 1)
    assert crypto.content_aad(DOC, SUBJECT) != crypto.content_aad(OTHER_DOC, SUBJECT)
    assert crypto.wrap_aad(DOC, SUBJECT, 1) != crypto.wrap_aad(DOC, SUBJECT, 2)
    assert crypto.content_aad(DOC, SUBJECT).startswith(b"qcl/content/v1")
    assert crypto.wrap_aad(DOC, SUBJECT, 1).startswith(b"qcl/dek/v1")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_nonces_are_distinct_across_10000_encryptions(profile: Profile) -> None:
    key = profile.new_key()
    sealed = [profile.encrypt(key, b"same plaintext", b"same aad") for _ in range(10_000)]
    nonces = {s[:NONCE_BYTES] for s in sealed}
    assert len(nonces) == 10_000
    assert len({s[NONCE_BYTES:] for s in sealed}) == 10_000  # hence distinct ciphertexts too
    assert profile.decrypt(key, sealed[-1], b"same aad") == b"same plaintext"


def test_commitment_is_sha256_of_salt_then_content() -> None:
    for salt, content in [(os.urandom(32), b"content"), (b"", b""), (os.urandom(32), os.urandom(100_000))]:
        assert crypto.commitment(salt, content) == hashlib.sha256(salt + content).digest()
    salt = os.urandom(32)
    assert crypto.commitment(salt, b"a") != crypto.commitment(os.urandom(32), b"a")
    assert crypto.commitment(salt, b"a") != crypto.commitment(salt, b"b")
    assert len(crypto.commitment(salt, b"a")) == 32


# ---- HPKE sealed release (SPEC §4) ------------------------------------------------------------------

GRANT = os.urandom(32)
REQUEST = os.urandom(32)


def _open_fails(sealed: bytes, private_key: PrivateKey, grant_id: bytes, request_id: bytes) -> None:
    with pytest.raises(OpenFailed) as info:
        open_sealed(sealed, private_key, grant_id, request_id)
    assert type(info.value) is OpenFailed
    assert str(info.value) == "decryption failed"


def _x25519() -> tuple[x25519.X25519PrivateKey, bytes]:
    sk = x25519.X25519PrivateKey.generate()
    return sk, sk.public_key().public_bytes_raw()


def _hybrid() -> tuple[hpke.MLKEM768X25519PrivateKey, bytes]:
    return generate_hybrid_key()


KEYPAIRS: dict[str, Callable[[], tuple[PrivateKey, bytes]]] = {"x25519": _x25519, "mlkem768-x25519": _hybrid}


@pytest.mark.parametrize("kind", KEYPAIRS)
def test_seal_open_round_trip(kind: str) -> None:
    sk, pk = KEYPAIRS[kind]()
    assert len(pk) == (sealing.X25519_KEY_BYTES if kind == "x25519" else sealing.HYBRID_KEY_BYTES)
    for content in (b"", b"x", os.urandom(100_000)):
        sealed = sealing.seal(content, pk, GRANT, REQUEST)
        assert open_sealed(sealed, sk, GRANT, REQUEST) == content
    # two seals of the same content differ (fresh ephemeral key)
    assert sealing.seal(b"same", pk, GRANT, REQUEST) != sealing.seal(b"same", pk, GRANT, REQUEST)


@pytest.mark.parametrize("kind", KEYPAIRS)
def test_open_with_wrong_grant_request_or_key_fails(kind: str) -> None:
    sk, pk = KEYPAIRS[kind]()
    sealed = sealing.seal(b"citizen id card", pk, GRANT, REQUEST)
    _open_fails(sealed, sk, os.urandom(32), REQUEST)
    _open_fails(sealed, sk, GRANT, os.urandom(32))
    _open_fails(sealed, sk, REQUEST, GRANT)  # swapped
    _open_fails(sealed, KEYPAIRS[kind]()[0], GRANT, REQUEST)  # another consumer's key of the same kind
    other_kind = "mlkem768-x25519" if kind == "x25519" else "x25519"
    _open_fails(sealed, KEYPAIRS[other_kind]()[0], GRANT, REQUEST)
    for bad in (b"", sealed[:10], sealed[:-1], _flip(sealed, 0), _flip(sealed, len(sealed) * 8 - 1)):
        _open_fails(bad, sk, GRANT, REQUEST)
    assert open_sealed(sealed, sk, GRANT, REQUEST) == b"citizen id card"


def test_malformed_ids_and_keys_are_invalid_input() -> None:
    _, pk = _x25519()
    with pytest.raises(InvalidInput):
        sealing.seal(b"x", pk, GRANT[:31], REQUEST)
    with pytest.raises(InvalidInput):
        sealing.seal(b"x", pk, GRANT, REQUEST + b"\x00")
    with pytest.raises(InvalidInput):
        sealing.seal(b"x", pk[:31], GRANT, REQUEST)
    with pytest.raises(InvalidInput):
        sealing.seal(b"x", b"\x00" * 64, GRANT, REQUEST)
    assert sealing.release_info(GRANT, REQUEST) == b"quanchenglian/release/v1" + GRANT + REQUEST


def test_x25519_sealed_format_interoperates_with_plain_rfc9180_hpke() -> None:
    """SPEC §4: ``enc (32 bytes) || ciphertext``, opened by any RFC 9180 implementation."""
    sk, pk = _x25519()
    content = b"interop: the consumer side needs nothing but a standard HPKE library"
    sealed = sealing.seal(content, pk, GRANT, REQUEST)
    # 32-byte encapsulated key, then AES-256-GCM ciphertext with a 16-byte tag
    assert len(sealed) == 32 + len(content) + 16
    enc = sealed[:32]
    x25519.X25519PublicKey.from_public_bytes(enc)  # a valid X25519 public key (ephemeral)
    assert enc != pk
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = b"quanchenglian/release/v1" + GRANT + REQUEST
    assert suite.decrypt(sealed, sk, info=info) == content
    # and the other way round: a message sealed by a plain HPKE sender opens with open_sealed
    foreign = suite.encrypt(content, sk.public_key(), info=info)
    assert open_sealed(foreign, sk, GRANT, REQUEST) == content
    # the info string matters: without it a standard decrypt fails
    with pytest.raises(InvalidTag):
        suite.decrypt(sealed, sk, info=b"quanchenglian/release/v1")
