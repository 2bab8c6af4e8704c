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

from chain_client import CompilationResult, start_node
from chain_client.indexer import Indexer, jsonable
from tests.api.conftest import Platform, build_platform
from tests.conftest import Deployed, deploy_fresh
from vault import Store
from vault.audit import TRAIL_EVENTS, VERIFY_EVENTS, Auditor
from vault.index_models import SqlIndexStore
from vault.models import ReleaseLogRow
from vault.releaselog import LogEntry
from vault.verify import Report

CARD = b"Resident identity card of Zhang San, 370102199001011234"
TAX = b"Tax payment record of Zhang San, 2025"
#: Texts that must never reach the chain (check 4): the members' names and org codes of build_platform.
PRIVATE = ["Citizen Zhang", "Housing Provident Fund Center", "Jinan Public Security Bureau", "11370100MB1"]


# ---- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def platform(deployed: Deployed, tmp_path: Path) -> Iterator[Platform]:
    """tests/api's platform (an API on a fresh anvil deployment with members) for this module."""
    built = build_platform(deployed, tmp_path)
    yield built
    built.vault.store.dispose()


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
    assert p.vault.anchor_checkpoint() is not None
    revoked = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(revoked, "id_card", p.dept_key)
    p.citizen.pause(revoked)
    p.citizen.pause(revoked, False)
    p.citizen.revoke(revoked)
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response, Licheng district", hours=12)
    emergency = p.admin.propose_emergency(message, "Flood response, Licheng district")["emergency_id"]
    p.auditor.approve_emergency(message)
    assert p.dept.emergency_release(emergency, p.citizen.address, "id_card", p.dept_key).content == CARD
    assert p.vault.anchor_checkpoint() is not None
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
    platform: Platform, index_store: SqlIndexStore
) -> None:
    p = platform
    activity(p)
    indexer = Indexer(ledger=p.deployed.ledger, store=index_store, confirmations=0)

    by_index, by_rpc = both_reports(p, indexer)
    assert by_index == by_rpc, (by_index, by_rpc)
    assert by_index.ok, by_index.violations
    assert counters(by_index) == (3, 1, 2, 4, 2)
    assert by_index.transactions_scanned > 0 and by_index.signatures_checked >= 4

    # an insider edits the first log entry (still valid JSON) and deletes the third
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
    codes = sorted(v.code for v in by_index.violations)
    assert "receipt_without_release" in codes and "personal_data_on_chain" in codes
    assert "checkpoint_mismatch" in codes or "checkpoint_beyond_log" in codes
    assert by_index.log_entries == 3


def test_index_and_rpc_trails_agree(platform: Platform, index_store: SqlIndexStore) -> None:
    p = platform
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
    ] or [e["event"] for e in everything].count("ReleaseRecorded") == 3
    card = bytes.fromhex(p.deployed.ledger.resource_id("id_card").hex()) if False else None  # noqa: F841
    from chain_client.ids import resource_id

    filters: list[dict[str, Any]] = [
        {},
        {"subject": p.citizen.address},
        {"grantee": p.dept.address},
        {"grantee": p.other_dept.address},
        {"resource": resource_id("id_card")},
        {"resource": resource_id("tax_record")},
        {"subject": p.citizen.address, "from_block": everything[3]["block_number"]},
        {"to_block": everything[4]["block_number"]},
    ]
    for kwargs in filters:
        rpc_rows, index_rows = by_rpc.trail(**kwargs), by_index.trail(**kwargs)
        assert rpc_rows == index_rows, kwargs
    assert by_rpc.trail(grantee=p.other_dept.address) == []
    assert {e["args"].get("grantId") for e in by_rpc.trail(subject=p.citizen.address)} >= {ids["kept"], ids["revoked"]}
