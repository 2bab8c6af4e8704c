"""Scan to authorise (SPEC §9.6): the ``qcl-grant:`` text, its counter limits, ``qcl grant qr`` and
``qcl grant relay`` against the API."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import segno
from eth_account import Account
from typer.testing import CliRunner, Result

from cli import qr as cli_qr
from cli.main import app
from qcl_client import (
    MAX_QR_WINDOW,
    QR_PREFIX,
    QclClient,
    QrGrantError,
    check_counter_grant,
    decode_grant_qr,
    encode_grant_qr,
)
from tests.api.conftest import Platform

GRANTEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _body(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    message = {
        "subject": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "grantee": GRANTEE,
        "resources": ["0x" + "11" * 32],
        "purpose": "0x" + "22" * 32,
        "validFrom": now - 60,
        "validUntil": now - 60 + 3600,
        "maxUses": 1,
        "nonce": "123",
        "deadline": now + 600,
    }
    return {"message": message | changes, "signature": "0x" + "ab" * 65}


def test_the_text_is_the_body_in_base64url_without_padding() -> None:
    body = _body()
    text = encode_grant_qr(body)
    payload = text.removeprefix(QR_PREFIX)
    assert text.startswith(QR_PREFIX) and "=" not in payload and "+" not in payload and "/" not in payload
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == body
    assert decode_grant_qr(text) == body and decode_grant_qr(f"  {text}\n") == body


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("qcl-grants:e30", "does not start"),
        ("QCL-GRANT:e30", "does not start"),
        (QR_PREFIX, "base64url"),
        (QR_PREFIX + "e30=", "base64url"),  # padding
        (QR_PREFIX + "e3+/", "base64url"),  # the standard alphabet
        (QR_PREFIX + base64.urlsafe_b64encode(b"not json").decode().rstrip("="), "JSON"),
        (QR_PREFIX + base64.urlsafe_b64encode(b"[1]").decode().rstrip("="), "exactly"),
        (QR_PREFIX + base64.urlsafe_b64encode(json.dumps(_body() | {"x": 1}).encode()).decode().rstrip("="), "exactly"),
    ],
)
def test_what_is_not_a_grant_qr(text: str, why: str) -> None:
    with pytest.raises(QrGrantError, match=why):
        decode_grant_qr(text)


def test_the_counter_limits() -> None:
    start = int(time.time())
    check_counter_grant(_body(validFrom=start, validUntil=start + MAX_QR_WINDOW))  # one day exactly
    check_counter_grant(_body(maxUses=5), grantee=GRANTEE.lower(), now=start)
    refused = {
        "maxUses": (_body(maxUses=0), "maxUses must be at least 1"),
        "window": (_body(validFrom=start, validUntil=start + MAX_QR_WINDOW + 1), "at most one day"),
        "reversed": (_body(validFrom=start, validUntil=start), "after validFrom"),
        "grantees": (_body(grantee=[GRANTEE, GRANTEE]), "exactly one grantee"),
        "no resources": (_body(resources=[]), "resource set"),
        "bool": (_body(maxUses=True), "integer"),
    }
    for body, why in refused.values():
        with pytest.raises(QrGrantError, match=why):
            check_counter_grant(body)
        with pytest.raises(QrGrantError, match=why):
            encode_grant_qr(body)  # nothing outside the limits is ever drawn
    with pytest.raises(QrGrantError, match="not 0x"):
        check_counter_grant(_body(), grantee="0x" + "00" * 20)
    with pytest.raises(QrGrantError, match="deadline"):
        check_counter_grant(_body(deadline=start - 1), now=start)


# ---- the commands against the API -------------------------------------------------------------


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(app, args, env={"QCL_KEY": None, "QCL_API": None})


def _key(client: QclClient) -> str:
    return "0x" + bytes(client.account.key).hex()


def _qr(p: Platform, purpose: str) -> list[str]:
    """``qcl grant qr`` as the citizen, for the department, over tax_record."""
    key = _key(p.citizen)
    return ["grant", "qr", "--grantee", p.dept.address, "--resource", "tax_record", "--purpose", purpose, "--key", key]


@pytest.fixture
def api(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    def connect(base_url: str, private_key: str) -> QclClient:
        return QclClient(http=platform.http, account=Account.from_key(private_key))

    monkeypatch.setattr(cli_qr, "_connect", connect)
    return platform


def test_scan_to_authorise_from_the_command_line(api: Platform, tmp_path: Path) -> None:
    p = api
    png, svg = tmp_path / "grant.png", tmp_path / "grant.svg"
    shown = _run(
        [*_qr(p, "loan-application"), "--valid-for", "1800", "--max-uses", "2", "--png", str(png), "--svg", str(svg)]
    )
    assert shown.exit_code == 0, shown.output
    text = shown.output.strip().splitlines()[-1]
    body = decode_grant_qr(text)
    message = check_counter_grant(body, grantee=p.dept.address)
    assert (message["subject"], message["maxUses"], message["validUntil"] - message["validFrom"]) == (
        p.citizen.address,
        2,
        1800,
    )
    assert png.read_bytes().startswith(b"\x89PNG") and b"<svg" in svg.read_bytes()
    assert "█" in shown.output or "▀" in shown.output  # drawn in the terminal
    drawn = segno.make(text, error="m", micro=False)
    assert drawn.version <= 40 and drawn.designator.startswith(str(drawn.version))

    refused = _run(["grant", "relay", text, "--key", _key(p.other_dept)])  # not addressed to it
    assert refused.exit_code == 2 and "not" in refused.output and "Traceback" not in refused.output
    relayed = _run(["grant", "relay", text, "--key", _key(p.dept)])
    assert relayed.exit_code == 0, relayed.output
    grant_id = relayed.output.split()[1]
    detail = p.dept.grant_detail(grant_id)
    assert (detail["status"], detail["grantee"]) == ("active", p.dept.address)
    again = _run(["grant", "relay", text, "--key", _key(p.dept)])
    assert again.exit_code == 2 and "refused" in again.output

    too_long = _run([*_qr(p, "x"), "--valid-for", str(MAX_QR_WINDOW + 1), "--no-terminal"])
    assert too_long.exit_code == 2 and "one day" in " ".join(too_long.output.split())
    unlimited = _run([*_qr(p, "x"), "--max-uses", "0"])
    assert unlimited.exit_code == 2


def test_the_sdk_relays_a_scanned_grant(api: Platform) -> None:
    p = api
    text = p.citizen.grant_qr(p.dept.address, ["tax_record"], "loan-application", valid_for=600)
    with pytest.raises(QrGrantError):
        p.other_dept.relay_qr(text)
    recorded = p.dept.relay_qr(text)
    assert p.citizen.grant_detail(recorded["grant_id"])["maxUses"] == 1
