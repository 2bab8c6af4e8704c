"""A dependency down is a 503 that says which one, and no more (issue 16): the chain node's or the
database's address and the HTTP or database library's message stay in the server's log; the
service recovers by itself when the dependency is back."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from eth_account import Account
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from chain_client import CompilationResult, connect, start_node
from db.store import Store
from tests.conftest import create_pg_database, deploy_fresh, drop_pg_database
from tests.faults.tcpproxy import TcpProxy
from vault import FileKeyRing, Vault

#: What a problem detail must never show: addresses, ports, library and exception names, paths.
LEAKS = re.compile(
    r"127\.0\.0\.1|localhost|:\d{2,5}\b|HTTPConnection|urllib3|requests|Errno|refused|psycopg|sqlite|"
    r"OperationalError|Traceback|/tmp|\.db\b",
    re.IGNORECASE,
)


def _app(ledger, store: Store, tmp_path: Path) -> TestClient:  # type: ignore[no-untyped-def]
    settings = Settings(env="test", data_dir=tmp_path, public_url="http://testserver")
    keyring = FileKeyRing(tmp_path / "keyring.json", "test passphrase", scrypt_n=2**12)
    vault = Vault(store=store, keyring=keyring, ledger=ledger)
    return TestClient(create_app(settings, ledger=ledger, vault=vault), raise_server_exceptions=False)


def _challenge(client: TestClient):  # type: ignore[no-untyped-def]
    return client.post("/v1/auth/challenge", json={"address": Account.create().address})


def _assert_says_less(response, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert not LEAKS.search(body["detail"]), body["detail"]
    assert set(body) == {"type", "title", "status", "code", "detail", "instance"}, body


def test_chain_down_is_503_without_the_nodes_address(compiled: CompilationResult, tmp_path: Path) -> None:
    node = start_node("anvil", log_dir=tmp_path / "logs")
    proxy = TcpProxy("127.0.0.1", int(urlsplit(str(node.url)).port or 0))
    try:
        deployed = deploy_fresh(connect(f"http://127.0.0.1:{proxy.port}"), compiled)
        client = _app(deployed.ledger, Store.sqlite(tmp_path / "vault.db"), tmp_path)
        assert client.get("/health").status_code == 200
        proxy.cut()
        for path in ("/health", "/v1/chain/head", "/health"):
            response = client.get(path)
            if response.status_code == 404:  # a route this build may not have
                continue
            _assert_says_less(response, "chain_unavailable")
        assert response.headers.get("retry-after") == "1"
        proxy.restore()  # the same node answers again: nothing to restart in the service
        assert client.get("/health").status_code == 200
    finally:
        proxy.close()
        node.stop()


def test_locked_sqlite_file_is_503_then_recovers(deployed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "vault.db"
    Store.sqlite(path).dispose()  # migrated
    client = _app(deployed.ledger, Store(f"sqlite:///{path}", busy_timeout=0.5), tmp_path)
    assert _challenge(client).status_code == 200
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        _assert_says_less(_challenge(client), "database_unavailable")
        _assert_says_less(_challenge(client), "database_unavailable")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _challenge(client).status_code == 200


def test_postgresql_gone_is_503_then_recovers(deployed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = create_pg_database("qcl_faults")
    parts = urlsplit(url.replace("postgresql+psycopg", "http"))
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    store = Store(proxied, busy_timeout=2)
    try:
        client = _app(deployed.ledger, store, tmp_path)
        assert _challenge(client).status_code == 200
        proxy.cut()  # PostgreSQL restarted / unreachable: open connections die, new ones are refused
        _assert_says_less(_challenge(client), "database_unavailable")
        _assert_says_less(_challenge(client), "database_unavailable")
        proxy.restore()
        assert _challenge(client).status_code == 200  # the pool pings and reconnects by itself
    finally:
        proxy.close()
        store.dispose()
        drop_pg_database(url)


def test_the_log_keeps_what_the_caller_is_not_told(compiled: CompilationResult, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    node = start_node("anvil", log_dir=tmp_path / "logs")
    try:
        deployed = deploy_fresh(node, compiled)
        client = _app(deployed.ledger, Store.sqlite(tmp_path / "vault.db"), tmp_path)
        node.stop()
        with caplog.at_level("WARNING", logger="qcl.api"):
            _assert_says_less(client.get("/health"), "chain_unavailable")
        port = str(urlsplit(str(node.url)).port)
        assert any(port in r.getMessage() for r in caplog.records), "the operator's log names the node"
    finally:
        node.stop()
