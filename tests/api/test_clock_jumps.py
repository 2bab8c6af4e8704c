"""The node's clock jumps (``evm_increaseTime``, ``evm_setNextBlockTimestamp``): grants and
emergencies are judged by the chain's block time, as the contract judges them (SPEC §3:
``validFrom <= block.timestamp < validUntil``), never by the API's wall clock.

* a release in the block of second ``validUntil - 1`` is recorded; in the block of ``validUntil``,
  or after a jump past it, it is refused ``grant_expired``;
* a grant whose ``validFrom`` is an hour away on the wall clock is released as soon as the chain's
  time has jumped into it;
* the status reads (``GET /v1/grants/{id}``, ``?status=``, ``GET /v1/emergencies``) are the state at
  the head: a jump moves them with the first block mined after it, and only then; the access
  log's ``released_at`` is the time of the release's block;
* the expiry events ``grant.expired`` and ``emergency.expired`` fire when the indexed chain's time
  reaches the end (with the status), whatever the wall clock; the service clocks (an access
  request's ``expires_at``, SPEC §9.2) stay on the wall clock.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from api.notifications import EventClocks
from chain_client.ids import resource_id
from qcl_client import ApiError
from tests.api._deadlines import events_of, open_deadlines, rpc, sync
from tests.api.conftest import Platform


def _head_time(p: Platform) -> int:
    return int(p.deployed.node.w3.eth.get_block("latest")["timestamp"])


def _block_time(p: Platform, tx_hash: str) -> int:
    w3 = p.deployed.node.w3
    return int(w3.eth.get_block(w3.eth.get_transaction_receipt(tx_hash)["blockNumber"])["timestamp"])


def _release(p: Platform, grant_id: str, resource: str) -> dict[str, Any]:
    """The department's release, its request's deadline a month after the chain's time (the
    wall clock's would have passed on a chain that jumped ahead)."""
    message = {
        "grantId": bytes.fromhex(grant_id[2:]),
        "resource": resource_id(resource),
        "requestId": p.dept._request_ids.next(),
        "deadline": max(_head_time(p), int(time.time())) + 30 * 86400,
    }
    return dict(p.dept.call("POST", "/v1/releases", json=p.dept._signed("ReleaseRequest", message)))


def _refused(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code


def _status(p: Platform, grant_id: str) -> str:
    return str(p.citizen.grant_detail(grant_id)["status"])


def _listed(p: Platform, status: str) -> set[str]:
    return {g["grant_id"] for g in p.dept.call("GET", "/v1/grants", params={"status": status})["items"]}


def test_a_release_at_the_last_second_then_at_the_end_then_after_a_jump(alone: Platform) -> None:
    p = alone
    p.provider.store_document(p.citizen.address, "tax_record", b"tax 2025")
    start = int(time.time()) - 60
    gid = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application", valid_from=start, valid_for=3600)[
        "grant_id"
    ]
    until = start + 3600

    rpc(p, "evm_setNextBlockTimestamp", until - 1)
    released = _release(p, gid, "tax_record")
    assert _block_time(p, released["tx_hash"]) == until - 1
    assert _status(p, gid) == "active"
    assert gid in _listed(p, "active")

    rpc(p, "evm_setNextBlockTimestamp", until)
    assert _refused(lambda: _release(p, gid, "tax_record")) == (403, "grant_expired")
    assert _head_time(p) == until  # the refusal was the contract's, in the block of that second
    assert _status(p, gid) == "expired"
    assert gid in _listed(p, "expired") and gid not in _listed(p, "active")

    rpc(p, "evm_increaseTime", 7 * 86400)
    assert _refused(lambda: _release(p, gid, "tax_record")) == (403, "grant_expired")
    assert _head_time(p) >= until + 7 * 86400
    assert _status(p, gid) == "expired"
    # one release recorded, in the log as on chain
    log = p.citizen.call("GET", f"/v1/subjects/{p.citizen.address}/access-log")["items"]
    # ... at the block's time, when the contract judged it, not the relayer's wall clock
    assert [(e["release_id"], e["released_at"]) for e in log] == [(released["release_id"], until - 1)]


def test_statuses_follow_the_chain_time_not_the_wall_clock(alone: Platform) -> None:
    p = alone
    p.provider.store_document(p.citizen.address, "tax_record", b"tax 2025")
    now = int(time.time())
    ending = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application", valid_from=now - 60, valid_for=1800)
    later = p.citizen.grant(p.dept.address, ["tax_record"], "benefit-review", valid_from=now + 3600, valid_for=3600)
    ending_id, later_id = ending["grant_id"], later["grant_id"]
    assert (_status(p, ending_id), _status(p, later_id)) == ("active", "not_yet_valid")
    assert _refused(lambda: _release(p, later_id, "tax_record")) == (403, "grant_not_yet_valid")

    # the node's clock jumps an hour: no block yet, so the head still says what it said
    rpc(p, "evm_increaseTime", 3600)
    assert (_status(p, ending_id), _status(p, later_id)) == ("active", "not_yet_valid")
    # the first block after the jump moves every status with it, while the wall clock has moved
    # neither past the first grant's end nor into the second one's window
    rpc(p, "evm_mine")
    assert _head_time(p) >= now + 3600 > int(time.time())
    assert (_status(p, ending_id), _status(p, later_id)) == ("expired", "active")
    assert _listed(p, "expired") == {ending_id} and _listed(p, "active") == {later_id}
    released = _release(p, later_id, "tax_record")
    assert _block_time(p, released["tx_hash"]) >= now + 3600
    log = p.citizen.call("GET", f"/v1/subjects/{p.citizen.address}/access-log")["items"]
    assert [e["released_at"] for e in log] == [_block_time(p, released["tx_hash"])]  # inside the window
    assert _refused(lambda: _release(p, ending_id, "tax_record")) == (403, "grant_expired")


def _emergency_release(p: Platform, emergency_id: str, resource: str) -> dict[str, Any]:
    message = {
        "emergencyId": bytes.fromhex(emergency_id[2:]),
        "subject": p.citizen.address,
        "resource": resource_id(resource),
        "requestId": p.dept._request_ids.next(),
        "deadline": max(_head_time(p), int(time.time())) + 30 * 86400,
    }
    return dict(
        p.dept.call(
            "POST",
            f"/v1/emergencies/{emergency_id}/releases",
            json=p.dept._signed("EmergencyReleaseRequest", message),
        )
    )


def _active(p: Platform, emergency_id: str) -> bool:
    return bool({e["emergency_id"]: e for e in p.admin.emergencies()}[emergency_id]["active"])


def test_an_emergency_window_at_its_last_second_and_its_end(alone: Platform) -> None:
    p = alone
    p.provider.store_document(p.citizen.address, "id_card", b"card")
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response", hours=1)
    eid = p.admin.propose_emergency(message, "Flood response")["emergency_id"]
    p.auditor.approve_emergency(message)
    until = message["validUntil"]
    sync(p)
    assert _active(p, eid)

    rpc(p, "evm_setNextBlockTimestamp", until - 1)
    released = _emergency_release(p, eid, "id_card")
    assert _block_time(p, released["tx_hash"]) == until - 1
    sync(p)
    assert _active(p, eid)

    rpc(p, "evm_setNextBlockTimestamp", until)
    assert _refused(lambda: _emergency_release(p, eid, "id_card")) == (403, "emergency_outside_window")
    if _head_time(p) < until:  # refused by the simulation before any transaction: mine that second
        rpc(p, "evm_mine")
    assert _head_time(p) == until
    sync(p)
    assert not _active(p, eid)
    rpc(p, "evm_increaseTime", 86400)
    assert _refused(lambda: _emergency_release(p, eid, "id_card")) == (403, "emergency_outside_window")


def test_expiry_events_fire_on_the_chain_time_after_a_jump(alone: Platform) -> None:
    p = alone
    d = open_deadlines(p, grant_for=1800, emergency_hours=0.5, request_expires_in=3600)
    gid, asked = d.grant_id, d.request
    clocks = EventClocks(p.vault.store)  # the worker's clocks, on the wall clock
    assert clocks.step() == 0

    rpc(p, "evm_increaseTime", 7200)
    rpc(p, "evm_mine")
    # not indexed yet: the events wait for the indexer, as the status waits for the head
    assert clocks.step() == 0
    sync(p)
    assert _status(p, gid) == "expired"
    assert int(time.time()) < d.grant_until + 60  # the wall clock is still inside both windows
    assert clocks.step() == 2  # grant.expired and emergency.expired
    assert clocks.step() == 0  # once
    expired = [e for e in events_of(p.dept) if e["type"] == "grant.expired"]
    assert [(e["data"]["grant_id"], e["occurred_at"]) for e in expired] == [(gid, d.grant_until)]
    assert [e["type"] for e in events_of(p.auditor)].count("emergency.expired") == 1
    # the access request's expiry is a service clock (SPEC §9.2): the wall clock's
    assert p.dept.call("GET", f"/v1/access-requests/{asked['id']}")["status"] == "pending"

    # the other way round: a wall clock past an end the chain has not reached fires nothing of the
    # ledger's, but does fire the service clocks
    chain_now = _head_time(p)
    short = p.citizen.grant(
        p.dept.address,
        ["tax_record"],
        "benefit-review",
        valid_from=chain_now - 60,
        valid_for=600,
        deadline_in=chain_now - int(time.time()) + 600,
    )
    sync(p)
    ahead = EventClocks(p.vault.store, clock=lambda: time.time() + 30 * 86400)
    assert ahead.step() == 1  # the access request only
    assert p.dept.call("GET", f"/v1/access-requests/{asked['id']}")["status"] == "expired"
    assert _status(p, short["grant_id"]) == "active"
    assert [e["type"] for e in events_of(p.dept)].count("grant.expired") == 1
