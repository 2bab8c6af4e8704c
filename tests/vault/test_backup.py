"""``qcl vault backup`` / ``qcl vault restore`` (vault/backup.py, issue 16).

The drill, on SQLite and on PostgreSQL: documents stored, a grant and a release through the real API
on anvil, a backup taken while the API runs, a new empty data directory (and database), the restore;
then every document opens through the API, the department fetches its release again and the audit
is clean. Then the refusals, each one line and exit code 2 with nothing written: a damaged or
truncated file, another passphrase, an altered manifest, a target that is not empty (replaced with
--force), a file that is not a backup.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from api.app import create_app
from api.settings import Settings
from cli.main import app
from db.models import DocumentRow, ReleaseLogRow
from db.store import Store, schema_revisions
from qcl_client import QclClient
from tests.api.conftest import build_platform
from tests.conftest import Deployed, create_pg_database, drop_pg_database
from tests.vault.test_rotation_crash import StubLedger
from vault import FileKeyRing, Vault
from vault.backup import DATABASE, KEYRING, MANIFEST, _seal, create_backup, restore_backup

PASSPHRASE = "test passphrase"  # the platform fixture's
CLEAR_ENV: dict[str, str | None] = {"QCL_DATABASE_URL": None, "QCL_KEYRING_PATH": None, "QCL_MANIFEST": None}


def _qcl(args: list[str], data_dir: Path, url: str | None = None, passphrase: str = PASSPHRASE) -> Result:
    env = {**CLEAR_ENV, "QCL_DATA_DIR": str(data_dir), "QCL_VAULT_PASSPHRASE": passphrase, "QCL_ENV": "test"}
    if url is not None:
        env["QCL_DATABASE_URL"] = url
    return CliRunner().invoke(app, args, env=env)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _refused(result: Result, *needles: str) -> str:
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for needle in needles:
        assert needle in text, (needle, result.output)
    return text


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest) -> Iterator[tuple[str | None, str | None]]:
    """(source URL, target URL): None for SQLite under each data directory, else two fresh PostgreSQL databases."""
    if request.param == "sqlite":
        yield None, None
        return
    urls = (create_pg_database("qcl_backup_src"), create_pg_database("qcl_backup_dst"))
    yield urls
    for url in urls:
        drop_pg_database(url)


# ---- the drill ---------------------------------------------------------------------------------------


def test_backup_wipe_restore_every_document_opens_and_the_audit_is_clean(
    deployed: Deployed, tmp_path: Path, databases: tuple[str | None, str | None]
) -> None:
    source_url, target_url = databases
    src, dst = tmp_path / "src", tmp_path / "dst"
    p = build_platform(deployed, src, database_url=source_url)
    try:
        card = b"%PDF-1.7\n% identity card issued by the provider\n%%EOF\n"
        issued = p.provider.store_document(p.citizen.address, "id_card", card, metadata={"title": "ID card"})
        own = p.citizen.store_document(p.citizen.address, "tax_record", b"tax record 2025", metadata=None)
        grant = p.citizen.grant(p.dept.address, ["id_card"], "housing-fund-withdrawal", max_uses=3)["grant_id"]
        body = p.dept.release_request(grant, "id_card")
        assert p.dept.release(grant, "id_card", p.dept_key, body=body).content == card
        first = p.dept.call("POST", "/v1/releases", json=body)  # the same signed request: the same release
        # the backup is taken while the API (and its release relayer) runs
        backup = tmp_path / "backup.qclbak"
        text = _ok(_qcl(["vault", "backup", str(backup)], src, source_url))
        assert "2 live documents" in text and backup.stat().st_mode & 0o777 == 0o600
    finally:
        p.close()

    with tarfile.open(backup) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
        sealed = tar.extractfile(KEYRING).read()  # type: ignore[union-attr]
    assert names[:3] == [MANIFEST, KEYRING, DATABASE]
    assert manifest["alembic_revision"] == schema_revisions()[-1]
    assert manifest["documents"]["live"] == 2 and manifest["database"]["tables"]["release_log"]["rows"] == 1
    # the key ring travels sealed, exactly as it is at rest: no key material in the clear
    assert sealed == (src / "keyring.json").read_bytes() and set(json.loads(sealed)) >= {"kdf", "sealed"}

    text = _ok(_qcl(["vault", "restore", str(backup)], dst, target_url))
    assert "every live document opens (2)" in text

    settings = Settings(env="test", data_dir=dst, public_url="http://testserver")
    store = Store(target_url) if target_url else Store.sqlite(dst / "vault.db")
    vault = Vault(
        store=store, keyring=FileKeyRing(dst / "keyring.json", PASSPHRASE, create=False), ledger=deployed.ledger
    )
    http = TestClient(create_app(settings, ledger=deployed.ledger, vault=vault), raise_server_exceptions=False)
    try:
        citizen = QclClient(http=http, account=p.citizen.account)
        citizen.login()
        assert {d["document_id"] for d in citizen.documents()} == {issued["document_id"], own["document_id"]}
        assert citizen.read_document(issued["document_id"]) == card
        assert citizen.read_document(own["document_id"]) == b"tax record 2025"
        # the department asks for its release again: the same release, from the restored log
        dept = QclClient(http=http, account=p.dept.account)
        dept.login()
        again = dept.call("POST", "/v1/releases", json=body)
        assert (again["release_id"], again["tx_hash"]) == (first["release_id"], first["tx_hash"])
        assert dept.release(grant, "id_card", p.dept_key, body=body).content == card
        auditor = QclClient(http=http, account=deployed.auditor)
        auditor.login()
        audit = auditor.call("POST", "/v1/audit/verify", json={})
        assert audit["violations"] == [], audit["violations"]
        assert audit["releases"] == 1, audit
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(ReleaseLogRow)) == 1
    finally:
        http.app.state.verifications.stop()  # type: ignore[attr-defined]
        store.dispose()


# ---- refusals (no chain: a vault on a stub ledger) -------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory with three documents (one shredded) and its backup file."""
    data = tmp_path / "data"
    store = Store.sqlite(data / "vault.db")
    ring = FileKeyRing(data / "keyring.json", PASSPHRASE, scrypt_n=2**12)
    vault = Vault(store=store, keyring=ring, ledger=StubLedger())  # type: ignore[arg-type]
    subject, issuer = "0x1111111111111111111111111111111111111111", "0x3333333333333333333333333333333333333333"
    ids = [
        vault.store_document(subject=subject, resource="id_card", content=bytes([i]) * 100, issuer=issuer).document
        for i in range(3)
    ]
    vault.rotate()  # two key versions have existed; the backup holds the current one
    vault.delete_document(ids[0].document_id, subject=subject)
    store.dispose()
    backup = tmp_path / "small.qclbak"
    _ok(_qcl(["vault", "backup", str(backup)], data))
    return data, backup


def test_a_restore_into_an_empty_directory_opens_every_live_document(small: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = small
    Store.sqlite(tmp_path / "new" / "vault.db").dispose()  # a schema without rows counts as empty
    text = _ok(_qcl(["vault", "restore", str(backup)], tmp_path / "new"))
    assert "every live document opens (2)" in text
    store = Store.sqlite(tmp_path / "new" / "vault.db")
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(DocumentRow)) == 3  # the shredded one stays shredded
            assert s.scalar(select(func.count()).where(DocumentRow.wrapped_key.is_(None))) == 1
    finally:
        store.dispose()


def test_a_sqlite_backup_restores_into_postgresql(small: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = small
    url = create_pg_database("qcl_backup_cross")
    try:
        text = _ok(_qcl(["vault", "restore", str(backup)], tmp_path / "pg", url))
        assert "every live document opens (2)" in text
        store = Store(url)
        try:  # the restored ids do not collide with new rows (sequences moved past them)
            with store.session() as s:
                assert s.scalar(select(func.count()).select_from(DocumentRow)) == 3
        finally:
            store.dispose()
    finally:
        drop_pg_database(url)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    """A copy of the archive with some members' bytes replaced."""
    with tarfile.open(src) as tar, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as out:
        for member in tar:
            data = change.get(member.name, tar.extractfile(member).read())  # type: ignore[union-attr]
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def test_a_damaged_or_truncated_file_is_refused(small: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = small
    raw = backup.read_bytes()
    target = tmp_path / "target"
    truncated = tmp_path / "truncated.qclbak"
    truncated.write_bytes(raw[: len(raw) // 2])
    _refused(_qcl(["vault", "restore", str(truncated)], target), "not a complete backup")
    flipped = bytearray(raw)
    with tarfile.open(backup) as tar:
        member = tar.getmember(DATABASE)
        flipped[member.offset_data + member.size // 2] ^= 0x01
    damaged = tmp_path / "damaged.qclbak"
    damaged.write_bytes(bytes(flipped))
    _refused(_qcl(["vault", "restore", str(damaged)], target), "SHA-256 of database.jsonl.gz does not match")
    garbage = tmp_path / "garbage.qclbak"
    garbage.write_bytes(b"not a backup at all" * 100)
    _refused(_qcl(["vault", "restore", str(garbage)], target), "not a complete backup")
    _refused(_qcl(["vault", "restore", str(tmp_path / "missing.qclbak")], target), "no backup file")
    assert not target.exists() or not any(target.iterdir())  # nothing written


def test_another_passphrase_and_an_altered_manifest_are_refused(small: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = small
    target = tmp_path / "target"
    _refused(
        _qcl(["vault", "restore", str(backup)], target, passphrase="another passphrase"),
        "does not open with this QCL_VAULT_PASSPHRASE",
    )
    with tarfile.open(backup) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    manifest["documents"]["live"] = 99  # the hashes still match; only the HMAC can tell
    altered = tmp_path / "altered.qclbak"
    _rewrite(backup, altered, {MANIFEST: json.dumps(manifest).encode()})
    _refused(_qcl(["vault", "restore", str(altered)], target), "manifest was altered")
    env = {**CLEAR_ENV, "QCL_DATA_DIR": str(target), "QCL_VAULT_PASSPHRASE": PASSPHRASE}
    other_profile = CliRunner().invoke(
        app, ["vault", "restore", str(backup)], env={**env, "QCL_CRYPTO_PROFILE": "sm4-gcm-sm3"}
    )
    _refused(other_profile, "cannot be used: it uses profile aes-256-gcm, the settings ask for sm4-gcm-sm3")
    assert not (target / "keyring.json").exists() and not (target / "vault.db").exists()


def test_a_target_that_is_not_empty_is_replaced_only_with_force(small: tuple[Path, Path], tmp_path: Path) -> None:
    data, backup = small
    _refused(_qcl(["vault", "restore", str(backup)], data), "target is not empty", "--force")
    other = tmp_path / "other"  # a key ring but no database yet: not empty either
    FileKeyRing(other / "keyring.json", PASSPHRASE, scrypt_n=2**12)
    _refused(_qcl(["vault", "restore", str(backup)], other), "a key ring exists")
    text = _ok(_qcl(["vault", "restore", str(backup), "--force"], data))
    assert "every live document opens (2)" in text
    # and backing up over an existing file needs --force too
    _refused(_qcl(["vault", "backup", str(backup)], data), "exists")
    _ok(_qcl(["vault", "backup", str(backup), "--force"], data))


def test_a_backup_needs_a_key_ring_that_opens(small: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = small
    _refused(_qcl(["vault", "backup", str(tmp_path / "b")], data, passphrase="wrong"), "does not open")
    _refused(_qcl(["vault", "backup", str(tmp_path / "b")], tmp_path / "nothing"), "no database")
    assert not (tmp_path / "b").exists()


def test_a_backup_of_an_older_schema_is_upgraded_and_a_newer_one_refused(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    store = Store(f"sqlite:///{old / 'vault.db'}", migrate=False)
    store.migrate("0009_events")  # a deployment that has not taken the newest migration yet
    store.dispose()
    FileKeyRing(old / "keyring.json", PASSPHRASE, scrypt_n=2**12)
    backup = tmp_path / "old.qclbak"
    assert "schema 0009_events" in _ok(_qcl(["vault", "backup", str(backup)], old))
    text = _ok(_qcl(["vault", "restore", str(backup)], tmp_path / "new"))
    assert f"restored schema 0009_events, upgraded to {schema_revisions()[-1]}" in text
    restored = Store(f"sqlite:///{tmp_path / 'new' / 'vault.db'}", migrate=False)
    try:
        assert restored.revision() == schema_revisions()[-1]
    finally:
        restored.dispose()
    # a backup made by a newer release (a revision this code does not know) is refused, HMAC and all
    with tarfile.open(backup) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    manifest["alembic_revision"] = "0099_future"
    _seal(manifest, PASSPHRASE)
    newer = tmp_path / "newer.qclbak"
    _rewrite(backup, newer, {MANIFEST: json.dumps(manifest).encode()})
    _refused(_qcl(["vault", "restore", str(newer)], tmp_path / "other"), "0099_future is unknown to this release")


def test_backups_taken_during_rotations_restore_with_every_document(tmp_path: Path) -> None:
    """The key ring is copied and the database read under the ring's shared lock: a backup taken in
    the middle of a rotation holds every version its data keys are wrapped under."""
    data = tmp_path / "data"
    store = Store.sqlite(data / "vault.db")
    ring = FileKeyRing(data / "keyring.json", PASSPHRASE, scrypt_n=2**12)
    vault = Vault(store=store, keyring=ring, ledger=StubLedger())  # type: ignore[arg-type]
    subject, issuer = "0x1111111111111111111111111111111111111111", "0x3333333333333333333333333333333333333333"
    for i in range(120):
        vault.store_document(subject=subject, resource="id_card", content=i.to_bytes(4, "big") * 64, issuer=issuer)
    done, half, taken = threading.Event(), threading.Event(), threading.Event()

    def progress(count: int, _total: int) -> None:
        if count == 60 and not half.is_set():  # the first rotation half-way: one backup for sure here
            half.set()
            taken.wait(30)
        time.sleep(0.002)

    def rotate_twice() -> None:
        try:
            for _ in range(2):  # each: add a version, re-wrap one document at a time, retire the old one
                vault.rotate(batch=10, progress=progress)
        finally:
            half.set()
            done.set()

    def backup() -> None:
        path = tmp_path / f"b{len(backups)}.qclbak"
        report = create_backup(
            path, store=store, keyring_path=data / "keyring.json", passphrase=PASSPHRASE, profile_name="aes-256-gcm"
        )
        backups.append((path, report.key_versions))

    backups: list[tuple[Path, list[int]]] = []
    rotation = threading.Thread(target=rotate_twice)
    rotation.start()
    half.wait(60)
    backup()
    taken.set()
    while not done.is_set():  # and as many as fit while the rotations run on
        backup()
    rotation.join()
    store.dispose()
    assert ring.versions() == [3]
    for n, (path, _versions) in enumerate(backups):
        restored = restore_backup(
            path,
            database_url=f"sqlite:///{tmp_path / f'r{n}' / 'vault.db'}",
            keyring_path=tmp_path / f"r{n}" / "keyring.json",
            passphrase=PASSPHRASE,
            profile_name="aes-256-gcm",
        )
        assert (restored.documents_opened, restored.failed_documents) == (120, []), (n, restored)
    assert backups[0][1] == [1, 2]  # the first caught a rotation half-way: documents under both versions
