"""The digital safe-deposit box (数字保险箱): envelope-encrypted documents, key rotation,
crypto-shredding and sealed release after an on-chain receipt."""

from .crypto import AES_256_GCM, PROFILES, SM4_GCM_SM3, Profile
from .errors import (
    DecryptionError,
    DocumentDeleted,
    DocumentNotFound,
    InvalidInput,
    KeyRingError,
    KeyRingLocked,
    KeyVersionUnavailable,
    NoCurrentDocument,
    ReleaseRefused,
    VaultError,
)
from .keyring import DEV_PASSPHRASES, FileKeyRing, KeyRing
from .service import DocumentInfo, OpenedDocument, Release, RotationReport, StoredDocument, Vault

__all__ = [
    "AES_256_GCM",
    "DEV_PASSPHRASES",
    "PROFILES",
    "SM4_GCM_SM3",
    "DecryptionError",
    "DocumentDeleted",
    "DocumentInfo",
    "DocumentNotFound",
    "FileKeyRing",
    "InvalidInput",
    "KeyRing",
    "KeyRingError",
    "KeyRingLocked",
    "KeyVersionUnavailable",
    "NoCurrentDocument",
    "OpenedDocument",
    "Profile",
    "Release",
    "ReleaseRefused",
    "RotationReport",
    "StoredDocument",
    "Vault",
    "VaultError",
]
