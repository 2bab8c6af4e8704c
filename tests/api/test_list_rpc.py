"""Lists read the ledger's state from the index: a 500-grant list costs at most 3 RPC calls, its
statuses and uses are the contract's own (every row compared with ``grantStatus``), and it pages
and filters in SQL. The same for emergencies (``emergencyState``/``emergencyActive``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from api.schemas.grants import SignedGrant
from api.services.grants import keep_terms
from chain_client.ids import purpose_id, resource_id
from chain_client.indexer import Indexer
from chain_client.types import GrantTerms
from db.index_store import SqlIndexStore
from tests.api.conftest import Platform

N = 500


@contextmanager
def counted(platform: Platform) -> Iterator[Counter[str]]:
    """Count the JSON-RPC calls (by method) sent to the chain through the ledger's provider."""
    provider = platform.deployed.ledger.w3.provider
    calls: Counter[str] = Counter()
    single, batch = provider.make_request, getattr(provider, "make_batch_request", None)

    def make_request(method: Any, params: Any) -> Any:
        calls[str(method)] += 1
        return single(method, params)

    def make_batch_request(requests: Any) -> Any:
        for method, _params in requests:
            calls[str(method)] += 1
        assert batch is not None
        return batch(requests)

    provider.make_request = make_request  # type: ignore[method-assign]
    if batch is not None:
        provider.make_batch_request = make_batch_request  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del provider.make_request
        if batch is not None:
            del provider.make_batch_request


def _record_grants(p: Platform, n: int) -> dict[str, GrantTerms]:
    """``n`` grants of the citizen to the department, recorded 100 to a ``multicall`` and kept as
    ``POST /v1/grants`` keeps them; max uses 1 or 0 (unlimited) by turns."""
    ledger, now = p.deployed.ledger, int(time.time())
    bodies = []
    for i in range(n):
        message = {
            "subject": p.citizen.address,
            "grantee": p.dept.address,
            "resources": [resource_id("tax_record")],
            "purpose": purpose_id(f"list-{i}"),
            "validFrom": now - 60,
            "validUntil": now + 86400,
            "maxUses": i % 2,
            "nonce": 10**9 + i,
            "deadline": now + 3600,
        }
        bodies.append(SignedGrant.model_validate(p.citizen.signed_grant(message)))
    ids: dict[str, GrantTerms] = {}
    for start in range(0, n, 100):
        chunk = bodies[start : start + 100]
        calls = [
            ledger.encode(
                ledger.consent.functions.recordGrant(b.message.terms().as_tuple(), bytes.fromhex(b.signature[2:]))
            )
            for b in chunk
        ]
        result = ledger.multicall(calls, gas=25_000_000)
        assert not result.failed, result.failed
        for body in chunk:
            grant_id = "0x" + ledger.hash_grant(body.message.terms()).hex()
            keep_terms(
                p.vault.store,
                body.message,
                grant_id,
                result.receipt.tx_hash,
                result.receipt.block_number,
                relayed_by=p.admin.address,
            )
            ids[grant_id] = body.message.terms()
    return ids


def _list(p: Platform, **params: Any) -> dict[str, Any]:
    return dict(p.citizen.call("GET", "/v1/grants", params=params))


@pytest.mark.timeout(600)
def test_a_500_grant_list_costs_at_most_three_rpc_calls(platform: Platform) -> None:
    p = platform
    terms = _record_grants(p, N)
    ids = list(terms)
    # a few changes of state: releases (exhausting the single-use grants), pauses, a revocation
    p.provider.store_document(p.citizen.address, "tax_record", b"tax 2026")
    for grant_id in ids[1:7:2]:
        p.dept.release(grant_id, "tax_record", p.dept_key)
    p.citizen.pause(ids[10])
    p.citizen.pause(ids[12])
    p.citizen.resume(ids[12])
    p.citizen.revoke(ids[20])

    # 1. no index yet: the whole history is read in one eth_getLogs
    with counted(p) as cold:
        started = time.perf_counter()
        page = _list(p, limit=N)
        cold_seconds = time.perf_counter() - started
    assert len(page["items"]) == N and page["total"] == N
    assert sum(cold.values()) <= 3, cold

    # every row as the contract sees it
    ledger = p.deployed.ledger
    for item in page["items"]:
        gid = bytes.fromhex(item["grant_id"][2:])
        assert item["uses"] == ledger.grant_state(gid).uses, item
    with ThreadPoolExecutor(4) as pool:  # the contract's grantStatus of every row (the oracle)
        oracle = list(pool.map(lambda item: ledger.grant_status(terms[item["grant_id"]]).label, page["items"]))
    assert [item["status"] for item in page["items"]] == oracle
    statuses = Counter(item["status"] for item in page["items"])
    assert statuses == Counter({"active": N - 5, "exhausted": 3, "paused": 1, "revoked": 1}), statuses
    chain_status = {item["grant_id"]: item["status"] for item in page["items"]}
    for grant_id in (ids[1], ids[10], ids[12], ids[20], ids[30]):
        detail = p.citizen.grant_detail(grant_id)
        assert detail["status"] == chain_status[grant_id]
        assert detail["pause_sequence"] == ledger.pause_sequence(bytes.fromhex(grant_id[2:]))

    # 2. the worker's indexer caught up: one call (the head's header)
    indexer = Indexer(ledger=ledger, store=SqlIndexStore(p.vault.store))
    indexer.sync()
    with counted(p) as warm:
        started = time.perf_counter()
        again = _list(p, limit=N)
        warm_seconds = time.perf_counter() - started
    assert again["items"] == page["items"]
    assert sum(warm.values()) <= 3, warm
    warm_calls = sum(warm.values())

    # 3. a write after the index: the caller sees it (the tail is read from the chain)
    p.citizen.pause(ids[40])
    with counted(p) as behind:
        paused = _list(p, status="paused", limit=N)
    assert sum(behind.values()) <= 3, behind
    assert {g["grant_id"] for g in paused["items"]} == {ids[10], ids[40]} and paused["total"] == 2
    assert p.citizen.grant_detail(ids[40])["status"] == "paused"

    # 4. pages in SQL: the pages of 100 are the 500 in order; a status filter pages too
    pages = [_list(p, offset=offset, limit=100) for offset in range(0, N, 100)]
    assert [g["grant_id"] for pg in pages for g in pg["items"]] == [g["grant_id"] for g in again["items"]]
    assert all(pg["total"] == N and pg["limit"] == 100 for pg in pages)
    exhausted = [_list(p, status="exhausted", offset=o, limit=2) for o in (0, 2)]
    assert [len(pg["items"]) for pg in exhausted] == [2, 1] and exhausted[0]["total"] == 3

    # 5. many lists in flight at once give the same pages
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda o: _list(p, offset=o, limit=50), range(0, N, 50)))
    assert [g["grant_id"] for pg in concurrent for g in pg["items"]] == [g["grant_id"] for g in again["items"]]

    print(
        f"\nRPC calls of a {N}-grant list: no index {sum(cold.values())} {dict(cold)} ({cold_seconds:.2f} s); "
        f"index at head {warm_calls} {dict(warm)} ({warm_seconds:.2f} s); "
        f"index one block behind {sum(behind.values())} {dict(behind)}"
    )


def test_emergency_list_reads_the_index(platform: Platform) -> None:
    p = platform
    ledger = p.deployed.ledger
    messages = [p.admin.emergency_message(["id_card"], [p.dept.address], f"drill {i}", hours=2) for i in range(3)]
    proposed = [p.admin.propose_emergency(m, f"drill {i}") for i, m in enumerate(messages)]
    p.auditor.approve_emergency(messages[0])
    p.auditor.approve_emergency(messages[1])
    p.admin.cancel_emergency(proposed[1]["emergency_id"])
    Indexer(ledger=ledger, store=SqlIndexStore(p.vault.store)).sync()
    p.auditor.approve_emergency(messages[2])  # after the index: from the tail
    with counted(p) as calls:
        listed = p.admin.call("GET", "/v1/emergencies", params={"limit": 500})
    assert sum(calls.values()) <= 3, calls
    assert listed["total"] == 3
    for item in listed["items"]:
        eid = bytes.fromhex(item["emergency_id"][2:])
        state = ledger.emergency_state(eid)
        assert (item["approvals"], item["cancelled"], item["activated_at"]) == (
            state.approvals,
            state.cancelled,
            state.activated_at,
        ), item
        assert item["approvers"] == ledger.emergency_approvers(eid)
        assert item["active"] == ledger.emergency_active(eid)
    active = {i["emergency_id"]: i["active"] for i in listed["items"]}
    assert [active[e["emergency_id"]] for e in proposed] == [True, False, True]
    # a suspended approver no longer counts: the emergencies it activated are inactive at once
    p.admin.suspend(p.auditor.address)
    after = {i["emergency_id"]: i["active"] for i in p.admin.call("GET", "/v1/emergencies")["items"]}
    assert [after[e["emergency_id"]] for e in proposed] == [False, False, False]
    assert not ledger.emergency_active(bytes.fromhex(proposed[0]["emergency_id"][2:]))
