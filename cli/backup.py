"""``qcl vault backup`` / ``qcl vault restore``: the database and the key ring in one file (vault/backup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from api.settings import Settings
from db.errors import DatabaseError
from db.store import Store
from vault import VaultError
from vault.backup import create_backup, restore_backup

from ._console import fail, say

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="the backup file", dir_okay=False)]


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")


def vault_backup(
    file: FileArg,
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE if it exists")] = False,
) -> None:
    """Back up the database and the key ring (still sealed by QCL_VAULT_PASSPHRASE) into FILE.

    The database is read in one consistent snapshot while the service runs. The manifest holds the
    SHA-256 of each part and is authenticated with a key derived from QCL_VAULT_PASSPHRASE.
    """
    settings = _settings()
    if file.exists() and not force:
        fail(f"{file} exists (use --force to overwrite it)")
    if settings.database_url is None and not (settings.data_dir / "vault.db").is_file():
        fail(f"no database at {settings.data_dir / 'vault.db'} (set QCL_DATA_DIR or QCL_DATABASE_URL)")
    try:
        store = Store(settings.vault_database_url, migrate=False)  # read as it is: never migrated here
    except (DatabaseError, SQLAlchemyError, ValueError) as exc:
        fail(f"cannot open the database: {exc}")
    try:
        report = create_backup(
            file,
            store=store,
            keyring_path=settings.vault_keyring_path,
            passphrase=settings.vault_passphrase.get_secret_value(),
            profile_name=settings.crypto_profile,
            deployment_manifest=settings.manifest_path,
        )
    except (VaultError, OSError) as exc:
        fail(str(exc))
    finally:
        store.dispose()
    rows = sum(report.rows.values())
    versions = ", ".join(map(str, report.key_versions))
    say(
        f"backup written to {report.path} ({report.size} bytes): schema {report.revision}, {rows} rows in "
        f"{len(report.rows)} tables, {report.documents} live documents, key versions {versions}"
    )


def vault_restore(
    file: FileArg,
    force: Annotated[
        bool, typer.Option("--force", help="replace a target database and key ring that are not empty")
    ] = False,
) -> None:
    """Restore FILE into QCL_DATABASE_URL (or <data_dir>/vault.db) and QCL_KEYRING_PATH.

    Stop `qcl serve` and `qcl worker` first. The file is checked before anything is written (complete,
    SHA-256 of each part, QCL_VAULT_PASSPHRASE opens its key ring, manifest HMAC); the target must be
    empty unless --force. Every live document is opened afterwards.
    """
    settings = _settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = restore_backup(
            file,
            database_url=settings.vault_database_url,
            keyring_path=settings.vault_keyring_path,
            passphrase=settings.vault_passphrase.get_secret_value(),
            profile_name=settings.crypto_profile,
            deployment_manifest=settings.manifest_path,
            force=force,
            say=say,
        )
    except (VaultError, OSError) as exc:
        fail(str(exc))
    rows = sum(report.rows.values())
    upgraded = f", upgraded to {report.upgraded_to}" if report.upgraded_to else ""
    say(f"restored schema {report.revision}{upgraded}: {rows} rows in {len(report.rows)} tables")
    if report.failed_documents:
        fail(f"{len(report.failed_documents)} documents do not open: {', '.join(report.failed_documents[:5])}")
    say(f"every live document opens ({report.documents_opened})")
