"""vault.keyring.FileKeyRing: the passphrase-sealed file of versioned key-encryption keys."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vault import crypto
from vault.crypto import AES_256_GCM, SM4_GCM_SM3
from vault.errors import DecryptionError, InvalidInput, KeyRingError, KeyRingLocked, KeyVersionUnavailable
from vault.keyring import FORMAT, FileKeyRing, KeyRing

PASSPHRASE = "correct horse battery staple"
N = 2**12  # fast scrypt for tests; the parameters travel in the file
DOC = bytes(32)
SUBJECT = "0x1111111111111111111111111111111111111111"


def _ring(path: Path, passphrase: str = PASSPHRASE, **kwargs: Any) -> FileKeyRing:
    return FileKeyRing(path, passphrase, scrypt_n=N, **kwargs)


def _aad(version: int) -> bytes:
    return crypto.wrap_aad(DOC, SUBJECT, version)


@pytest.fixture
def ring_path(tmp_path: Path) -> Path:
    return tmp_path / "ring" / "keyring.json"


# ---- create / reopen ------------------------------------------------------------------------------


def test_create_then_reopen_with_the_right_passphrase(ring_path: Path) -> None:
    ring = _ring(ring_path)
    assert isinstance(ring, KeyRing)
    assert ring_path.is_file()
    assert ring.current_version() == 1
    assert ring.versions() == [1]
    assert ring.profile is AES_256_GCM
    data_key = AES_256_GCM.new_key()
    wrapped = ring.wrap(1, data_key, _aad(1))

    reopened = FileKeyRing(ring_path, PASSPHRASE, create=False)
    assert reopened.current_version() == 1
    assert reopened.versions() == [1]
    assert reopened.unwrap(1, wrapped, _aad(1)) == data_key
    header = json.loads(ring_path.read_text())
    assert header["format"] == FORMAT
    assert header["profile"] == "aes-256-gcm"
    assert header["kdf"]["name"] == "scrypt" and header["kdf"]["n"] == N
    assert set(header) == {"format", "profile", "kdf", "sealed"}


def test_missing_file_without_create_is_a_key_ring_error(ring_path: Path) -> None:
    with pytest.raises(KeyRingError):
        FileKeyRing(ring_path, PASSPHRASE, create=False)
    assert not ring_path.exists()


def test_unknown_profile_at_creation_is_invalid_input(ring_path: Path) -> None:
    with pytest.raises(InvalidInput):
        _ring(ring_path, profile_name="rot13")
    assert not ring_path.exists()


def test_wrong_passphrase_is_locked(ring_path: Path) -> None:
    _ring(ring_path)
    before = ring_path.read_bytes()
    for wrong in ("wrong", PASSPHRASE + " ", PASSPHRASE.upper(), ""):
        with pytest.raises(KeyRingLocked):
            FileKeyRing(ring_path, wrong)
    assert ring_path.read_bytes() == before  # a failed open never rewrites the file
    assert FileKeyRing(ring_path, PASSPHRASE).versions() == [1]


def test_sm4_profile_ring_round_trip(ring_path: Path) -> None:
    ring = _ring(ring_path, profile_name=SM4_GCM_SM3.name)
    assert ring.profile is SM4_GCM_SM3
    data_key = SM4_GCM_SM3.new_key()
    wrapped = ring.wrap(1, data_key, _aad(1))
    assert len(wrapped) == crypto.NONCE_BYTES + 16 + crypto.TAG_BYTES
    reopened = FileKeyRing(ring_path, PASSPHRASE, profile_name=SM4_GCM_SM3.name)
    assert reopened.unwrap(1, wrapped, _aad(1)) == data_key


@pytest.mark.parametrize(("created", "asked"), [("aes-256-gcm", "sm4-gcm-sm3"), ("sm4-gcm-sm3", "aes-256-gcm")])
def test_profile_mismatch_on_reopen_is_a_key_ring_error(ring_path: Path, created: str, asked: str) -> None:
    _ring(ring_path, profile_name=created)
    with pytest.raises(KeyRingError) as info:
        FileKeyRing(ring_path, PASSPHRASE, profile_name=asked)
    assert not isinstance(info.value, KeyRingLocked)
    assert created in str(info.value) and asked in str(info.value)
    assert FileKeyRing(ring_path, PASSPHRASE, profile_name=created).profile.name == created


# ---- damaged files ---------------------------------------------------------------------------------


def _open_fails_cleanly(path: Path) -> KeyRingError:
    """Opening fails with KeyRingLocked or KeyRingError, never with another exception."""
    try:
        FileKeyRing(path, PASSPHRASE, create=False)
    except KeyRingError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - this is exactly what must not happen
        pytest.fail(f"damaged key ring raised {type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    pytest.fail("damaged key ring opened")


def test_every_flipped_character_of_sealed_is_refused(ring_path: Path) -> None:
    ring = _ring(ring_path)
    ring.add_version()
    original = ring_path.read_text()
    sealed = json.loads(original)["sealed"]
    start = original.index(sealed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    kinds: dict[str, int] = {"locked": 0, "error": 0, "same bytes": 0}
    for i in range(len(sealed)):
        for replacement in {chr(ord(sealed[i]) ^ 1), alphabet[(alphabet.find(sealed[i]) + 1) % 64]}:
            damaged = sealed[:i] + replacement + sealed[i + 1 :]
            ring_path.write_text(original[: start + i] + replacement + original[start + i + 1 :])
            if _b64_or_none(damaged) == _b64_or_none(sealed):
                # only the unused low bits of the last base64 digit changed: the sealed bytes are intact
                assert FileKeyRing(ring_path, PASSPHRASE).versions() == [1, 2]
                kinds["same bytes"] += 1
                continue
            exc = _open_fails_cleanly(ring_path)
            kinds["locked" if isinstance(exc, KeyRingLocked) else "error"] += 1
    assert kinds["locked"] > 0  # valid base64, wrong bytes: indistinguishable from a wrong passphrase
    assert kinds["error"] > 0  # not base64 at all
    assert kinds["same bytes"] <= 2
    ring_path.write_text(original)
    assert FileKeyRing(ring_path, PASSPHRASE).versions() == [1, 2]


def _b64_or_none(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _edit(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        data = json.loads(text)
        mutate(data)
        return json.dumps(data)

    return apply


def _other_salt(data: dict[str, Any]) -> None:
    salt = bytearray(base64.b64decode(data["kdf"]["salt"]))
    salt[0] ^= 1
    data["kdf"]["salt"] = base64.b64encode(salt).decode()


DAMAGE: dict[str, tuple[Any, ...]] = {
    # name: (how, expected error class[, the bug that makes it fail today])
    "kdf salt changed (valid base64)": (_edit(_other_salt), KeyRingLocked),
    "kdf salt emptied": (_edit(lambda d: d["kdf"].__setitem__("salt", "")), KeyRingError),
    "kdf n changed": (_edit(lambda d: d["kdf"].__setitem__("n", N * 2)), KeyRingLocked),
    "kdf r changed": (_edit(lambda d: d["kdf"].__setitem__("r", 4)), KeyRingLocked),
    "profile changed to the other profile": (_edit(lambda d: d.__setitem__("profile", "sm4-gcm-sm3")), KeyRingLocked),
    "profile unknown": (_edit(lambda d: d.__setitem__("profile", "des")), KeyRingError),
    "extra header field": (_edit(lambda d: d.__setitem__("note", "x")), KeyRingLocked),
    "format changed": (_edit(lambda d: d.__setitem__("format", "qcl-keyring/0")), KeyRingError),
    "sealed removed": (_edit(lambda d: d.pop("sealed")), KeyRingError),
    "sealed emptied": (_edit(lambda d: d.__setitem__("sealed", "")), KeyRingLocked),
    "sealed truncated": (_edit(lambda d: d.__setitem__("sealed", d["sealed"][:-8])), KeyRingLocked),
    "sealed not base64": (_edit(lambda d: d.__setitem__("sealed", "!" + d["sealed"][1:])), KeyRingError),
    "file truncated": (lambda t: t[: len(t) // 2], KeyRingError),
    "file empty": (lambda _t: "", KeyRingError),
    "file not utf-8": (lambda t: t[:10] + "\udcff" + t[11:], KeyRingError),
    "kdf salt not base64": (_edit(lambda d: d["kdf"].__setitem__("salt", "!!!!")), KeyRingError),
    "kdf n not a power of two": (_edit(lambda d: d["kdf"].__setitem__("n", 3)), KeyRingError),
    "kdf n not a number": (_edit(lambda d: d["kdf"].__setitem__("n", "x")), KeyRingError),
    "kdf removed": (_edit(lambda d: d.pop("kdf")), KeyRingError),
    "sealed not a string": (_edit(lambda d: d.__setitem__("sealed", 5)), KeyRingError),
    "file is a JSON array": (lambda _t: "[]", KeyRingError),
}


def _case(name: str) -> Any:
    damage, expected, *bug = DAMAGE[name]
    marks = [pytest.mark.xfail(strict=True, reason=bug[0])] if bug else []
    return pytest.param(damage, expected, marks=marks, id=name)


@pytest.mark.parametrize(("damage", "expected"), [_case(n) for n in DAMAGE])
def test_damaged_file_is_refused_with_a_key_ring_error(
    ring_path: Path, damage: Callable[[str], str], expected: type[KeyRingError]
) -> None:
    _ring(ring_path)
    ring_path.write_bytes(damage(ring_path.read_text()).encode("utf-8", "surrogateescape"))
    exc = _open_fails_cleanly(ring_path)
    assert isinstance(exc, expected)
    if expected is KeyRingLocked:
        assert "wrong passphrase or damaged file" in str(exc)


# ---- versions ----------------------------------------------------------------------------------------


def test_add_version_makes_it_current_and_old_versions_still_unwrap(ring_path: Path) -> None:
    ring = _ring(ring_path)
    data_key = AES_256_GCM.new_key()
    wrapped1 = ring.wrap(1, data_key, _aad(1))
    assert ring.add_version() == 2
    assert ring.current_version() == 2
    assert ring.add_version() == 3
    assert ring.current_version() == 3
    assert ring.versions() == [1, 2, 3]
    wrapped3 = ring.wrap(3, data_key, _aad(3))
    assert wrapped3 != wrapped1
    assert ring.unwrap(1, wrapped1, _aad(1)) == data_key
    assert ring.unwrap(3, wrapped3, _aad(3)) == data_key
    # every version is a different key: a wrap under 1 does not open under 3 (same AAD)
    with pytest.raises(DecryptionError):
        ring.unwrap(3, wrapped1, _aad(1))
    reopened = FileKeyRing(ring_path, PASSPHRASE)
    assert reopened.current_version() == 3
    assert reopened.versions() == [1, 2, 3]
    assert reopened.unwrap(1, wrapped1, _aad(1)) == data_key
    assert reopened.unwrap(3, wrapped3, _aad(3)) == data_key


def test_unwrap_checks_the_associated_data(ring_path: Path) -> None:
    ring = _ring(ring_path)
    data_key = AES_256_GCM.new_key()
    wrapped = ring.wrap(1, data_key, _aad(1))
    for aad in (_aad(2), crypto.wrap_aad(bytes(31) + b"\x01", SUBJECT, 1), b""):
        with pytest.raises(DecryptionError) as info:
            ring.unwrap(1, wrapped, aad)
        assert str(info.value) == "decryption failed"
    assert ring.unwrap(1, wrapped, _aad(1)) == data_key


def test_retiring_the_current_version_is_refused(ring_path: Path) -> None:
    ring = _ring(ring_path)
    with pytest.raises(KeyRingError):
        ring.retire(1)
    ring.add_version()
    with pytest.raises(KeyRingError):
        ring.retire(2)
    assert ring.versions() == [1, 2]
    assert ring.current_version() == 2
    assert FileKeyRing(ring_path, PASSPHRASE).versions() == [1, 2]


def test_retired_version_is_unavailable(ring_path: Path) -> None:
    ring = _ring(ring_path)
    data_key = AES_256_GCM.new_key()
    wrapped1 = ring.wrap(1, data_key, _aad(1))
    ring.add_version()
    ring.retire(1)
    assert ring.versions() == [2]
    with pytest.raises(KeyVersionUnavailable):
        ring.unwrap(1, wrapped1, _aad(1))
    with pytest.raises(KeyVersionUnavailable):
        ring.wrap(1, data_key, _aad(1))
    with pytest.raises(KeyVersionUnavailable):
        ring.unwrap(99, wrapped1, _aad(99))
    # persisted: the reopened ring has forgotten version 1 too
    reopened = FileKeyRing(ring_path, PASSPHRASE)
    assert reopened.versions() == [2]
    with pytest.raises(KeyVersionUnavailable):
        reopened.unwrap(1, wrapped1, _aad(1))
    # version numbers are never reused after a retirement
    assert reopened.add_version() == 3
    ring.retire(1)  # retiring an absent version is a no-op
    assert ring.versions() == [2, 3]  # the first handle sees the version the second one added


# ---- the file ----------------------------------------------------------------------------------------


def test_file_mode_is_0600_and_no_temporary_file_is_left(ring_path: Path) -> None:
    ring = _ring(ring_path)
    assert stat.S_IMODE(ring_path.stat().st_mode) == 0o600
    ring.add_version()
    ring.retire(1)
    assert stat.S_IMODE(ring_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in ring_path.parent.iterdir()) == ["keyring.json", "keyring.json.lock"]


@pytest.mark.parametrize("profile_name", ["aes-256-gcm", "sm4-gcm-sm3"])
def test_the_file_never_contains_a_key_in_clear(ring_path: Path, profile_name: str) -> None:
    ring = _ring(ring_path, profile_name=profile_name)
    for _ in range(3):
        ring.add_version()
    keys = {v: ring._key(v) for v in ring.versions()}  # white box: the raw KEKs held in memory
    assert len(keys) == 4 and len(set(keys.values())) == 4
    sealing_key = ring._sealing_key()
    raw = ring_path.read_bytes()
    text = raw.decode()
    for secret in [*keys.values(), sealing_key]:
        assert base64.b64encode(secret).decode() not in text
        assert base64.b64encode(secret).decode().rstrip("=") not in text
        assert base64.urlsafe_b64encode(secret).decode().rstrip("=") not in text
        assert secret.hex() not in text.lower()
        assert secret not in raw
    assert PASSPHRASE not in text


# ---- two handles on one file (e.g. the API server and `qcl vault rotate`) ------------------------------

BUG_STALE = (
    "FileKeyRing keeps the file's contents in memory and rewrites them whole: a second handle on the same file "
    "(a running server while `qcl vault rotate` runs) never sees another handle's changes and overwrites them"
)


def test_a_stale_handle_does_not_destroy_a_version_added_elsewhere(ring_path: Path) -> None:
    server = _ring(ring_path)
    rotator = FileKeyRing(ring_path, PASSPHRASE)
    assert rotator.add_version() == 2
    data_key = AES_256_GCM.new_key()
    wrapped = rotator.wrap(2, data_key, _aad(2))  # e.g. every document re-wrapped by a rotation
    server.add_version()  # the server's handle still believes the ring is {1}
    assert FileKeyRing(ring_path, PASSPHRASE).unwrap(2, wrapped, _aad(2)) == data_key


def test_a_stale_handle_does_not_wrap_under_a_retired_version(ring_path: Path) -> None:
    server = _ring(ring_path)
    rotator = FileKeyRing(ring_path, PASSPHRASE)
    rotator.add_version()
    rotator.retire(1)
    data_key = AES_256_GCM.new_key()
    version = server.current_version()  # what Vault.store_document does next
    wrapped = server.wrap(version, data_key, _aad(version))
    assert FileKeyRing(ring_path, PASSPHRASE).unwrap(version, wrapped, _aad(version)) == data_key
