"""Data demands (SPEC §9.5): the 5- and 10-working-day clocks, confirm, refuse, publish, the ledger as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import update

from api.workdays import due_at
from db.models import DemandRow
from qcl_client import ApiError
from tests.api.conftest import Platform


def _expect(code: str, status: int, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kwargs)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body


def _demand(p: Platform, title: str = "Water meter readings") -> dict[str, Any]:
    body = {"provider": p.provider.address, "title": title, "description": "monthly, per household"}
    return dict(p.dept.call("POST", "/v1/demands", json=body))


def test_a_demand_confirmed_then_published(platform: Platform) -> None:
    p = platform
    d = _demand(p)
    did = d["demand_id"]
    assert d["status"] == "open" and (d["overdue"], d["late"]) == (False, False)
    assert d["confirm_by"] == due_at(d["created_at"], 5) and d["publish_by"] == due_at(d["created_at"], 10)
    _expect("demand_not_found", 404, p.other_dept.call, "POST", f"/v1/demands/{did}/confirm")
    _expect("not_provider", 403, p.dept.call, "POST", f"/v1/demands/{did}/confirm")
    confirmed = p.provider.call("POST", f"/v1/demands/{did}/confirm")
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_at"] >= d["created_at"]
    _expect("demand_closed", 409, p.provider.call, "POST", f"/v1/demands/{did}/confirm")
    _expect("resource_not_found", 404, p.provider.call, "POST", f"/v1/demands/{did}/publish", json={"code": "nope"})
    other = p.stranger()
    p.admin.onboard(other.address, ["PROVIDER"], "Water company")
    p.admin.register_resource("water_meter", "Water meter readings", other.address, 1)
    _expect(
        "not_your_resource", 422, p.provider.call, "POST", f"/v1/demands/{did}/publish", json={"code": "water_meter"}
    )
    published = p.provider.call("POST", f"/v1/demands/{did}/publish", json={"code": "tax_record"})
    assert (published["status"], published["published_code"], published["late"]) == ("published", "tax_record", False)
    _expect("demand_closed", 409, p.provider.call, "POST", f"/v1/demands/{did}/refuse", json={"reason": "x"})
    assert p.dept.call("GET", f"/v1/demands/{did}")["status"] == "published"


def test_refusal_overdue_and_the_ledger(platform: Platform) -> None:
    p = platform
    first, second = _demand(p, "A"), _demand(p, "B")
    _expect("invalid_input", 422, p.provider.call, "POST", f"/v1/demands/{first['demand_id']}/refuse", json={})
    refused = p.provider.call("POST", f"/v1/demands/{first['demand_id']}/refuse", json={"reason": "not collected"})
    assert (refused["status"], refused["reason"]) == ("refused", "not collected")
    assert p.dept.call("GET", f"/v1/demands/{first['demand_id']}")["reason"] == "not collected"
    with p.vault.store.session() as s:  # the confirmation clock has run out
        s.execute(update(DemandRow).where(DemandRow.id == second["demand_id"]).values(confirm_by=1))
    late = p.dept.call("GET", f"/v1/demands/{second['demand_id']}")
    assert (late["overdue"], late["late"]) == (True, False)
    confirmed = p.provider.call("POST", f"/v1/demands/{second['demand_id']}/confirm")
    assert (confirmed["overdue"], confirmed["late"]) == (False, True)  # publication is not yet due

    for viewer in (p.dept, p.provider, p.admin, p.auditor):
        page = viewer.call("GET", "/v1/demands")
        assert page["total"] == 2 and {i["title"] for i in page["items"]} == {"A", "B"}
    assert p.other_dept.call("GET", "/v1/demands")["total"] == 0
    assert [i["title"] for i in p.dept.call("GET", "/v1/demands", params={"status": "refused"})["items"]] == ["A"]
    response = p.http.get("/v1/demands", params={"format": "csv"}, headers={"Authorization": f"Bearer {p.dept.token}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert {r["title"]: r["status"] for r in rows} == {"A": "refused", "B": "confirmed"}
    assert all(r["created_at"].endswith("+08:00") for r in rows)  # times for people: Asia/Shanghai


def test_demands_refused(platform: Platform) -> None:
    p = platform
    body = {"provider": p.provider.address, "title": "t", "description": "d"}
    _expect("role_required", 403, p.citizen.call, "POST", "/v1/demands", json=body)
    _expect("provider_not_found", 404, p.dept.call, "POST", "/v1/demands", json=body | {"provider": p.dept.address})
    _expect("invalid_input", 422, p.dept.call, "POST", "/v1/demands", json=body | {"title": ""})
    _expect("demand_not_found", 404, p.provider.call, "GET", "/v1/demands/0x" + "00" * 32)
