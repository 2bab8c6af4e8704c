"""Key-encryption keys (KEKs): versioned, held in a passphrase-sealed file or an external KMS.

:class:`KeyRing` is the interface the vault uses; :class:`FileKeyRing` is the embedded default.
An HSM or cloud KMS plugs in by implementing the same five methods (``wrap``/``unwrap`` then
run inside the KMS, and the key material never reaches this process).

The file holds every live KEK version, sealed with AES-256-GCM under a key derived from the
passphrase with scrypt (N=2^15, r=8, p=1 by default; the parameters are stored in the file).
Every change is written to a temporary file, fsynced and renamed over the old one, so a crash
leaves either the old or the new ring, never a torn one.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .crypto import AES_256_GCM, Profile, profile
from .errors import DecryptionError, KeyRingError, KeyRingLocked, KeyVersionUnavailable

FORMAT = "qcl-keyring/1"
#: Passphrases that only development deployments may use.
DEV_PASSPHRASES = frozenset({"dev-only-insecure-passphrase", "", "changeme", "password"})


@runtime_checkable
class KeyRing(Protocol):
    """Versioned key-encryption keys."""

    profile: Profile

    def current_version(self) -> int:
        """The version new data keys are wrapped with."""
        ...

    def versions(self) -> list[int]:
        """Every version still held (current and not yet retired), ascending."""
        ...

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        """Encrypt ``data_key`` under KEK ``version``."""
        ...

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """Decrypt a wrapped data key; :class:`DecryptionError` on any failure."""
        ...

    def add_version(self) -> int:
        """Create a new KEK, make it current, and return its version."""
        ...

    def retire(self, version: int) -> None:
        """Destroy KEK ``version`` (never the current one)."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class FileKeyRing:
    """The embedded key ring: one file sealed under a passphrase."""

    def __init__(self, path: Path, passphrase: str, *, profile_name: str = AES_256_GCM.name,
                 scrypt_n: int = 2**15, create: bool = True) -> None:
        self.path = Path(path)
        self._passphrase = passphrase.encode()
        self._lock = threading.Lock()
        if not self.path.is_file():
            if not create:
                raise KeyRingError(f"no key ring at {self.path}")
            self.profile = profile(profile_name)
            self._header: dict[str, Any] = {
                "format": FORMAT,
                "profile": self.profile.name,
                "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": _b64(os.urandom(16))},
            }
            self._keys: dict[int, bytes] = {1: self.profile.new_key()}
            self._current = 1
            self._save()
        else:
            self._load()
            if self.profile.name != profile_name:
                raise KeyRingError(
                    f"the key ring at {self.path} uses profile {self.profile.name}, the settings ask for {profile_name}"
                )

    # ---- KeyRing ---------------------------------------------------------------------------------

    def current_version(self) -> int:
        return self._current

    def versions(self) -> list[int]:
        return sorted(self._keys)

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        return self.profile.encrypt(self._key(version), data_key, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return self.profile.decrypt(self._key(version), wrapped, aad)

    def add_version(self) -> int:
        with self._lock:
            version = max(self._keys) + 1
            self._keys[version] = self.profile.new_key()
            self._current = version
            self._save()
            return version

    def retire(self, version: int) -> None:
        with self._lock:
            if version == self._current:
                raise KeyRingError("the current key version cannot be retired")
            if version in self._keys:
                del self._keys[version]
                self._save()

    # ---- file ------------------------------------------------------------------------------------

    def _key(self, version: int) -> bytes:
        try:
            return self._keys[version]
        except KeyError:
            raise KeyVersionUnavailable(f"key version {version} is not in the key ring") from None

    def _sealing_key(self) -> bytes:
        kdf = self._header["kdf"]
        return Scrypt(salt=_unb64(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(
            self._passphrase
        )

    def _aad(self) -> bytes:
        return json.dumps(self._header, sort_keys=True, separators=(",", ":")).encode()

    def _save(self) -> None:
        payload = json.dumps({"current": self._current, "keys": {str(v): _b64(k) for v, k in self._keys.items()}})
        sealed = AES_256_GCM.encrypt(self._sealing_key(), payload.encode(), self._aad())
        body = json.dumps({**self._header, "sealed": _b64(sealed)}, indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != FORMAT:
                raise KeyRingError(f"{self.path} is not a {FORMAT} key ring")
            sealed = _unb64(data.pop("sealed"))
            self._header = data
            self.profile = profile(data["profile"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyRingError(f"cannot read the key ring at {self.path}: {exc}") from None
        try:
            payload = json.loads(AES_256_GCM.decrypt(self._sealing_key(), sealed, self._aad()))
        except DecryptionError:
            raise KeyRingLocked(f"cannot open the key ring at {self.path}: wrong passphrase or damaged file") from None
        self._keys = {int(v): _unb64(k) for v, k in payload["keys"].items()}
        self._current = int(payload["current"])
        if self._current not in self._keys:
            raise KeyRingError(f"the key ring at {self.path} has no key for its current version")
