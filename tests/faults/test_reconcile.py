"""The chain came back behind what was answered (issue 16): blocks holding grants and releases that
the API had answered 2xx disappear (anvil's ``evm_revert`` to a snapshot: a node restarted from an
older state, or a deep reorg). Without anyone doing anything, the stored transactions are sent
again byte for byte: every grant and release is on chain again and the audit is clean; a release
the chain no longer allows is flagged with the contract's reason, not silently kept; so is a grant,
revocation or pause whose signed deadline passed before it could be sent again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from hexbytes import HexBytes
from sqlalchemy import select
from web3 import Web3
from web3.exceptions import TransactionNotFound

from chain_client import CompilationResult, Role, start_node
from db.models import LostCallRow, RelayerTransaction, ReleaseLogRow
from qcl_client import QclClient
from tests.conftest import deploy_fresh
from tests.faults._live import LiveApi, Load


@pytest.fixture
def live(compiled: CompilationResult, tmp_path: Path) -> Iterator[LiveApi]:
    node = start_node("anvil", log_dir=tmp_path / "logs")  # its own: the test reverts its chain
    built = LiveApi(deploy_fresh(node, compiled), tmp_path / "api", citizens=2)
    yield built
    built.close()
    node.stop()


def _post(live: LiveApi, body: dict) -> dict:  # type: ignore[type-arg]
    response = live.http.post("/v1/releases", json=body, headers={"Authorization": f"Bearer {live.dept.token}"})
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _on_chain(live: LiveApi) -> tuple[set[str], set[str]]:
    ledger = live.deployed.ledger
    grants = {"0x" + bytes(e.args.grantId).hex() for e in ledger.events("GrantRecorded", from_block=0)}
    releases = {"0x" + bytes(e.args.requestId).hex() for e in ledger.events("ReleaseRecorded", from_block=0)}
    return grants, releases


def _wait_reconciled(live: LiveApi, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while live.vault.relayer.chain_behind() or live.vault.relayer.last_recovery.lost_transactions == []:
        assert time.monotonic() < deadline, f"not reconciled: {live.vault.relayer.last_recovery}"
        time.sleep(0.2)


def test_lost_blocks_are_recorded_again_and_the_audit_is_clean(live: LiveApi) -> None:
    w3 = live.deployed.node.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    grant = live.citizens[0].grant(live.dept.address, ["id_card"], "benefit-review")["grant_id"]
    bodies = [live.dept.release_request(g, "id_card") for g in (grant, live.grants[0], live.grants[1])]
    answers = [_post(live, b) for b in bodies]
    head = w3.eth.block_number
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    assert w3.eth.block_number < head
    grants, releases = _on_chain(live)
    assert grant not in grants and not {b["message"]["requestId"] for b in bodies} & releases

    _wait_reconciled(live)  # the idle relayer sees the chain behind its log within seconds
    # the grant lost with the blocks was sent again first (stored bytes); the next grant follows it
    live.citizens[1].grant(live.dept.address, ["id_card"], "another-purpose")
    grants, releases = _on_chain(live)
    assert grant in grants
    assert {b["message"]["requestId"] for b in bodies} <= releases
    report = live.vault.relayer.last_recovery
    assert report.clean and len(report.restored) == 3, report
    # the same signed requests return the original releases
    assert [_post(live, b)["release_id"] for b in bodies] == [a["release_id"] for a in answers]
    auditor = QclClient(http=live.http, account=live.deployed.auditor)  # the deployment's first AUDITOR
    auditor.login()
    audit = auditor.call("POST", "/v1/audit/verify", json={})
    assert audit["violations"] == [], audit["violations"]


def test_a_release_the_chain_no_longer_allows_is_flagged(live: LiveApi) -> None:
    w3 = live.deployed.node.w3
    body = live.dept.release_request(live.grants[0], "id_card")
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    answer = _post(live, body)
    relayer = live.vault.relayer
    relayer.stop()  # so that the chain moves on before the relayer looks
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    live.citizens[0].revoke(live.grants[0])  # the chain, without that release, revokes its grant
    assert relayer.chain_behind()
    relayer.reconcile()
    report = relayer.last_recovery
    assert [r for r, _why in report.flagged] == [answer["release_id"]], report
    assert report.flagged[0][1].startswith("lost_on_chain: ") and "Revoked" in report.flagged[0][1]
    assert not report.clean
    _grants, releases = _on_chain(live)
    assert body["message"]["requestId"] not in releases


def _events(client: QclClient) -> list[tuple[str, str | None]]:
    page = client.call("GET", "/v1/events", params={"after": 0, "limit": 500})
    return [(e["type"], (e["data"].get("data") or e["data"]).get("grant_id")) for e in page["items"]]


def test_calls_past_their_deadline_are_listed_and_kept(live: LiveApi) -> None:
    """A grant, a pause and a revocation answered 2xx, lost with their blocks; by the time the
    stored transactions are sent again their signed deadlines (10 minutes) have passed: each call
    fails inside its multicall (CallFailed), and the report lists each with its kind, grant id and
    the decoded reason, and the database keeps them (``lost_calls``)."""
    w3 = live.deployed.node.w3
    relayer = live.vault.relayer
    citizen, other = live.citizens
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    grant = citizen.grant(live.dept.address, ["id_card"], "benefit-review")["grant_id"]
    other.pause(live.grants[1])
    citizen.revoke(live.grants[0])
    told = [  # the indexer told the members (the three blocks are in its index)
        (citizen, {("grant.recorded", grant), ("grant.revoked", live.grants[0])}),
        (other, {("grant.paused", live.grants[1])}),
    ]
    deadline = time.monotonic() + 20
    for member, events in told:
        while not events <= set(_events(member)):
            assert time.monotonic() < deadline, _events(member)
            time.sleep(0.2)
    relayer.stop()  # so that the chain moves on before the relayer looks
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    w3.provider.make_request("evm_increaseTime", [3600])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    relayer.reconcile()
    report = relayer.last_recovery
    assert len(report.lost_transactions) >= 3, report
    lost = sorted((c.kind, c.id) for c in report.lost_calls)
    assert lost == sorted([("grant", grant), ("pause", live.grants[1]), ("revocation", live.grants[0])]), report
    assert all(c.reason.startswith("ConsentLedgerExpiredDeadline(deadline=") for c in report.lost_calls), report
    assert not report.clean
    assert {(c["kind"], c["id"]) for c in report.as_dict()["lost_calls"]} == set(lost)
    with live.store.session() as s:
        rows = s.scalars(select(LostCallRow)).all()
    assert sorted((r.kind, r.grant_id) for r in rows) == lost
    assert {r.reason for r in rows} == {c.reason for c in report.lost_calls}
    # nothing of it is on chain: the grant unknown, the other grants neither paused nor revoked
    grants, _releases = _on_chain(live)
    assert grant not in grants
    ledger = live.deployed.ledger
    assert not ledger.grant_state(bytes.fromhex(live.grants[1][2:])).paused
    assert not ledger.grant_state(bytes.fromhex(live.grants[0][2:])).revoked
    # reconciling again finds nothing lost and keeps no row twice
    relayer.reconcile()
    assert relayer.last_recovery.lost_calls == []
    with live.store.session() as s:
        assert len(s.scalars(select(LostCallRow)).all()) == 3
    # the members concerned learn it from the feed: the indexer retracts the lost block's event
    deadline = time.monotonic() + 20
    for member, events in told:
        retracted = {(kind + ".retracted", grant_id) for kind, grant_id in events}
        while not retracted <= set(_events(member)):
            assert time.monotonic() < deadline, _events(member)
            time.sleep(0.2)


def test_a_nonce_gap_of_the_operator_account_is_filled_with_its_stored_bytes(live: LiveApi) -> None:
    """The operator account's transactions (onboarding here) are stored before they are sent, like
    the relayers': when its block is lost and the next one waits behind the nonce gap, the gap is
    filled with the lost transaction's very bytes (not an empty transfer), so it is on chain again."""
    w3 = live.deployed.node.w3
    live.vault.relayer.stop()  # no reconciliation: the gap alone must bring it back
    admin = QclClient(http=live.http, account=live.deployed.admin)
    admin.login()
    first, second = Account.create().address, Account.create().address
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    admin.onboard(first, ["SUBJECT"], "Citizen Li")
    with live.store.session() as s:
        row = s.scalars(select(RelayerTransaction).order_by(RelayerTransaction.nonce.desc()).limit(1)).one()
        lost_hash, lost_nonce, purpose, status = row.tx_hash, row.nonce, row.purpose, row.status
    assert (purpose, status) == ("operator", "mined")
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    ledger = live.deployed.ledger
    assert (
        ledger.member(first).roles == Role(0)
        and w3.eth.get_transaction_count(live.deployed.admin.address) == lost_nonce
    )

    admin.onboard(second, ["SUBJECT"], "Citizen Zhao")  # waits behind the gap until it is filled
    assert Role.SUBJECT in ledger.member(first).roles and Role.SUBJECT in ledger.member(second).roles
    assert w3.eth.get_transaction_receipt(lost_hash)["status"] == 1  # the same transaction, mined again


def _block_of(w3: Web3, tx_hash: bytes) -> bytes | None:
    """The hash of the block holding ``tx_hash`` (None: not in the chain)."""
    try:
        return bytes(w3.eth.get_transaction_receipt(HexBytes(tx_hash))["blockHash"])
    except TransactionNotFound:
        return None


def test_a_reorg_of_the_last_three_blocks_under_load_loses_nothing(live: LiveApi) -> None:
    """16 clients (grants and releases) while the node replaces its last 3 blocks with empty ones
    (``anvil_reorg``: their transactions are gone, the head is as high as before). Without anyone
    doing anything: every grant and release answered 2xx is on chain, every release answered 2xx is
    in the log once, nothing stays pending, and the audit is clean."""
    w3 = live.deployed.node.w3
    load = Load(live, clients=16)
    load.start()
    try:
        time.sleep(2.0)
        head = w3.eth.block_number
        mined = {  # the transactions of the last blocks, and the hash of the block each is in
            bytes(t): bytes(block["hash"])
            for block in (w3.eth.get_block(n) for n in range(max(1, head - 5), head + 1))
            for t in block["transactions"]
        }
        answer = w3.provider.make_request("anvil_reorg", [3, []])  # type: ignore[arg-type]
        assert "error" not in answer, answer
        assert [t for t, block in mined.items() if _block_of(w3, t) != block], "the reorg took no transaction with it"
        time.sleep(3.0)
    finally:
        load.stop()

    ok = [a for a in load.answers if a.status in (200, 201)]
    failed = [(a.kind, a.status, a.code) for a in load.answers if a.status not in (200, 201)]
    assert all(code in ("chain_unavailable", "release_pending") for _k, _s, code in failed), failed
    releases = {a.body["message"]["requestId"] for a in ok if a.kind == "release"}
    grants = {a.answer["grant_id"] for a in ok if a.kind == "grant"}
    assert len(releases) > 20 and grants, load.counts()

    deadline = time.monotonic() + 60
    while True:
        on_grants, on_releases = _on_chain(live)
        if grants <= on_grants and releases <= on_releases and not live.unsettled():
            break
        assert time.monotonic() < deadline, (
            f"{len(grants - on_grants)} grants and {len(releases - on_releases)} releases answered 2xx "
            f"are not on chain; {live.unsettled()} intents unsettled"
        )
        time.sleep(0.5)
    answered = {a.answer["release_id"] for a in ok if a.kind == "release"}
    assert answered <= live.log_ids()
    with live.store.session() as s:
        logged = s.scalars(select(ReleaseLogRow.release_id)).all()
    assert len(logged) == len(set(logged))  # no release logged twice
    auditor = QclClient(http=live.http, account=live.deployed.auditor)
    auditor.login()
    audit = auditor.call("POST", "/v1/audit/verify", json={})
    assert audit["violations"] == [], audit["violations"]
