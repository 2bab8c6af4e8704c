"""Key rotation survives SIGKILL at any point, and never resurrects a shredded data key.

The crash test populates ~300 documents (through ``Vault.store_document`` with a stub chain), then
20 times starts ``tests/vault/_rotate_worker.py`` (``Vault.rotate(batch=10)`` in a subprocess on
the same SQLite file and key ring file) and SIGKILLs it after a random delay. After every kill the
key ring must open, every live document must name a key version the ring holds, and every document
must decrypt to its original content.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select, text
from web3 import Web3

from chain_client import Transactor
from chain_client._revert import RevertDecoder
from db.models import DocumentRow
from db.store import Store
from vault import DocumentDeleted, FileKeyRing, Vault, crypto

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "rotation crash test passphrase"
SUBJECTS = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
]
ISSUER = "0x3333333333333333333333333333333333333333"
DOCUMENTS = 300
SHREDDED = 10
KILLS = 20
SLEEP_PER_DOCUMENT = 0.002  # seconds; a full rotation of 300 documents then takes well over 0.4 s


class StubLedger:
    """Just enough chain for store_document / delete_document: every call 'succeeds'."""

    def __init__(self) -> None:
        self.anchored: list[bytes] = []
        self.shredded: list[bytes] = []
        #: The operator account, whose transactions a Vault keeps (this stub signs none).
        self.tx = self.relay = Transactor(w3=Web3(), account=Account.create(), decoder=RevertDecoder([]))

    def anchor_document(self, doc_id: bytes, *_args: Any) -> SimpleNamespace:
        self.anchored.append(doc_id)
        return SimpleNamespace(tx_hash="0x" + "ab" * 32, block_number=1)

    def shred_document(self, doc_id: bytes) -> SimpleNamespace:
        self.shredded.append(doc_id)
        return SimpleNamespace(tx_hash="0x" + "cd" * 32, block_number=1)


def _populate(vault: Vault, rng: random.Random, count: int) -> dict[str, tuple[str, bytes, dict[str, Any] | None]]:
    """Store ``count`` documents; returns id -> (subject, content, metadata)."""
    originals = {}
    for i in range(count):
        subject = SUBJECTS[i % len(SUBJECTS)]
        content = rng.randbytes(rng.randint(1, 4096))
        metadata = {"n": i, "title": f"document {i}"} if i % 3 == 0 else None
        stored = vault.store_document(
            subject=subject, resource="id_card", content=content, issuer=ISSUER, metadata=metadata
        )
        originals[stored.document.document_id] = (stored.document.subject, content, metadata)
    return originals


def _key_versions(store: Store) -> dict[str, int]:
    """Document id -> key version, for every document that still has a data key."""
    with store.session() as s:
        rows = s.execute(select(DocumentRow.id, DocumentRow.key_version).where(DocumentRow.wrapped_key.is_not(None)))
        return {doc_id: version for doc_id, version in rows}


def _check(
    store: Store,
    keyring_path: Path,
    originals: dict[str, tuple[str, bytes, dict[str, Any] | None]],
    shredded: dict[str, str],
) -> tuple[FileKeyRing, Counter[int]]:
    """The invariants that must hold after any crash. Returns the ring and the documents per version."""
    keyring = FileKeyRing(keyring_path, PASSPHRASE, create=False)  # opens: never torn
    assert keyring.current_version() in keyring.versions()
    with store.session() as s:
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    versions = _key_versions(store)
    assert set(versions) == set(originals)  # shredded documents stay shredded, live ones keep a key
    held = set(keyring.versions())
    stray = {doc_id: v for doc_id, v in versions.items() if v not in held}
    assert not stray, f"documents wrapped under versions the ring does not hold {sorted(held)}: {stray}"
    vault = Vault(store=store, keyring=keyring, ledger=None)
    for doc_id, (subject, content, metadata) in originals.items():
        opened = vault.read_document(doc_id, subject=subject)
        assert opened.content == content, doc_id
        assert opened.metadata == metadata, doc_id
    for doc_id, subject in shredded.items():
        with pytest.raises(DocumentDeleted):
            vault.read_document(doc_id, subject=subject)
    return keyring, Counter(versions.values())


def _start_worker(db_path: Path, keyring_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.vault._rotate_worker",
            str(db_path),
            str(keyring_path),
            PASSPHRASE,
            str(SLEEP_PER_DOCUMENT),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail(f"the rotation worker printed nothing in {timeout} s")
    return proc.stdout.readline().strip()


@pytest.mark.slow
def test_rotation_survives_sigkill_at_random_points(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    db_path, keyring_path = tmp_path / "vault.db", tmp_path / "keyring.json"
    store = Store.sqlite(db_path)
    keyring = FileKeyRing(keyring_path, PASSPHRASE, scrypt_n=2**12)
    vault = Vault(store=store, keyring=keyring, ledger=StubLedger())  # type: ignore[arg-type]
    originals = _populate(vault, rng, DOCUMENTS + SHREDDED)
    shredded = {doc_id: originals.pop(doc_id)[0] for doc_id in rng.sample(sorted(originals), SHREDDED)}
    for doc_id, subject in shredded.items():
        vault.delete_document(doc_id, subject=subject)
    assert len(originals) == DOCUMENTS
    _check(store, keyring_path, originals, shredded)

    history = []  # (delay, outcome, documents per version) per run, for the failure message
    mixed = killed = 0
    for run in range(KILLS):
        proc = _start_worker(db_path, keyring_path)
        try:
            line = _wait_for_line(proc, timeout=120)
            assert line == "ready", f"worker did not start: {line!r} {proc.communicate()[1][-2000:]}"
            delay = rng.uniform(0.0, 0.4)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            outcome = "killed"
        else:  # finished before the kill: it must have succeeded
            assert proc.returncode == 0, f"run {run}: worker failed (seed {seed}):\n{stderr[-4000:]}"
            outcome = "finished"
        ring, per_version = _check(store, keyring_path, originals, shredded)
        if len(per_version) > 1:
            mixed += 1
        history.append((round(delay, 3), outcome, dict(per_version), ring.versions()))

    summary = json.dumps(history)
    print(f"seed {seed}; {killed} kills, {mixed} runs left documents on mixed versions; per run: {summary}")
    assert killed >= KILLS // 2, f"too few kills landed (seed {seed}): {summary}"
    assert mixed >= 1, f"no kill landed mid-rotation (seed {seed}): {summary}"
    assert max(v for *_, versions in history for v in versions) >= 2, summary

    # finish in-process: everything on the newest version, every older version destroyed
    keyring = FileKeyRing(keyring_path, PASSPHRASE, create=False)
    before = keyring.versions()
    vault = Vault(store=store, keyring=keyring, ledger=None)
    report = vault.rotate()
    assert report.version == keyring.current_version() >= max(before)
    assert keyring.versions() == [report.version]
    assert set(report.retired) == set(before) - {report.version}
    assert set(_key_versions(store).values()) == {report.version}
    final_ring, per_version = _check(store, keyring_path, originals, shredded)
    assert final_ring.versions() == [report.version]
    assert per_version == Counter({report.version: DOCUMENTS})
    store.dispose()


def test_rotation_does_not_resurrect_a_key_shredded_during_the_rotation(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "vault.db")
    keyring = FileKeyRing(tmp_path / "keyring.json", PASSPHRASE, scrypt_n=2**12)
    vault = Vault(store=store, keyring=keyring, ledger=StubLedger())  # type: ignore[arg-type]
    originals = _populate(vault, random.Random(1), 6)
    with store.session() as s:  # what a backup taken before the deletion holds
        backup = {r.id: r.content for r in s.scalars(select(DocumentRow))}
    shredded: list[str] = []

    def progress(done: int, _total: int) -> None:
        if done == 1:  # the rotation has read its batch; the subject now deletes the other documents
            for doc_id in sorted(_key_versions(store)):
                if _key_versions(store)[doc_id] == 1:
                    vault.delete_document(doc_id, subject=originals[doc_id][0])
                    shredded.append(doc_id)

    vault.rotate(progress=progress)
    assert len(shredded) >= 1
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(DocumentRow).where(DocumentRow.id.in_(shredded)))}
    assert all(r.state == "deleted" for r in rows.values())
    resurrected = {}
    for doc_id, row in rows.items():
        if row.wrapped_key is not None:  # the shredded key is back: the pre-deletion backup decrypts again
            raw, subject = bytes.fromhex(doc_id[2:]), originals[doc_id][0]
            key = keyring.unwrap(row.key_version, row.wrapped_key, crypto.wrap_aad(raw, subject, row.key_version))
            resurrected[doc_id] = keyring.profile.decrypt(key, backup[doc_id], crypto.content_aad(raw, subject))
            assert resurrected[doc_id] == originals[doc_id][1]
    assert not resurrected, f"{len(resurrected)} of {len(shredded)} shredded documents decrypt again from a backup"
