"""An API on a fresh deployment (anvil) with its database; members as QclClient sessions.

The database is SQLite, or, in modules marked ``both_databases``, SQLite and then PostgreSQL
(``api_database`` is parametrised per module; the PostgreSQL runs share one throw-away database
per module, emptied before each platform is built)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.settings import Settings
from db.models import Base
from db.store import Store
from qcl_client import QclClient
from tests.conftest import Deployed
from vault import FileKeyRing, Vault


@dataclass
class Platform:
    deployed: Deployed
    http: TestClient
    vault: Vault
    admin: QclClient
    provider: QclClient
    citizen: QclClient
    dept: QclClient
    dept_key: x25519.X25519PrivateKey
    other_dept: QclClient
    auditor: QclClient

    def stranger(self) -> QclClient:
        return QclClient(http=self.http, account=Account.create())

    def close(self) -> None:
        """Stop the release relayer's thread and close the database."""
        self.vault.relayer.stop()
        self.http.app.state.verifications.stop()  # type: ignore[attr-defined]
        self.vault.store.dispose()


DATABASES = ["sqlite", "postgresql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("api_database", DATABASES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def api_database(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` unless the module is marked ``both_databases`` (then each in turn)."""
    return str(getattr(request, "param", "sqlite"))


def database_url(request: pytest.FixtureRequest, kind: str) -> str | None:
    """``None`` (SQLite under the platform's directory) or the module's PostgreSQL database, emptied."""
    if kind == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    store = Store(url)  # migrates it on first use
    try:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with store.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        store.dispose()
    return url


def build_platform(deployed: Deployed, tmp_path: Path, *, database_url: str | None = None) -> Platform:
    """An API on ``deployed`` with a vault on ``database_url`` (default: SQLite under ``tmp_path``)
    and logged-in members."""
    settings = Settings(env="test", data_dir=tmp_path, public_url="http://testserver")
    vault = Vault(
        store=Store(database_url) if database_url else Store.sqlite(tmp_path / "vault.db"),
        keyring=FileKeyRing(tmp_path / "keyring.json", "test passphrase", scrypt_n=2**12),
        ledger=deployed.ledger,
    )
    http = TestClient(create_app(settings, ledger=deployed.ledger, vault=vault), raise_server_exceptions=False)
    vault.relayer.start()  # what the app's lifespan does in `qcl dev` (the TestClient runs no lifespan)
    http.app.state.verifications.start_runner()  # type: ignore[attr-defined]
    admin = QclClient(http=http, account=deployed.admin)
    assert admin.login() == ["ADMIN"]
    members = {
        name: QclClient(http=http, account=Account.create()) for name in ("provider", "citizen", "dept", "other_dept")
    }
    # The deployment names the first AUDITOR (SPEC §9.8: an ADMIN alone cannot enrol one).
    members["auditor"] = QclClient(http=http, account=deployed.auditor)
    dept_key = x25519.X25519PrivateKey.generate()
    admin.onboard(members["provider"].address, ["PROVIDER"], "Jinan Public Security Bureau", org_code="11370100MB1")
    admin.onboard(members["citizen"].address, ["SUBJECT"], "Citizen Zhang")
    admin.onboard(
        members["dept"].address,
        ["CONSUMER"],
        "Housing Provident Fund Center",
        org_code="12370100MB2",
        hpke_public_key=dept_key.public_key().public_bytes_raw(),
    )
    admin.onboard(
        members["other_dept"].address,
        ["CONSUMER"],
        "Another department",
        hpke_public_key=x25519.X25519PrivateKey.generate().public_key().public_bytes_raw(),
    )
    admin.register_resource("id_card", "Resident identity card", members["provider"].address, 3)
    admin.register_resource("tax_record", "Tax payment record", members["provider"].address, 2)
    for client in members.values():
        client.login()
    return Platform(deployed=deployed, http=http, vault=vault, admin=admin, dept_key=dept_key, **members)


@pytest.fixture
def platform(
    deployed: Deployed, tmp_path: Path, api_database: str, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    built = build_platform(deployed, tmp_path, database_url=database_url(request, api_database))
    yield built
    built.close()


@pytest.fixture
def alone(deployed_alone: Deployed, tmp_path: Path) -> Iterator[Platform]:
    """The platform on an anvil of the test's own, for tests that move the chain's clock."""
    built = build_platform(deployed_alone, tmp_path)
    yield built
    built.close()
