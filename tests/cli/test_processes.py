"""The processes of a deployment (DESIGN.md "Processes"), as an operator runs them, on PostgreSQL:
``qcl worker`` (one active, a second standing by) beside ``qcl serve --workers 2`` (stateless API
processes that run no background loop). A release through either API process is recorded by the
worker's relayer; the worker killed with SIGKILL is replaced by the one standing by."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from sqlalchemy import select

from chain_client import free_port, start_node
from db.models import ReleaseIntent, ReleaseLogRow
from db.store import Store
from qcl_client import QclClient, open_release
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
QCL = str(ROOT / ".venv" / "bin" / "qcl")


@pytest.fixture
def database() -> Iterator[str]:
    url = create_pg_database("qcl_proc")  # a missing PostgreSQL fails the test, never skips it
    yield url
    drop_pg_database(url)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([QCL, *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=log.parent)


def _wait_for(check, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@pytest.mark.slow
def test_serve_processes_beside_one_active_worker(database: str, tmp_path: Path) -> None:
    node = start_node("anvil", log_dir=tmp_path / "anvil-logs")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        data = tmp_path / "data"
        data.mkdir()
        keys = {name: Account.create() for name in ("admin", "relayer", "releaser", "auditor")}
        accounts = {n: {"address": a.address, "private_key": a.key.to_0x_hex()} for n, a in keys.items()}
        (data / "accounts.json").write_text(json.dumps(accounts))
        for account in keys.values():
            node.fund(account.address)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "QCL_ENV": "dev",
            "QCL_CHAIN": str(node.url),
            "QCL_DATABASE_URL": database,
            "QCL_DATA_DIR": str(data),
            "QCL_API_PORT": str(port),
            "QCL_PUBLIC_URL": url,
            "QCL_CHECKPOINT_INTERVAL": "1",
        }
        first = _spawn(["worker"], env, tmp_path / "worker-1.log")
        procs.append(first)
        _wait_for(lambda: "worker active" in (tmp_path / "worker-1.log").read_text(), "the first worker")
        second = _spawn(["worker"], env, tmp_path / "worker-2.log")
        procs.append(second)
        _wait_for(lambda: "standing by" in (tmp_path / "worker-2.log").read_text(), "the second worker to stand by")
        api = _spawn(["serve", "--workers", "2"], env, tmp_path / "serve.log")
        procs.append(api)

        def healthy() -> bool:
            try:
                return httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, "the API processes")
        http = httpx.Client(base_url=url, timeout=60)
        admin = QclClient(http=http, account=keys["admin"])
        admin.login()
        provider, citizen, dept = (QclClient(http=http, account=Account.create()) for _ in range(3))
        dept_key = x25519.X25519PrivateKey.generate()
        admin.onboard(provider.address, ["PROVIDER"], "Jinan Public Security Bureau", org_code="P1")
        admin.onboard(citizen.address, ["SUBJECT"], "Citizen Zhang")
        admin.onboard(
            dept.address,
            ["CONSUMER"],
            "Housing Fund",
            org_code="C1",
            hpke_public_key=dept_key.public_key().public_bytes_raw(),
        )
        admin.register_resource("id_card", "Resident identity card", provider.address, 3)
        for client in (provider, citizen, dept):
            client.login()
        provider.store_document(citizen.address, "id_card", b"card")
        grant_id = citizen.grant(dept.address, ["id_card"], "loan-application")["grant_id"]

        def release() -> bytes:
            body = dept.release_request(grant_id, "id_card")
            answer = dept.call("POST", "/v1/releases", json=body)
            return open_release(
                answer,
                dept_key,
                grant_id=bytes.fromhex(grant_id[2:]),
                request_id=bytes.fromhex(body["message"]["requestId"][2:]),
            ).content

        assert [release() for _ in range(4)] == [b"card"] * 4  # recorded by the worker, not the API
        store = Store(database, migrate=False)
        with store.session() as s:
            assert s.scalars(select(ReleaseLogRow.idx).order_by(ReleaseLogRow.idx)).all() == [0, 1, 2, 3]
            assert {r.status for r in s.scalars(select(ReleaseIntent)).all()} == {"recorded"}
        # the active worker dies; the one standing by takes over
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        _wait_for(lambda: "worker active" in (tmp_path / "worker-2.log").read_text(), "the second worker")
        assert release() == b"card"
        with store.session() as s:
            assert s.scalars(select(ReleaseLogRow.idx).order_by(ReleaseLogRow.idx)).all() == [0, 1, 2, 3, 4]
        store.dispose()
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        node.stop()
