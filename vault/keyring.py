"""Key-encryption keys (KEKs): versioned, held in a passphrase-sealed file or an external KMS.

:class:`KeyRing` is the interface the vault uses; :class:`FileKeyRing` is the embedded default.
An HSM or cloud KMS plugs in by implementing the same five methods (``wrap``/``unwrap`` then
run inside the KMS, and the key material never reaches this process).

The file holds every live KEK version, sealed with AES-256-GCM under a key derived from the
passphrase with scrypt (N=2^15, r=8, p=1 by default; the parameters are stored in the file).
Every change is written to a temporary file, fsynced and renamed over the old one, so a crash
leaves either the old or the new ring, never a torn one.

Several processes may hold the same file (the API server and ``qcl vault rotate``): every
operation first reloads the file if another process changed it, and changes are made under an
exclusive ``flock`` on ``<file>.lock`` after such a reload, so no process overwrites another's
versions. :meth:`FileKeyRing.locked` lets the vault make "count the users of a version, then
retire it" atomic with respect to "wrap under a version, store the row, check the version".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
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

    def locked(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        """Hold the ring's lock (shared or exclusive) across several operations."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class FileKeyRing:
    """The embedded key ring: one file sealed under a passphrase."""

    def __init__(
        self,
        path: Path,
        passphrase: str,
        *,
        profile_name: str = AES_256_GCM.name,
        scrypt_n: int = 2**15,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self._passphrase = passphrase.encode()
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._lock_exclusive = False
        self._stamp: tuple[int, int, int] | None = None
        self._profile_name = profile_name
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

    # ---- KeyRing ---------------------------------------------------------------------------------

    def current_version(self) -> int:
        self._refresh()
        return self._current

    def versions(self) -> list[int]:
        self._refresh()
        return sorted(self._keys)

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        self._refresh()
        return self.profile.encrypt(self._key(version), data_key, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        if version not in self._keys:
            self._refresh()
        return self.profile.decrypt(self._key(version), wrapped, aad)

    def add_version(self) -> int:
        with self.locked(exclusive=True):
            self._refresh(force=True)
            version = max(self._keys) + 1
            self._keys[version] = self.profile.new_key()
            self._current = version
            self._save()
            return version

    def retire(self, version: int) -> None:
        with self.locked(exclusive=True):
            self._refresh(force=True)
            if version == self._current:
                raise KeyRingError("the current key version cannot be retired")
            if version in self._keys:
                del self._keys[version]
                self._save()

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """``flock`` on ``<file>.lock``: shared for users, exclusive for changes (re-entrant)."""
        with self._lock:
            if self._lock_depth and exclusive and not self._lock_exclusive:
                raise KeyRingError("cannot upgrade a shared key ring lock to an exclusive one")
            if self._lock_depth == 0:
                lock_path = self.path.with_name(self.path.name + ".lock")
                self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                self._lock_exclusive = exclusive
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None

    def _refresh(self, *, force: bool = False) -> None:
        """Reload the file if another process replaced it since we read it."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise KeyRingError(f"the key ring at {self.path} is gone: {exc}") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if force or stamp != self._stamp:
            with self._lock:
                self._load()

    # ---- file ------------------------------------------------------------------------------------

    def _key(self, version: int) -> bytes:
        try:
            return self._keys[version]
        except KeyError:
            raise KeyVersionUnavailable(f"key version {version} is not in the key ring") from None

    def _sealing_key(self, header: dict[str, Any] | None = None) -> bytes:
        kdf = (header or self._header)["kdf"]
        return Scrypt(salt=_unb64(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(
            self._passphrase
        )

    def _aad(self, header: dict[str, Any] | None = None) -> bytes:
        return json.dumps(header or self._header, sort_keys=True, separators=(",", ":")).encode()

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
        st = os.stat(self.path)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        """Read and open the file; every kind of damage is a :class:`KeyRingError`."""
        try:
            st = os.stat(self.path)
            data = json.loads(self.path.read_bytes().decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise KeyRingError(f"{self.path} is not a {FORMAT} key ring")
            sealed_text = data.pop("sealed")
            if not isinstance(sealed_text, str):
                raise KeyRingError(f"{self.path}: 'sealed' must be a base64 string")
            sealed = _unb64(sealed_text)
            _check_kdf(data.get("kdf"))
            header = data
            loaded_profile = profile(str(data["profile"]))
        except KeyRingError:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error, OSError) as exc:
            raise KeyRingError(f"cannot read the key ring at {self.path}: {exc.__class__.__name__}: {exc}") from None
        try:
            payload = json.loads(AES_256_GCM.decrypt(self._sealing_key(header), sealed, self._aad(header)))
            keys = {int(v): _unb64(k) for v, k in payload["keys"].items()}
            current = int(payload["current"])
        except (DecryptionError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise KeyRingLocked(f"cannot open the key ring at {self.path}: wrong passphrase or damaged file") from None
        if current not in keys:
            raise KeyRingError(f"the key ring at {self.path} has no key for its current version")
        if loaded_profile.name != self._profile_name:  # checked after the header is authenticated
            raise KeyRingError(
                f"the key ring at {self.path} uses profile {loaded_profile.name}, "
                f"the settings ask for {self._profile_name}"
            )
        self._header, self.profile = header, loaded_profile
        self._keys, self._current = keys, current
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)


def _check_kdf(kdf: Any) -> None:
    """The stored scrypt parameters must be sane before we spend memory on them."""
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyRingError("the key ring's kdf must be scrypt")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise KeyRingError("the key ring's scrypt parameters must be integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if not (2**10 <= n <= 2**22 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and n * r * 128 <= 2**31):
        raise KeyRingError(f"the key ring's scrypt parameters are out of range (n={n}, r={r}, p={p})")
    salt = _unb64(str(kdf.get("salt", "")))
    if not 16 <= len(salt) <= 64:
        raise KeyRingError("the key ring's scrypt salt must be 16-64 bytes")
