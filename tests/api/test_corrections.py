"""Data corrections (SPEC §9.4): opening, visibility, resolution, supersede, anchors, clocks, report."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from eth_utils import keccak
from sqlalchemy import update

from api.routers import corrections
from api.workdays import CalendarUnknown, due_at
from chain_client import ChainUnavailable
from chain_client.ids import resource_id
from db.models import CorrectionRow
from qcl_client import ApiError
from tests.api.conftest import Platform

CARD = b"ID card: Zhang San, Lixia District"
FIXED = b"ID card: Zhang San, Licheng District"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _expect(code: str, status: int, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kwargs)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body
    return caught.value.body


def _open(p: Platform, document_id: str, claim: str = "wrong district", **extra: Any) -> dict[str, Any]:
    return dict(p.citizen.call("POST", "/v1/corrections", json={"document_id": document_id, "claim": claim, **extra}))


def _list(client: Any, **params: Any) -> dict[str, Any]:
    return dict(client.call("GET", "/v1/corrections", params=params))


def test_a_correction_from_opening_to_a_corrected_current_document(platform: Platform) -> None:
    p = platform
    ledger = p.deployed.ledger
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD, metadata={"issuer_ref": "PSB-1"})
    opened = _open(p, doc["document_id"], evidence=_b64(b"utility bill"))
    cid = opened["correction_id"]
    assert opened["status"] == "open" and opened["issuer"] == p.provider.address
    assert opened["due_at"] == due_at(opened["opened_at"], 2)
    assert (opened["overdue"], opened["late"]) == (False, False)
    assert opened["evidence"] == _b64(b"utility bill")
    # the opening is anchored as a commitment, no text
    record = ledger.record(bytes.fromhex(cid[2:]))
    assert "0x" + record.commitment.hex() == opened["open_commitment"] and opened["open_tx"]
    assert record.kind == keccak(b"qcl.correction.opened")

    # who sees it
    for viewer in (p.citizen, p.provider, p.auditor, p.admin):
        page = _list(viewer)
        assert [c["correction_id"] for c in page["items"]] == [cid] and page["total"] == 1
    assert _list(p.dept) == {"items": [], "offset": 0, "limit": 100, "total": 0}
    _expect("correction_not_found", 404, p.dept.call, "GET", f"/v1/corrections/{cid}")
    assert _list(p.citizen, status="corrected")["total"] == 0

    # who resolves it, and how
    corrected = {"outcome": "corrected", "reason": "district updated", "content": _b64(FIXED)}
    _expect("correction_not_found", 404, p.dept.call, "POST", f"/v1/corrections/{cid}/resolve", json=corrected)
    _expect("not_issuer", 403, p.citizen.call, "POST", f"/v1/corrections/{cid}/resolve", json=corrected)
    no_content = {"outcome": "corrected", "reason": "district updated"}
    _expect("invalid_input", 422, p.provider.call, "POST", f"/v1/corrections/{cid}/resolve", json=no_content)
    done = p.provider.call("POST", f"/v1/corrections/{cid}/resolve", json=corrected)
    assert done["status"] == "corrected" and done["reason"] == "district updated" and done["late"] is False
    new_id = done["new_document_id"]
    outcome = ledger.record(keccak(bytes.fromhex(cid[2:]) + b"/outcome"))
    assert "0x" + outcome.commitment.hex() == done["outcome_commitment"] and done["outcome_tx"]
    _expect("correction_closed", 409, p.provider.call, "POST", f"/v1/corrections/{cid}/resolve", json=corrected)

    # the new content is the current document; the old one is kept, superseded
    states = {d["document_id"]: d["state"] for d in p.citizen.documents()}
    assert states == {doc["document_id"]: "superseded", new_id: "current"}
    assert p.citizen.read_document(doc["document_id"]) == CARD
    assert p.citizen.read_document(new_id) == FIXED
    assert ledger.document(bytes.fromhex(new_id[2:])).issuer == p.provider.address
    grant = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    assert p.dept.release(grant, "id_card", p.dept_key).content == FIXED
    row = p.vault.current_document(p.citizen.address, "0x" + resource_id("id_card").hex())
    assert row.id == new_id

    # the superseded document cannot be disputed again; the new one can, once at a time
    _expect("document_not_current", 409, _open, p, doc["document_id"])
    second = _open(p, new_id, "still wrong")
    _expect("correction_open", 409, _open, p, new_id)
    rejection = {"outcome": "rejected", "reason": "matches the register", "content": _b64(FIXED)}
    path = f"/v1/corrections/{second['correction_id']}/resolve"
    _expect("invalid_input", 422, p.provider.call, "POST", path, json=rejection)
    del rejection["content"]
    rejected = p.provider.call("POST", path, json=rejection)
    assert (rejected["status"], rejected["new_document_id"]) == ("rejected", None)
    assert p.citizen.call("GET", path.removesuffix("/resolve"))["reason"] == "matches the register"
    assert [c["status"] for c in _list(p.citizen, limit=1, offset=1)["items"]] == ["corrected"]


def test_overdue_late_and_the_data_quality_report(platform: Platform) -> None:
    p = platform
    card = p.provider.store_document(p.citizen.address, "id_card", CARD)
    p.provider.store_document(p.citizen.address, "tax_record", b"tax 2025")
    p.citizen.store_document(p.citizen.address, "tax_record", b"my own copy")  # not issued by the provider
    cid = _open(p, card["document_id"])["correction_id"]
    with p.vault.store.session() as s:  # the clock has run out
        s.execute(update(CorrectionRow).where(CorrectionRow.id == cid).values(due_at=1))
    item = _list(p.provider, status="open")["items"][0]
    assert (item["overdue"], item["late"]) == (True, False)
    done = p.provider.call(
        "POST", f"/v1/corrections/{cid}/resolve", json={"outcome": "corrected", "reason": "r", "content": _b64(FIXED)}
    )
    assert (done["overdue"], done["late"]) == (False, True)

    report = p.provider.call("GET", "/v1/reports/data-quality")
    assert report["provider"] == p.provider.address
    assert (report["documents_issued"], report["corrections_opened"], report["corrected"]) == (2, 1, 1)
    assert (report["rejected"], report["open"], report["resolved_on_time"]) == (0, 0, 0)
    assert report["on_time_rate"] == 0.0 and report["quality_rate"] == 0.5 and report["meets_target"] is False
    seen = p.auditor.call("GET", "/v1/reports/data-quality", params={"provider": p.provider.address})
    assert {k: v for k, v in seen.items() if k != "to"} == {k: v for k, v in report.items() if k != "to"}
    empty = p.admin.call("GET", "/v1/reports/data-quality", params={"provider": p.provider.address, "to": 1})
    assert (empty["documents_issued"], empty["quality_rate"], empty["on_time_rate"]) == (0, None, None)
    _expect(
        "role_required", 403, p.dept.call, "GET", "/v1/reports/data-quality", params={"provider": p.provider.address}
    )
    _expect("invalid_input", 422, p.admin.call, "GET", "/v1/reports/data-quality")
    bad = {"provider": p.provider.address, "from": 10, "to": 5}
    _expect("invalid_input", 422, p.admin.call, "GET", "/v1/reports/data-quality", params=bad)


def test_corrections_refused(platform: Platform) -> None:
    p = platform
    own = p.citizen.store_document(p.citizen.address, "tax_record", b"my own copy")
    _expect("self_issued", 422, _open, p, own["document_id"])
    issued = p.provider.store_document(p.citizen.address, "id_card", CARD)
    body = {"document_id": issued["document_id"], "claim": "wrong"}
    _expect("role_required", 403, p.dept.call, "POST", "/v1/corrections", json=body)
    other = p.stranger()
    p.admin.onboard(other.address, ["SUBJECT"], "Citizen Li")
    other.login()
    _expect("document_not_found", 404, other.call, "POST", "/v1/corrections", json=body)
    _expect("invalid_input", 422, _open, p, "0x1234")
    _expect("invalid_input", 422, _open, p, issued["document_id"], evidence="not base64!")
    _expect("invalid_input", 422, _open, p, issued["document_id"], claim="")
    _expect("correction_not_found", 404, p.citizen.call, "GET", "/v1/corrections/0x" + "00" * 32)
    p.citizen.delete_document(issued["document_id"])
    _expect("document_deleted", 410, _open, p, issued["document_id"])
    assert _list(p.admin)["total"] == 0


def test_a_chain_outage_keeps_the_correction_with_no_anchor(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = platform
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD)

    def down(*_args: Any) -> None:
        raise ChainUnavailable("the node does not answer")

    monkeypatch.setattr(p.deployed.ledger, "anchor_record", down)
    opened = _open(p, doc["document_id"])
    assert opened["status"] == "open" and opened["open_tx"] is None and opened["open_commitment"].startswith("0x")
    path = f"/v1/corrections/{opened['correction_id']}"
    done = p.provider.call("POST", f"{path}/resolve", json={"outcome": "rejected", "reason": "matches"})
    assert (done["status"], done["outcome_tx"]) == ("rejected", None) and done["outcome_commitment"]
    assert p.citizen.call("GET", path)["status"] == "rejected"


def test_a_year_the_calendar_does_not_know_is_a_clear_503(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    p = platform
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD)

    def unknown(*_args: Any) -> int:
        raise CalendarUnknown("the working-day calendar has no data for 2027")

    monkeypatch.setattr(corrections, "due_at", unknown)
    body = _expect("calendar_unknown", 503, _open, p, doc["document_id"])
    assert "2027" in body["detail"]
    assert _list(p.admin)["total"] == 0  # nothing was opened with a guessed deadline


def test_a_failed_correction_leaves_the_correction_open(platform: Platform) -> None:
    p = platform
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD)
    cid = _open(p, doc["document_id"])["correction_id"]
    p.citizen.delete_document(doc["document_id"])  # the subject shreds the disputed document meanwhile
    path = f"/v1/corrections/{cid}/resolve"
    corrected = {"outcome": "corrected", "reason": "r", "content": _b64(FIXED)}
    _expect("document_deleted", 410, p.provider.call, "POST", path, json=corrected)
    still = p.citizen.call("GET", f"/v1/corrections/{cid}")
    assert (still["status"], still["resolved_at"], still["reason"]) == ("open", None, None)
    assert [d["state"] for d in p.citizen.documents()] == ["deleted"]  # nothing new was stored
    assert p.provider.call("POST", path, json={"outcome": "rejected", "reason": "deleted"})["status"] == "rejected"
