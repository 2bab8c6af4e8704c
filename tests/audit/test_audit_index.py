"""Verification and the trail over the indexer's tables agree with verification over JSON-RPC,
also after tampering and after a reorg; the API's verify route reads a freshly synced index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes
from sqlalchemy import delete, update
from web3.types import RPCEndpoint

from audit.checkpoints import anchor_checkpoint
from audit.trail import VERIFY_EVENTS, Auditor
from audit.verify import Report
from chain_client import CompilationResult, start_node
from chain_client.ids import resource_id
from chain_client.indexer import Indexer, jsonable
from db.index_store import SqlIndexStore
from db.models import ReleaseLogRow
from db.release_log import LogEntry
from db.store import Store
from tests.api.conftest import Platform, build_platform
from tests.conftest import deploy_fresh

CARD = b"Resident identity card of Zhang San, 370102199001011234"
TAX = b"Tax payment record of Zhang San, 2025"
#: Texts that must never reach the chain (check 4): the members' names and org codes of build_platform.
PRIVATE = ["Citizen Zhang", "Housing Provident Fund Center", "Jinan Public Security Bureau", "11370100MB1"]


# ---- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def index_store(tmp_path: Path) -> Iterator[SqlIndexStore]:
    store = Store.sqlite(tmp_path / "index.sqlite")
    yield SqlIndexStore(store)
    store.dispose()


def auditors(p: Platform, indexer: Indexer) -> tuple[Auditor, Auditor]:
    """(over the index, over RPC) for p's deployment, reading p's release log."""
    ledger = p.deployed.ledger
    common: dict[str, Any] = {"ledger": ledger, "log_entries": p.vault.release_log, "private_texts": lambda: PRIVATE}
    return Auditor(indexer=indexer, **common), Auditor(**common)


def both_reports(p: Platform, indexer: Indexer) -> tuple[Report, Report]:
    indexer.sync()
    by_index, by_rpc = auditors(p, indexer)
    assert by_index.head() == by_rpc.head() == p.deployed.ledger.head_block()  # the index is caught up
    return by_index.verify(), by_rpc.verify()


def log_entries(p: Platform) -> list[LogEntry]:
    return [LogEntry.parse(raw) for raw in p.vault.release_log()]


def activity(p: Platform) -> dict[str, str]:
    """Grants, single releases of two resources, a paused and a revoked grant, an emergency release
    and two checkpoints; the ids involved."""
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    p.provider.store_document(p.citizen.address, "tax_record", TAX)
    kept = p.citizen.grant(p.dept.address, ["id_card", "tax_record"], "loan-application")["grant_id"]
    p.dept.release(kept, "id_card", p.dept_key)
    p.dept.release(kept, "tax_record", p.dept_key)
    assert anchor_checkpoint(p.vault.ledger, p.vault.store) is not None
    revoked = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(revoked, "id_card", p.dept_key)
    p.citizen.pause(revoked)
    p.citizen.pause(revoked, False)
    p.citizen.revoke(revoked)
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response, Licheng district", hours=12)
    emergency = p.admin.propose_emergency(message, "Flood response, Licheng district")["emergency_id"]
    p.auditor.approve_emergency(message)
    assert p.dept.emergency_release(emergency, p.citizen.address, "id_card", p.dept_key).content == CARD
    assert anchor_checkpoint(p.vault.ledger, p.vault.store) is not None
    return {"kept": kept, "revoked": revoked, "emergency": emergency}


def counters(report: Report) -> tuple[int, ...]:
    return (
        report.releases,
        report.emergency_releases,
        report.grants,
        report.log_entries,
        report.checkpoints,
    )


# ---- 1. the index and RPC agree ----------------------------------------------------------------


def test_index_and_rpc_verification_agree_before_and_after_tampering(
    own_platform: Platform, index_store: SqlIndexStore
) -> None:
    p = own_platform
    activity(p)
    indexer = Indexer(ledger=p.deployed.ledger, store=index_store, confirmations=0)

    by_index, by_rpc = both_reports(p, indexer)
    assert by_index == by_rpc, (by_index, by_rpc)
    assert by_index.ok, by_index.violations
    assert counters(by_index) == (3, 1, 2, 4, 2)
    assert by_index.transactions_scanned > 0 and by_index.signatures_checked == 4

    # an insider edits the first log entry (still valid JSON) and deletes the third
    deleted = log_entries(p)[2]
    with p.vault.store.session() as s:
        row = s.get(ReleaseLogRow, 0)
        assert row is not None
        edited = row.entry.replace(b'"kind":"grant"', b'"kind": "grant"')
        assert edited != row.entry
        s.execute(update(ReleaseLogRow).where(ReleaseLogRow.idx == 0).values(entry=edited))
        s.execute(delete(ReleaseLogRow).where(ReleaseLogRow.idx == 2))
    # and an operator writes a member's name on chain
    p.admin.register_resource("note_for_citizen", "Citizen Zhang", p.provider.address, 1)

    by_index, by_rpc = both_reports(p, indexer)
    assert by_index == by_rpc, (by_index.violations, by_rpc.violations)
    found = sorted((v.check, v.code, v.log_index) for v in by_index.violations)
    assert found == [
        (3, "checkpoint_beyond_log", None),  # the second checkpoint covers 4 entries, 3 are left
        (3, "checkpoint_mismatch", None),  # the first covers the edited entry
        (3, "log_out_of_order", 2),  # the emergency release moved up
        (3, "receipt_without_release", None),
        (4, "personal_data_on_chain", None),
    ]
    missing = [v for v in by_index.violations if v.code == "receipt_without_release"]
    assert [v.tx_hash for v in missing] == [deleted.tx_hash]
    assert all(v.tx_hash and v.tx_hash.startswith("0x") for v in by_index.violations)
    assert by_index.log_entries == 3


def test_index_and_rpc_trails_agree(own_platform: Platform, index_store: SqlIndexStore) -> None:
    p = own_platform
    ids = activity(p)
    indexer = Indexer(ledger=p.deployed.ledger, store=index_store, confirmations=0)
    indexer.sync()
    by_index, by_rpc = auditors(p, indexer)

    everything = by_rpc.trail()
    assert [e["event"] for e in everything] == [
        "GrantRecorded",
        "ReleaseRecorded",
        "ReleaseRecorded",
        "GrantRecorded",
        "ReleaseRecorded",
        "GrantPauseChanged",
        "GrantPauseChanged",
        "GrantRevoked",
        "EmergencyProposed",
        "EmergencyApproved",
        "EmergencyApproved",
        "EmergencyReleaseRecorded",
    ]
    assert by_index.trail() == everything  # same events, order, positions, hashes and args
    filters: list[dict[str, Any]] = [
        {"subject": p.citizen.address},
        {"grantee": p.dept.address},
        {"grantee": p.other_dept.address},
        {"resource": resource_id("id_card")},
        {"resource": resource_id("tax_record")},
        {"subject": p.citizen.address, "from_block": everything[3]["block_number"]},
        {"to_block": everything[4]["block_number"]},
    ]
    for kwargs in filters:
        assert by_index.trail(**kwargs) == by_rpc.trail(**kwargs), kwargs
    assert by_index.trail(grantee=p.other_dept.address) == []
    tax = [e["event"] for e in by_index.trail(resource=resource_id("tax_record"))]
    assert tax == ["GrantRecorded", "ReleaseRecorded"]
    of_citizen = by_index.trail(subject=p.citizen.address)
    assert len(of_citizen) == 9 and "EmergencyProposed" not in {e["event"] for e in of_citizen}
    assert {e["args"].get("grantId") for e in of_citizen} == {ids["kept"], ids["revoked"], None}


# ---- 2. a reorg removes a logged release -------------------------------------------------------


@pytest.fixture
def own_platform(tmp_path: Path, compiled: CompilationResult) -> Iterator[Platform]:
    """A platform on an anvil node of its own: a reorg must not disturb the shared node, and the
    shared node's clock has been moved ahead by earlier tests (deadlines come from the wall clock)."""
    node = start_node("anvil", log_dir=tmp_path / "anvil-logs")
    try:
        if node.kind != "anvil":  # pragma: no cover - start_node("anvil") starts anvil
            pytest.skip(f"reorgs need anvil_reorg; the node is {node.kind}")
        (tmp_path / "platform").mkdir()
        built = build_platform(deploy_fresh(node, compiled), tmp_path / "platform")
        yield built
        built.close()
    finally:
        node.stop()


def _rpc(p: Platform, method: str, params: list[Any]) -> Any:
    response = p.deployed.ledger.w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in response, response
    return response.get("result")


def test_a_reorged_release_is_a_release_without_receipt_over_the_index(
    own_platform: Platform, index_store: SqlIndexStore
) -> None:
    p = own_platform
    ledger = p.deployed.ledger
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    fork = ledger.head_block()
    p.dept.release(grant_id, "id_card", p.dept_key)  # recorded on the branch the reorg drops
    kept, orphan = log_entries(p)
    assert kept.block_number <= fork < orphan.block_number == ledger.head_block()

    indexer = Indexer(ledger=ledger, store=index_store, confirmations=0)
    indexer.sync()
    released = [e.tx_hash for e in indexer.events(event="ReleaseRecorded")]
    assert released == [kept.tx_hash, orphan.tx_hash]
    assert both_reports(p, indexer)[0].ok

    head = ledger.head_block()
    _rpc(p, "anvil_reorg", [head - fork, []])  # the same height, empty blocks
    ledger.tx.nonces.reset()
    assert ledger.head_block() == head
    assert ledger.w3.eth.get_transaction_receipt(HexBytes(kept.tx_hash))["blockNumber"] == kept.block_number
    assert [HexBytes(e.transactionHash).to_0x_hex() for e in ledger.events("ReleaseRecorded")] == [kept.tx_hash]

    report = indexer.sync()
    assert report.reorgs == 1 and report.rolled_back_events == 1 and report.cursor == head
    chain = [
        (int(e.blockNumber), int(e.logIndex), HexBytes(e.transactionHash).to_0x_hex(), e.event, jsonable(dict(e.args)))
        for name in VERIFY_EVENTS
        for e in ledger.events(name, from_block=ledger.deployment.deploy_block)
    ]
    indexed = [(e.block_number, e.log_index, e.tx_hash, e.event, e.args) for e in indexer.events(event=VERIFY_EVENTS)]
    assert indexed == sorted(chain, key=lambda r: (r[0], r[1]))
    assert [e.tx_hash for e in indexer.events(event="ReleaseRecorded")] == [kept.tx_hash]

    by_index, by_rpc = both_reports(p, indexer)
    assert by_index == by_rpc, (by_index.violations, by_rpc.violations)
    assert [(v.check, v.code, v.tx_hash, v.log_index) for v in by_index.violations] == [
        (3, "release_without_receipt", orphan.tx_hash, 1)
    ]
    assert (by_index.releases, by_index.log_entries) == (1, 2)
    index_auditor, rpc_auditor = auditors(p, indexer)
    assert index_auditor.trail() == rpc_auditor.trail()
    assert [e["event"] for e in index_auditor.trail()] == ["GrantRecorded", "ReleaseRecorded"]


# ---- 3. the API verifies from its index --------------------------------------------------------


def test_the_verify_route_syncs_the_index_first(own_platform: Platform) -> None:
    p = own_platform
    indexer = p.http.app.state.indexer  # type: ignore[attr-defined]
    assert isinstance(indexer, Indexer)
    ledger = p.deployed.ledger
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    assert indexer.cursor() is None  # nothing has synced it yet (the follower runs in the lifespan only)

    first = p.auditor.call("POST", "/v1/audit/verify", json={})
    cursor = indexer.cursor()
    assert cursor is not None and cursor.number == ledger.head_block() == first["to_block"]
    assert (first["ok"], first["releases"], first["grants"], first["log_entries"]) == (True, 1, 1, 1)

    p.dept.release(grant_id, "id_card", p.dept_key)
    assert indexer.cursor() == cursor  # the index lags until a route syncs it
    second = p.auditor.call("POST", "/v1/audit/verify", json={})
    advanced = indexer.cursor()
    assert advanced is not None and advanced.number == ledger.head_block() == second["to_block"] > cursor.number
    assert (second["ok"], second["releases"], second["log_entries"]) == (True, 2, 2)

    # the route reads the index, not the node: held one block back, it does not see the newest release
    indexer.confirmations = 1
    p.dept.release(grant_id, "id_card", p.dept_key)
    third = p.auditor.call("POST", "/v1/audit/verify", json={})
    assert third["to_block"] == ledger.head_block() - 1 == indexer.cursor().number  # type: ignore[union-attr]
    assert (third["ok"], third["releases"], third["log_entries"]) == (True, 2, 3)
