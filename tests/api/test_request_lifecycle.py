"""Access-request life cycle (SPEC §9.2) and purposes (SPEC §9.3)."""

from __future__ import annotations

from typing import Any

import pytest

from api.routers import access_requests
from chain_client.ids import purpose_id
from qcl_client import ApiError
from tests.api.conftest import Platform


def _expect(code: str, status: int, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kwargs)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body


def _ask(p: Platform, **extra: Any) -> dict[str, Any]:
    body = {"subject": p.citizen.address, "resources": ["id_card"], "purpose": "loan-application", "valid_for": 3600}
    return dict(p.dept.call("POST", "/v1/access-requests", json=body | extra))


def test_expiry_at_the_boundary_second(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    p = platform
    default = _ask(p)
    assert default["expires_at"] == default["created_at"] + 7 * 86400
    asked = _ask(p, expires_in=600)
    rid, expires = asked["id"], asked["expires_at"]
    assert expires == asked["created_at"] + 600
    path = f"/v1/access-requests/{rid}"

    monkeypatch.setattr(access_requests, "now", lambda: expires - 1)
    assert p.citizen.call("GET", path)["status"] == "pending"
    assert rid in {r["id"] for r in p.citizen.call("GET", "/v1/access-requests", params={"status": "pending"})["items"]}

    monkeypatch.setattr(access_requests, "now", lambda: expires)
    for viewer in (p.citizen, p.dept, p.auditor):
        assert viewer.call("GET", path)["status"] == "expired"
    expired = p.dept.call("GET", "/v1/access-requests", params={"status": "expired"})
    assert [r["id"] for r in expired["items"]] == [rid] and expired["total"] == 1
    pending = p.dept.call("GET", "/v1/access-requests", params={"status": "pending"})
    assert [r["id"] for r in pending["items"]] == [default["id"]]
    _expect("request_closed", 409, p.citizen.call, "POST", f"{path}/answer", json={"decision": "reject"})
    _expect("request_closed", 409, p.dept.call, "POST", f"{path}/withdraw")


def test_withdraw_reject_and_closed_requests(platform: Platform) -> None:
    p = platform
    first = _ask(p)
    path = f"/v1/access-requests/{first['id']}"
    _expect("not_consumer", 403, p.citizen.call, "POST", f"{path}/withdraw")
    _expect("access_request_not_found", 404, p.other_dept.call, "POST", f"{path}/withdraw")
    withdrawn = p.dept.call("POST", f"{path}/withdraw")
    assert withdrawn["status"] == "withdrawn" and withdrawn["answered_at"]
    _expect("request_closed", 409, p.dept.call, "POST", f"{path}/withdraw")
    _expect("request_closed", 409, p.citizen.call, "POST", f"{path}/answer", json={"decision": "reject"})

    second = _ask(p)
    rejected = p.citizen.call(
        "POST", f"/v1/access-requests/{second['id']}/answer", json={"decision": "reject", "reason": "not needed"}
    )
    assert p.dept.call("GET", f"/v1/access-requests/{second['id']}")["reason"] == "not needed"
    assert rejected["status"] == "rejected"
    _expect("request_closed", 409, p.dept.call, "POST", f"/v1/access-requests/{second['id']}/withdraw")
    page = p.dept.call("GET", "/v1/access-requests", params={"status": "withdrawn"})
    assert [r["id"] for r in page["items"]] == [first["id"]] and page["total"] == 1
    _expect("invalid_input", 422, _ask, p, expires_in=30 * 86400 + 1)
    _expect("invalid_input", 422, _ask, p, expires_in=59)


def test_purposes(platform: Platform) -> None:
    p = platform
    body = {
        "code": "housing-provident-fund-withdrawal",
        "name_zh": "住房公积金提取",
        "name_en": "Housing provident fund withdrawal",
        "legal_basis": "Regulations on the Administration of Housing Provident Fund, art. 24",
    }
    created = p.admin.call("POST", "/v1/purposes", json=body)
    assert created["purpose"] == "0x" + purpose_id(body["code"]).hex()
    assert created["name_zh"] == "住房公积金提取"
    _expect("purpose_exists", 409, p.admin.call, "POST", "/v1/purposes", json=body)
    _expect("role_required", 403, p.dept.call, "POST", "/v1/purposes", json=body | {"code": "other"})
    _expect("invalid_input", 422, p.admin.call, "POST", "/v1/purposes", json=body | {"code": "Bad Code"})
    p.admin.call("POST", "/v1/purposes", json=body | {"code": "credit-check", "name_zh": "信用核查"})
    for viewer in (p.citizen, p.dept, p.auditor):
        page = viewer.call("GET", "/v1/purposes")
        assert [i["code"] for i in page["items"]] == ["credit-check", "housing-provident-fund-withdrawal"]
        assert page["total"] == 2
    assert [i["code"] for i in p.citizen.call("GET", "/v1/purposes", params={"offset": 1})["items"]] == [body["code"]]


def test_access_requests_carry_the_purpose_names(platform: Platform) -> None:
    p = platform
    asked = _ask(p)
    assert asked["purpose_id"] == "0x" + purpose_id("loan-application").hex()
    assert (asked["purpose_name_zh"], asked["purpose_name_en"]) == (None, None)  # not registered yet
    body = {"code": "loan-application", "name_zh": "贷款申请", "name_en": "Loan application", "legal_basis": "contract"}
    p.admin.call("POST", "/v1/purposes", json=body)
    read = p.citizen.call("GET", f"/v1/access-requests/{asked['id']}")
    assert (read["purpose_name_zh"], read["purpose_name_en"]) == ("贷款申请", "Loan application")
    listed = p.dept.call("GET", "/v1/access-requests")["items"]
    assert [(r["id"], r["purpose_name_en"]) for r in listed] == [(asked["id"], "Loan application")]
    withdrawn = p.dept.call("POST", f"/v1/access-requests/{asked['id']}/withdraw")
    assert withdrawn["purpose_name_zh"] == "贷款申请"
