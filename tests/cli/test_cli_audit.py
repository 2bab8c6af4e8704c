"""`qcl audit trail|verify|report` against a live API server (uvicorn in a thread, free port)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from api.app import create_app
from chain_client import free_port
from cli.audit import audit_app
from tests.api.conftest import Platform


@pytest.fixture
def server(platform: Platform) -> Iterator[str]:
    port = free_port()
    # the same API under the URL it is served at: the client signs only a login naming that server
    settings = platform.http.app.state.settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, ledger=platform.deployed.ledger, vault=platform.vault)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    srv.should_exit = True
    thread.join(10)


def test_audit_commands(platform: Platform, server: str, tmp_path: Path) -> None:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", b"card")
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    key = p.auditor.account.key.to_0x_hex()
    runner = CliRunner()

    trail = runner.invoke(audit_app, ["trail", "--api", server, "--key", key, "--subject", p.citizen.address])
    assert trail.exit_code == 0, trail.output
    assert "GrantRecorded" in trail.output and "ReleaseRecorded" in trail.output

    report_path = tmp_path / "verify.json"
    verified = runner.invoke(
        audit_app, ["verify", "--api", server, "--key", key, "--poll", "0.05", "--json", str(report_path)]
    )
    assert verified.exit_code == 0, verified.output
    combined = json.loads(report_path.read_text())
    assert combined["ok"] is True and combined["releases"] == 1 and "no violation found" in verified.output

    html = tmp_path / "report.html"
    made = runner.invoke(
        audit_app, ["report", "--api", server, "--key", key, "--subject", p.citizen.address, "--html", str(html)]
    )
    assert made.exit_code == 0, made.output
    assert "<svg" in html.read_text()

    p.vault.store.engine.dispose()
    from sqlalchemy import delete

    from db.models import ReleaseLogRow

    with p.vault.store.session() as s:
        s.execute(delete(ReleaseLogRow))
    failed = runner.invoke(audit_app, ["verify", "--api", server, "--key", key])
    assert failed.exit_code == 1 and "receipt_without_release" in failed.output


def test_audit_needs_a_key_and_a_member(platform: Platform, server: str) -> None:
    runner = CliRunner()
    missing = runner.invoke(audit_app, ["verify", "--api", server], env={"QCL_KEY": ""})
    assert missing.exit_code == 2 and "key" in missing.output
    stranger = runner.invoke(audit_app, ["verify", "--api", server, "--key", "0x" + "11" * 32])
    assert stranger.exit_code == 2 and "not_a_member" in stranger.output
    assert "Traceback" not in stranger.output
