"""Errors raised by :mod:`vault`; every one derives from :class:`VaultError`."""

from __future__ import annotations


class VaultError(Exception):
    """Root of every error raised by the vault."""


class DecryptionError(VaultError):
    """Decryption or unwrapping failed. Deliberately says nothing about which check failed."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class InvalidInput(VaultError, ValueError):
    """A caller passed a malformed value (wrong length, unknown profile, empty content…)."""


class DocumentNotFound(VaultError, LookupError):
    """No such document (or not the caller's to see)."""


class DocumentDeleted(VaultError):
    """The document was crypto-shredded: its data key no longer exists."""


class NoCurrentDocument(VaultError, LookupError):
    """The subject holds no current document of the requested resource."""


class KeyRingError(VaultError):
    """The key ring cannot be opened, is inconsistent, or refuses an operation."""


class KeyRingLocked(KeyRingError):
    """Wrong passphrase, or a damaged key ring file (indistinguishable on purpose)."""


class KeyVersionUnavailable(KeyRingError):
    """A document names a key version the key ring does not hold (retired too early?)."""


class RotationInProgress(KeyRingError):
    """A rotation is running or was interrupted; resume it before retiring or rotating again."""


class ReleaseRefused(VaultError):
    """The vault refuses a release before asking the chain (bad signature, wrong key, …)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
