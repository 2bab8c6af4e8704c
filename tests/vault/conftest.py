"""Vault fixtures: the same suite on SQLite and on PostgreSQL (``pg_database``: a throw-away database per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy import text

from db.store import Store
from tests.chain_client.world import World, make_world
from tests.conftest import Deployed
from vault import FileKeyRing, Vault


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.sqlite(tmp_path / "vault.db")
    else:
        url = request.getfixturevalue("pg_database")
        s = Store(url)
        with s.engine.begin() as conn:  # each test starts empty
            conn.execute(text("DELETE FROM release_log"))
            conn.execute(text("DELETE FROM documents"))
    yield s
    s.dispose()


@pytest.fixture
def world(deployed: Deployed) -> World:
    return make_world(deployed)


@pytest.fixture
def dept_key(world: World) -> x25519.X25519PrivateKey:
    """The department's HPKE private key; its public key is registered on chain."""
    key = x25519.X25519PrivateKey.generate()
    roles = world.ledger.member(world.dept.address).roles
    world.ledger.update_member(world.dept.address, roles, hpke_key=key.public_key().public_bytes_raw())
    return key


@pytest.fixture
def keyring(tmp_path: Path) -> FileKeyRing:
    return FileKeyRing(tmp_path / "keyring.json", "test passphrase", scrypt_n=2**12)


@pytest.fixture
def vault(store: Store, keyring: FileKeyRing, world: World) -> Vault:
    return Vault(store=store, keyring=keyring, ledger=world.ledger)
