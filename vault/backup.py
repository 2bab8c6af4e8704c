"""Backup and restore of a deployment's vault: the database and the key ring in one file.

A backup is an uncompressed tar archive of four members, in this order:

``manifest.json``
    format, time, the Alembic revision of the schema, the database's tables (columns, binary
    columns, row counts), the key ring's profile and versions, the live documents per key version,
    and the SHA-256 and size of every other member. It is authenticated with HMAC-SHA256 under a
    key derived from the vault passphrase by scrypt (salt and parameters in the manifest), so a
    restore with another passphrase, or of an altered manifest, is refused before anything is
    written.
``keyring.json``
    the key ring file byte for byte, as it is at rest: sealed with AES-256-GCM under a key scrypt
    derives from ``QCL_VAULT_PASSPHRASE`` (:mod:`vault.keyring`). The KEKs are never in the clear
    in a backup; restoring needs the same passphrase.
``database.jsonl.gz``
    every table of the service (not ``alembic_version``), one JSON line per row
    ``[table, [values…]]`` in the manifest's column order, binary columns as base64, tables in
    dependency order and rows in primary-key order. Read in ONE consistent snapshot: SQLite through
    the sqlite3 online backup API (a copy of the file taken while the service runs), PostgreSQL in
    one ``REPEATABLE READ`` read-only transaction. The format is the same for both, so a backup of
    either restores into either.
``deployment.json`` (when the deployment has a manifest)
    the deployment manifest (chain id, contract addresses and code hashes: nothing secret).

Document contents and metadata in the database are encrypted by the vault (envelope encryption);
the other columns (members' names, organisation codes, …) are as clear in the backup as they are
in the database: keep backups where the database may be kept.

The key ring is copied under its shared lock, and the database snapshot taken before that lock is
released, so a rotation cannot add or retire a version between the two: every data key in the
snapshot is wrapped under a version the copied ring holds (checked before the file is written).

Restore checks, before it touches the target: the archive is complete (a truncated or damaged
file is refused), every member's SHA-256, that the key ring opens with the passphrase, the
manifest's HMAC, that the schema revision is one this code knows, and that the target database
and key ring are empty (``force`` replaces them). It then creates the schema at the backup's
revision, loads every row in one transaction, upgrades to the newest revision, writes the key ring
(and the deployment manifest), and opens every live document.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import Connection, Engine, LargeBinary, MetaData, Table, create_engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from db.store import Store, StoreUnavailable, schema_revisions

from .errors import KeyRingError, KeyRingLocked, VaultError
from .keyring import FileKeyRing

FORMAT = "qcl-backup/1"
MANIFEST = "manifest.json"
KEYRING = "keyring.json"
DATABASE = "database.jsonl.gz"
DEPLOYMENT = "deployment.json"
_ALEMBIC = "alembic_version"
_BATCH = 500
#: rows read or inserted at once stay under this many bytes (a document may be 16 MiB)
_BATCH_BYTES = 32 << 20
_CHUNK = 1 << 20
#: scrypt parameters of the manifest's HMAC key (the key ring's own defaults).
_SCRYPT = {"name": "scrypt", "n": 2**15, "r": 8, "p": 1}


class BackupError(VaultError):
    """A backup cannot be made, or a file cannot be restored; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    revision: str
    rows: dict[str, int]
    documents: int
    key_versions: list[int]
    size: int


@dataclass(frozen=True)
class RestoreReport:
    revision: str
    rows: dict[str, int]
    documents_opened: int
    replaced: bool
    upgraded_to: str | None = None
    failed_documents: list[str] = field(default_factory=list)


# ---- backup ----------------------------------------------------------------------------------------


def create_backup(
    out: Path,
    *,
    store: Store,
    keyring_path: Path,
    passphrase: str,
    profile_name: str,
    deployment_manifest: Path | None = None,
) -> BackupReport:
    """Write a backup of ``store`` and the key ring at ``keyring_path`` to ``out`` (atomically, mode 0600)."""
    out = Path(out)
    if not Path(keyring_path).is_file():
        raise BackupError(f"no key ring at {keyring_path}: nothing to back up")
    try:
        ring = FileKeyRing(Path(keyring_path), passphrase, profile_name=profile_name, create=False)
    except KeyRingLocked:
        raise BackupError(f"the key ring at {keyring_path} does not open with QCL_VAULT_PASSPHRASE") from None
    except KeyRingError as exc:
        raise BackupError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".qcl-backup-", dir=out.parent) as tmp:
        db_part = Path(tmp) / DATABASE
        with ring.locked(exclusive=False):  # no rotation adds or retires a version meanwhile
            keyring_bytes = Path(keyring_path).read_bytes()
            with _snapshot(store, Path(tmp)) as conn:
                revision, tables, usage = _dump(conn, db_part)
        versions = _ring_versions(keyring_bytes, passphrase, profile_name)
        missing = sorted(set(usage) - set(versions))
        if missing:
            raise BackupError(f"documents are wrapped under key versions {missing} the key ring does not hold")
        parts: dict[str, Path | bytes] = {KEYRING: keyring_bytes, DATABASE: db_part}
        if deployment_manifest is not None and Path(deployment_manifest).is_file():
            parts[DEPLOYMENT] = Path(deployment_manifest).read_bytes()
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "alembic_revision": revision,
            "database": {"dialect": store.engine.dialect.name, "tables": tables},
            "keyring": {
                "profile": profile_name,
                "versions": versions,
                "protection": "as at rest (scrypt, AES-256-GCM)",
            },
            "documents": {
                "live": sum(usage.values()),
                "per_key_version": {str(v): n for v, n in sorted(usage.items())},
            },
            "parts": {name: _digest(part) for name, part in parts.items()},
        }
        _seal(manifest, passphrase)
        tmp_out = Path(tmp) / "backup.tar"
        _write_archive(tmp_out, manifest, parts)
        os.replace(tmp_out, out)
    _fsync_dir(out.parent)
    return BackupReport(
        path=out,
        revision=revision,
        rows={name: int(t["rows"]) for name, t in tables.items()},
        documents=sum(usage.values()),
        key_versions=versions,
        size=out.stat().st_size,
    )


@contextlib.contextmanager
def _snapshot(store: Store, tmp: Path) -> Iterator[Connection]:
    """A connection that sees one consistent state of the database."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or not Path(url.database).is_file():
            raise BackupError(f"no SQLite database at {url.database}")
        copy = tmp / "snapshot.db"
        try:
            source = sqlite3.connect(str(url.database), timeout=30)
            try:
                target = sqlite3.connect(str(copy))
                with target:
                    source.backup(target)  # the online backup API: consistent while the service writes
                target.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy the SQLite database {url.database}: {exc}") from None
        engine = create_engine(f"sqlite:///{copy}")
        try:
            with engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise BackupError(f"cannot read the database copy: {_reason(exc)}") from None
        finally:
            engine.dispose()
        return
    try:
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn
    except (SQLAlchemyError, StoreUnavailable) as exc:
        raise BackupError(f"cannot read the database: {_reason(exc)}") from None


def _service_tables(conn: Connection) -> list[Table]:
    meta = MetaData()
    meta.reflect(conn)
    return [t for t in meta.sorted_tables if t.name != _ALEMBIC]


def _dump(conn: Connection, path: Path) -> tuple[str, dict[str, Any], dict[int, int]]:
    """Every service table into ``path``: the revision, the tables' descriptions, live documents per key version."""
    revision = conn.execute(text(f"SELECT version_num FROM {_ALEMBIC}")).scalar()
    if not revision:
        raise BackupError("the database has no schema revision (never migrated): nothing to back up")
    tables: dict[str, Any] = {}
    usage: dict[int, int] = {}
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
        for table in _service_tables(conn):
            columns = [c.name for c in table.columns]
            binary = [c.name for c in table.columns if isinstance(c.type, LargeBinary)]
            positions = [columns.index(name) for name in binary]
            order = list(table.primary_key.columns) or list(table.columns)
            count = 0
            per = 8 if binary else _BATCH  # rows with documents in them are fetched a few at a time
            result = conn.execution_options(yield_per=per).execute(select(table).order_by(*order))
            for row in result:
                values = list(row)
                for i in positions:
                    if values[i] is not None:
                        values[i] = base64.b64encode(bytes(values[i])).decode()
                fh.write(json.dumps([table.name, values], separators=(",", ":")) + "\n")
                count += 1
                if table.name == "documents":
                    _count_live(usage, dict(zip(columns, row, strict=True)))
            tables[table.name] = {"columns": columns, "binary": binary, "rows": count}
    return str(revision), tables, usage


def _count_live(usage: dict[int, int], row: dict[str, Any]) -> None:
    if row.get("wrapped_key") is not None:
        version = int(row["key_version"])
        usage[version] = usage.get(version, 0) + 1


def _digest(part: Path | bytes) -> dict[str, Any]:
    h = hashlib.sha256()
    if isinstance(part, bytes):
        h.update(part)
        return {"sha256": h.hexdigest(), "size": len(part)}
    with part.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return {"sha256": h.hexdigest(), "size": part.stat().st_size}


def _write_archive(path: Path, manifest: dict[str, Any], parts: dict[str, Path | bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            now = int(time.time())
            for name, part in [(MANIFEST, _canonical(manifest)), *parts.items()]:
                info = tarfile.TarInfo(name)
                info.mtime, info.mode = now, 0o600
                if isinstance(part, bytes):
                    info.size = len(part)
                    tar.addfile(info, io.BytesIO(part))
                else:
                    info.size = part.stat().st_size
                    with part.open("rb") as fh:
                        tar.addfile(info, fh)
        raw.flush()
        os.fsync(raw.fileno())


# ---- the manifest's MAC ----------------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _mac_key(passphrase: str, kdf: dict[str, Any]) -> bytes:
    try:
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        salt = base64.b64decode(str(kdf["salt"]), validate=True)
        if kdf.get("name") != "scrypt" or not (2**10 <= n <= 2**20 and r == 8 and p == 1 and len(salt) >= 16):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise BackupError("the backup's manifest is damaged (integrity parameters)") from None
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _tag(manifest: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    body["integrity"] = {"kdf": manifest["integrity"]["kdf"]}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _seal(manifest: dict[str, Any], passphrase: str) -> None:
    kdf = {**_SCRYPT, "salt": base64.b64encode(os.urandom(16)).decode()}
    manifest["integrity"] = {"kdf": kdf}
    manifest["integrity"]["hmac_sha256"] = _tag(manifest, _mac_key(passphrase, kdf))


def _check_seal(manifest: dict[str, Any], passphrase: str) -> None:
    integrity = manifest.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("hmac_sha256"), str):
        raise BackupError("the backup's manifest is damaged (no integrity tag)")
    expected = _tag(manifest, _mac_key(passphrase, integrity.get("kdf") or {}))
    if not hmac.compare_digest(expected, integrity["hmac_sha256"]):
        raise BackupError("the backup's manifest was altered (its HMAC does not match)")


# ---- the key ring ----------------------------------------------------------------------------------


def _ring_versions(sealed: bytes, passphrase: str, profile_name: str) -> list[int]:
    """Open a sealed key ring file's bytes with the passphrase: its versions."""
    with tempfile.TemporaryDirectory(prefix=".qcl-ring-") as tmp:
        path = Path(tmp) / KEYRING
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(sealed)
        try:
            return FileKeyRing(path, passphrase, profile_name=profile_name, create=False).versions()
        except KeyRingLocked:
            raise BackupError(
                "the backup's key ring does not open with this QCL_VAULT_PASSPHRASE (wrong passphrase)"
            ) from None
        except KeyRingError as exc:
            reason = str(exc).replace(f"the key ring at {path}", "it").replace(str(path), "it")
            raise BackupError(f"the backup's key ring cannot be used: {reason}") from None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".restore-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- restore ---------------------------------------------------------------------------------------


@dataclass
class _Opened:
    manifest: dict[str, Any]
    keyring: bytes
    database: Path
    deployment: bytes | None


def read_backup(src: Path, tmp: Path, passphrase: str, profile_name: str) -> _Opened:
    """Check a backup file (completeness, SHA-256 of each part, passphrase, HMAC); its parts."""
    try:
        with tarfile.open(src, mode="r:") as tar:
            manifest = _manifest(tar)
            declared = manifest["parts"]
            found: dict[str, Path] = {}
            for member in tar:
                if member.name in declared and member.isfile():
                    found[member.name] = _extract(tar, member, tmp)
    except FileNotFoundError:
        raise BackupError(f"no backup file at {src}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupError(f"{src} is not a complete backup (damaged or truncated: {exc})") from None
    for name, expected in declared.items():
        if name not in found:
            raise BackupError(f"{src} is not a complete backup: {name} is missing (truncated?)")
        if _digest(found[name]) != {"sha256": expected.get("sha256"), "size": expected.get("size")}:
            raise BackupError(f"{src} is damaged: the SHA-256 of {name} does not match the manifest")
    if KEYRING not in found or DATABASE not in found:
        raise BackupError(f"{src} is not a backup of this service (no key ring or database part)")
    keyring = found[KEYRING].read_bytes()
    _ring_versions(keyring, passphrase, profile_name)
    _check_seal(manifest, passphrase)
    deployment = found[DEPLOYMENT].read_bytes() if DEPLOYMENT in found else None
    return _Opened(manifest=manifest, keyring=keyring, database=found[DATABASE], deployment=deployment)


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile() or first.size > 16 << 20:
        raise BackupError("the file is not a Quanchenglian backup (no manifest first)")
    fh = tar.extractfile(first)
    assert fh is not None
    try:
        manifest = json.loads(fh.read())
    except ValueError:
        raise BackupError("the backup's manifest is damaged (not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"the file is not a {FORMAT} backup")
    if not isinstance(manifest.get("parts"), dict) or not isinstance(manifest.get("database"), dict):
        raise BackupError("the backup's manifest is damaged (no parts)")
    return manifest


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, tmp: Path) -> Path:
    """Copy one member to ``tmp`` under its own fixed name (never a path taken from the archive)."""
    target = tmp / {KEYRING: "keyring", DATABASE: "database", DEPLOYMENT: "deployment"}.get(member.name, "other")
    fh = tar.extractfile(member)
    assert fh is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(fh, out, _CHUNK)
    return target


def restore_backup(
    src: Path,
    *,
    database_url: str,
    keyring_path: Path,
    passphrase: str,
    profile_name: str,
    deployment_manifest: Path | None = None,
    force: bool = False,
    say: Callable[[str], None] = lambda _text: None,
) -> RestoreReport:
    """Restore ``src`` into the database at ``database_url`` and the key ring at ``keyring_path``."""
    with tempfile.TemporaryDirectory(prefix=".qcl-restore-") as tmp:
        opened = read_backup(Path(src), Path(tmp), passphrase, profile_name)
        manifest = opened.manifest
        revision = str(manifest.get("alembic_revision"))
        known = schema_revisions()
        if revision not in known:
            raise BackupError(
                f"the backup's schema revision {revision} is unknown to this release (newest: {known[-1]}): "
                "restore it with the release that made it"
            )
        say(
            f"backup of {manifest.get('created_at')}: schema {revision}, {manifest['documents']['live']} live documents"
        )
        store = _open_target(database_url)
        try:
            replaced = _clear_target(store.engine, keyring_path, force=force)
            store.migrate(revision)
            rows = _load(store.engine, opened.database, manifest["database"]["tables"])
            if revision != known[-1]:
                store.migrate()
            _write_atomically(Path(keyring_path), opened.keyring)
            if opened.deployment is not None and deployment_manifest is not None:
                if force or not Path(deployment_manifest).exists():
                    _write_atomically(Path(deployment_manifest), opened.deployment)
            from .service import Vault  # the box on what was restored: every live document must open

            ring = FileKeyRing(Path(keyring_path), passphrase, profile_name=profile_name, create=False)
            opened_docs, failed = Vault(store=store, keyring=ring, ledger=None).check_documents()  # type: ignore[arg-type]
        except (SQLAlchemyError, StoreUnavailable) as exc:
            raise BackupError(f"the restore failed in the target database: {_reason(exc)}") from None
        finally:
            store.dispose()
    return RestoreReport(
        revision=revision,
        rows=rows,
        documents_opened=opened_docs,
        replaced=replaced,
        upgraded_to=known[-1] if revision != known[-1] else None,
        failed_documents=failed,
    )


def _open_target(url: str) -> Store:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return Store(url, migrate=False)
    except (SQLAlchemyError, StoreUnavailable) as exc:
        raise BackupError(f"cannot open the target database: {_reason(exc)}") from None


def _clear_target(engine: Engine, keyring_path: Path, *, force: bool) -> bool:
    """Refuse a target that holds data (unless ``force``); drop every table. Whether data was replaced."""
    try:
        with engine.connect() as conn:
            meta = MetaData()
            meta.reflect(conn)
            holding = [
                t.name
                for t in meta.sorted_tables
                if t.name != _ALEMBIC and conn.execute(select(func.count()).select_from(t)).scalar()
            ]
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the target database: {_reason(exc)}") from None
    ring_exists = Path(keyring_path).exists()
    if (holding or ring_exists) and not force:
        what = []
        if holding:
            what.append(f"the database holds data ({', '.join(holding[:5])}{', …' if len(holding) > 5 else ''})")
        if ring_exists:
            what.append(f"a key ring exists at {keyring_path}")
        raise BackupError("the target is not empty: " + "; ".join(what) + ". Use --force to replace it")
    with engine.begin() as conn:
        meta.drop_all(conn)  # empty tables of a newer schema too: the backup's revision is built afresh
    return bool(holding or ring_exists)


def _load(engine: Engine, path: Path, tables: dict[str, Any]) -> dict[str, int]:
    """Every row of the dump into the schema just created, in one transaction."""
    counts = {name: 0 for name in tables}
    with engine.begin() as conn:
        meta = MetaData()
        meta.reflect(conn)
        for name, spec in tables.items():
            if name not in meta.tables or [c.name for c in meta.tables[name].columns] != list(spec["columns"]):
                raise BackupError(f"table {name} of the backup does not match the schema at its revision")
        batch: list[dict[str, Any]] = []
        current: str | None = None
        size = 0
        for table_name, values, length in _rows(path):
            if table_name != current:
                _insert(conn, meta, current, batch)
                batch, current, size = [], table_name, 0
            spec = tables.get(table_name)
            if spec is None or len(values) != len(spec["columns"]):
                raise BackupError(f"the backup's database part is damaged (a row of {table_name})")
            row = dict(zip(spec["columns"], values, strict=True))
            for column in spec["binary"]:
                if row[column] is not None:
                    row[column] = base64.b64decode(row[column])
            batch.append(row)
            counts[table_name] += 1
            size += length
            if len(batch) >= _BATCH or size >= _BATCH_BYTES:
                _insert(conn, meta, current, batch)
                batch, size = [], 0
        _insert(conn, meta, current, batch)
        for name, spec in tables.items():
            if counts[name] != int(spec["rows"]):
                raise BackupError(
                    f"the backup's database part is damaged ({name}: {counts[name]} rows of {spec['rows']})"
                )
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn, meta)
    return counts


def _rows(path: Path) -> Iterator[tuple[str, list[Any], int]]:
    """(table, values, the line's length) of every row of the dump."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                name, values = json.loads(line)
                yield str(name), list(values), len(line)
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise BackupError(f"the backup's database part is damaged: {exc}") from None


def _insert(conn: Connection, meta: MetaData, table: str | None, rows: list[dict[str, Any]]) -> None:
    if table is not None and rows:
        conn.execute(meta.tables[table].insert(), rows)


def _reset_sequences(conn: Connection, meta: MetaData) -> None:
    """PostgreSQL: serial and identity columns continue after the restored ids."""
    for table in meta.sorted_tables:
        for column in table.primary_key.columns:
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": f'"{table.name}"', "c": column.name}
            ).scalar()
            if sequence:
                conn.execute(
                    text(
                        f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") FROM "{table.name}"), 0) + 1, false)'
                    ),
                    {"s": sequence},
                )


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else exc.__class__.__name__
