"""Events (SPEC §9.1): each type to the right members, gap-free sequences (64 concurrent emitters
on PostgreSQL), the deadline clocks at their boundary second, a reorg's corrective events."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from eth_account import Account
from sqlalchemy import select, update

from chain_client import CompilationResult
from db import events as member_events
from db.models import CorrectionRow, DemandRow, EventClock, EventRow
from db.store import Store
from qcl_client import ApiError, QclClient
from tests.api._deadlines import events_of, open_deadlines, rpc, sync
from tests.api.conftest import Platform
from tests.conftest import Deployed

pytestmark = pytest.mark.both_databases  # the platform's tests on SQLite, then PostgreSQL


def types_of(client: QclClient) -> Counter[str]:
    return Counter(e["type"] for e in events_of(client))


def _gap_free(client: QclClient) -> None:
    sequences = [e["sequence"] for e in events_of(client)]
    assert sequences == list(range(1, len(sequences) + 1))


def _fire(p: Platform, now: int) -> int:
    return member_events.fire_due(p.vault.store, now)


def test_every_event_type_reaches_its_members(platform: Platform) -> None:
    p = platform
    sync(p)  # the index knows the ADMIN and AUDITOR of the deployment
    # grants: recorded, paused, resumed, a release (the last use: exhausted), revoked
    p.provider.store_document(p.citizen.address, "tax_record", b"tax 2025")
    grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application", max_uses=1)
    gid = grant["grant_id"]
    p.citizen.pause(gid)
    p.citizen.resume(gid)
    p.dept.release(gid, "tax_record", p.dept_key)
    p.citizen.revoke(gid)
    p.citizen.grant(p.other_dept.address, ["tax_record"], "loan-application", valid_for=300)
    sync(p)
    # access requests: rejected, withdrawn, granted, expired
    body = {"subject": p.citizen.address, "resources": ["tax_record"], "purpose": "loan-application", "valid_for": 600}
    asked = [p.dept.call("POST", "/v1/access-requests", json=body) for _ in range(3)]
    lapsing = p.dept.call("POST", "/v1/access-requests", json=body | {"expires_in": 60})
    p.citizen.call("POST", f"/v1/access-requests/{asked[0]['id']}/answer", json={"decision": "reject", "reason": "no"})
    p.dept.call("POST", f"/v1/access-requests/{asked[1]['id']}/withdraw")
    p.citizen.answer_access_request(asked[2], grant=True)
    # a correction: opened, overdue, resolved
    card = p.provider.store_document(p.citizen.address, "id_card", b"card")
    cid = p.citizen.call("POST", "/v1/corrections", json={"document_id": card["document_id"], "claim": "typo"})[
        "correction_id"
    ]
    with p.vault.store.session() as s:
        s.execute(update(CorrectionRow).where(CorrectionRow.id == cid).values(due_at=int(time.time()) - 1))
    assert _fire(p, int(time.time())) == 1
    p.provider.call("POST", f"/v1/corrections/{cid}/resolve", json={"outcome": "rejected", "reason": "correct as is"})
    # demands: created, confirmed, published; created, refused; overdue once per step
    demand = {"provider": p.provider.address, "title": "Meters", "description": "monthly"}
    d1 = p.dept.call("POST", "/v1/demands", json=demand)["demand_id"]
    d2 = p.dept.call("POST", "/v1/demands", json=demand)["demand_id"]
    with p.vault.store.session() as s:
        s.execute(update(DemandRow).where(DemandRow.id == d1).values(confirm_by=1))
    assert _fire(p, int(time.time())) == 1
    assert _fire(p, int(time.time())) == 0  # once
    p.provider.call("POST", f"/v1/demands/{d1}/confirm")
    p.provider.call("POST", f"/v1/demands/{d1}/publish", json={"code": "tax_record"})
    p.provider.call("POST", f"/v1/demands/{d2}/refuse", json={"reason": "not collected"})
    # an emergency: activated (indexed), expired (clock)
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response", hours=2)
    p.admin.propose_emergency(message, "Flood response")
    p.auditor.approve_emergency(message)
    sync(p)
    # the clocks: the request's expiry and the short grant's, then the emergency's
    assert _fire(p, lapsing["expires_at"] - 1) == 0
    with p.vault.store.session() as s:
        due = {c.type: c.due_at for c in s.scalars(select(EventClock))}
    assert _fire(p, max(lapsing["expires_at"], due["grant.expired"])) >= 2
    assert _fire(p, due["emergency.expired"]) == 1
    assert _fire(p, due["emergency.expired"] + 10) == 0

    grant_life = {"grant.recorded": 1, "grant.paused": 1, "grant.resumed": 1, "grant.exhausted": 1, "grant.revoked": 1}
    requests = {f"access_request.{k}": 1 for k in ("rejected", "withdrawn", "granted", "expired")}
    requests["access_request.created"] = 4
    correction = {"correction.opened": 1, "correction.overdue": 1, "correction.resolved": 1}
    demands = {"demand.created": 2, "demand.overdue": 1, "demand.confirmed": 1, "demand.published": 1}
    demands["demand.refused"] = 1
    emergency = {"emergency.activated": 1, "emergency.expired": 1}
    citizen = Counter(grant_life) + Counter(requests) + Counter(correction)
    # the short grant and the answer's grant (600 s) were recorded, and both expired by the emergency's end
    citizen.update({"release.recorded": 1, "grant.recorded": 2, "grant.expired": 2})
    dept = Counter(grant_life) + Counter(requests) + Counter(demands) + Counter(emergency)
    dept.update({"grant.recorded": 1, "grant.expired": 1})  # the answer's grant
    assert types_of(p.citizen) == citizen
    assert types_of(p.dept) == dept
    assert types_of(p.other_dept) == Counter({"grant.recorded": 1, "grant.expired": 1})
    assert types_of(p.provider) == Counter(correction) + Counter(demands)
    assert types_of(p.admin) == Counter(correction) + Counter(demands) + Counter(emergency)
    assert types_of(p.auditor) == Counter(emergency)
    for client in (p.citizen, p.dept, p.provider, p.admin, p.auditor):
        _gap_free(client)

    # the shape, and what a receipt says
    release = next(e for e in events_of(p.citizen) if e["type"] == "release.recorded")
    assert set(release) == {"id", "type", "sequence", "occurred_at", "block_number", "data"}
    assert release["block_number"] and release["data"]["grantee"] == p.dept.address
    assert release["data"]["resource_code"] == "tax_record" and release["data"]["kind"] == "grant"
    rejected = next(e for e in events_of(p.dept) if e["type"] == "access_request.rejected")
    assert rejected["block_number"] is None and rejected["data"]["reason"] == "no"
    # paging: after is the cursor, offset pages within what follows it
    page = p.citizen.call("GET", "/v1/events", params={"after": 3, "offset": 2, "limit": 2})
    assert [e["sequence"] for e in page["items"]] == [6, 7] and page["total"] == sum(citizen.values()) - 3
    with pytest.raises(ApiError) as caught:
        p.citizen.call("GET", "/v1/events", params={"after": -1})
    assert caught.value.status == 422


def test_a_revocation_mined_outside_the_api_still_notifies(
    platform: Platform, deployed: Deployed, compiled: CompilationResult
) -> None:
    """The chain is the source: a revocation sent straight to the contract reaches the grantee."""
    from chain_client import eip712
    from chain_client.ids import NonceAllocator

    p = platform
    grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application")
    gid = grant["grant_id"]
    message = {"grantId": bytes.fromhex(gid[2:]), "nonce": NonceAllocator().next(), "deadline": int(time.time()) + 600}
    signature = eip712.sign(p.citizen.domain(), "Revoke", message, p.citizen.account.key)
    outsider = Account.create()
    deployed.ledger_as(outsider, compiled).revoke(message["grantId"], message["nonce"], message["deadline"], signature)
    sync(p)
    revoked = [e for e in events_of(p.dept) if e["type"] == "grant.revoked"]
    assert len(revoked) == 1 and revoked[0]["data"]["grant_id"] == gid and revoked[0]["block_number"]


def test_expiry_at_the_boundary_second(alone: Platform) -> None:
    """At validUntil - 1 the grant is active and no event fires; at validUntil it reads expired
    (200, never a 500) and grant.expired fires once; likewise the emergency, the request, the
    correction and the demand at their own second."""
    p = alone
    d = open_deadlines(p, grant_for=3600, emergency_hours=2, request_expires_in=4 * 3600)
    gid, until, e_until, asked = d.grant_id, d.grant_until, d.emergency_until, d.request
    for second, expected in ((until - 1, "active"), (until, "expired")):
        rpc(p, "evm_setNextBlockTimestamp", second)
        rpc(p, "evm_mine")
        assert p.citizen.grant_detail(gid)["status"] == expected
        listed = p.dept.call("GET", "/v1/grants", params={"status": expected})
        listed = listed["items"] if isinstance(listed, dict) else listed  # a list, or a page once paged
        assert [g["grant_id"] for g in listed] == [gid]
        fired = _fire(p, second)
        assert fired == (0 if expected == "active" else 1)
    assert [e["type"] for e in events_of(p.dept)].count("grant.expired") == 1
    assert _fire(p, until + 5) == 0

    for second, active in ((e_until - 1, True), (e_until, False)):
        rpc(p, "evm_setNextBlockTimestamp", second)
        rpc(p, "evm_mine")
        listed = {e["emergency_id"]: e for e in p.admin.emergencies()}
        assert listed[d.emergency_id]["active"] is active
        assert p.dept.call("GET", f"/v1/emergencies/{d.emergency_id}")["emergency_id"]
        fired = _fire(p, second)
        assert fired == (0 if active else 1)
    assert types_of(p.auditor)["emergency.expired"] == 1

    request_path = f"/v1/access-requests/{asked['id']}"
    assert _fire(p, asked["expires_at"] - 1) == 0
    assert p.dept.call("GET", request_path)["status"] == "pending"
    assert _fire(p, asked["expires_at"]) == 1
    assert p.dept.call("GET", request_path)["status"] == "expired"
    assert p.citizen.call("GET", "/v1/access-requests", params={"status": "expired"})["total"] == 1
    with pytest.raises(ApiError) as caught:
        p.citizen.call("POST", f"{request_path}/answer", json={"decision": "reject"})
    assert (caught.value.status, caught.value.code) == (409, "request_closed")

    card = p.provider.store_document(p.citizen.address, "id_card", b"card")
    correction = p.citizen.call("POST", "/v1/corrections", json={"document_id": card["document_id"], "claim": "x"})
    assert _fire(p, correction["due_at"] - 1) == 0
    assert _fire(p, correction["due_at"]) == 1
    demand = p.dept.call("POST", "/v1/demands", json={"provider": p.provider.address, "title": "t", "description": "d"})
    assert _fire(p, demand["confirm_by"] - 1) == 0
    assert _fire(p, demand["confirm_by"]) == 1
    assert _fire(p, demand["publish_by"]) == 1
    assert _fire(p, demand["publish_by"]) == 0
    overdue = [e["data"]["overdue_step"] for e in events_of(p.provider) if e["type"] == "demand.overdue"]
    assert overdue == ["confirm", "publish"]
    _gap_free(p.dept)
    _gap_free(p.citizen)


def test_a_reorg_retracts_with_a_corrective_event(alone: Platform) -> None:
    p = alone
    grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application", valid_for=3600)
    sync(p)
    recorded = [e for e in events_of(p.dept) if e["type"] == "grant.recorded"]
    assert [e["data"]["grant_id"] for e in recorded] == [grant["grant_id"]]
    rpc(p, "anvil_rollback", 1)  # the block of the grant leaves the chain
    for _ in range(3):
        rpc(p, "evm_mine")
    sync(p)
    for client in (p.citizen, p.dept):
        events = events_of(client)
        retraction = events[-1]
        assert retraction["type"] == "grant.recorded.retracted"
        assert retraction["data"]["retracts"] == next(e["id"] for e in events if e["type"] == "grant.recorded")
        assert retraction["block_number"] is None
        _gap_free(client)
    with p.vault.store.session() as s:  # its expiry clock went with it
        assert s.scalar(select(EventClock).where(EventClock.key == f"grant.expired:{grant['grant_id']}")) is None


def test_sequences_are_gap_free_under_64_concurrent_emitters(pg_database: str) -> None:
    """64 threads emit to one shared member and one member of their own, at once, on PostgreSQL."""
    store = Store(pg_database)
    shared = Account.create().address
    own = [Account.create().address for _ in range(64)]
    start = threading.Barrier(64)
    errors: list[BaseException] = []

    def emitter(index: int) -> None:
        try:
            start.wait()
            for n in range(5):
                with store.session() as s:
                    member_events.emit(s, "demand.created", [own[index], shared], {"n": n, "by": index})
        except Exception as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=emitter, args=(i,)) for i in range(64)]
    try:
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert not errors, errors[:3]
        with store.session() as s:
            sequences = list(s.scalars(select(EventRow.sequence).where(EventRow.member == shared)).all())
            per_emitter = Counter(
                json.loads(d)["by"] for d in s.scalars(select(EventRow.data).where(EventRow.member == shared))
            )
            own_sequences = {
                a: sorted(s.scalars(select(EventRow.sequence).where(EventRow.member == a)).all()) for a in own
            }
        assert sorted(sequences) == list(range(1, 64 * 5 + 1))  # no gap, no duplicate
        assert set(per_emitter.values()) == {5}
        assert all(seqs == [1, 2, 3, 4, 5] for seqs in own_sequences.values())
        print(f"\n320 emits by 64 concurrent emitters on PostgreSQL: {elapsed:.2f} s, sequences 1..320 gap-free")
    finally:
        store.dispose()
