"""The chain indexer: every event kind, release calldata, ledger transactions (reverted ones too),
resumption, confirmation depth, reorgs, a chain going away."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import MetaData, func, inspect, select
from web3 import Web3
from web3.providers import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from chain_client import ChainUnavailable, CompilationResult, Ledger, Role, eip712, errors, free_port, start_node
from chain_client.ids import new_request_ids
from chain_client.indexer import (
    RELEASE_EVENTS,
    BlockHeader,
    IndexConflict,
    IndexedEvent,
    IndexedTransaction,
    Indexer,
    jsonable,
)
from chain_client.types import EmergencyScope, ReleaseItem
from db.index_store import SqlIndexStore
from db.models import INDEX_TABLES, IndexedBlock, IndexerState, LedgerEvent, LedgerTransaction
from db.store import Store
from tests.chain_client.world import ID_CARD, TAX, World, make_world
from tests.conftest import Deployed, create_pg_database, deploy_fresh, drop_pg_database

#: Every event our contracts emit (EIP712DomainChanged is in the ABI but never emitted).
EVENTS = (
    "MemberOnboarded",
    "MemberUpdated",
    "MemberSuspensionChanged",
    "ResourceRegistered",
    "ResourceUpdated",
    "GrantRecorded",
    "GrantRevoked",
    "GrantPauseChanged",
    "ReleaseRecorded",
    "ReleaseRejected",
    "EmergencyProposed",
    "EmergencyApproved",
    "EmergencyReleaseRecorded",
    "EmergencyCancelled",
    "AuditorEnrolled",
    "CallFailed",
    "DocumentAnchored",
    "DocumentShredded",
    "CheckpointAnchored",
    "RecordAnchored",
)


# ---- fixtures and helpers ----------------------------------------------------------------------


def sqlite_store(path: Path) -> SqlIndexStore:
    return SqlIndexStore(Store.sqlite(path))


@pytest.fixture
def index_db(tmp_path: Path) -> Iterator[Callable[[str], SqlIndexStore]]:
    """Fresh SQLite index stores in tmp_path, by name."""
    stores: list[SqlIndexStore] = []

    def make(name: str = "index") -> SqlIndexStore:
        stores.append(sqlite_store(tmp_path / f"{name}.sqlite"))
        return stores[-1]

    yield make
    for s in stores:
        s.store.dispose()


@pytest.fixture
def world(deployed: Deployed) -> World:
    return make_world(deployed)


@pytest.fixture
def own_chain(tmp_path: Path, compiled: CompilationResult) -> Iterator[Deployed]:
    """A deployment on an anvil node of its own (reorgs must not disturb the shared node)."""
    node = start_node("anvil", log_dir=tmp_path / "anvil-logs")
    try:
        yield deploy_fresh(node, compiled)
    finally:
        node.stop()


def populate(world: World) -> dict[str, bytes]:
    """At least one of every event kind on top of make_world's members and catalog."""
    ledger = world.ledger
    ledger.update_member(world.dept.address, Role.CONSUMER, org_code="370100-housing", hpke_key=bytes(32))
    ledger.set_suspended(world.other_dept.address, True)
    ledger.set_suspended(world.other_dept.address, False)
    ledger.update_resource(TAX, world.provider.address, 1)
    terms, grant_id = world.grant(resources=(ID_CARD, TAX), max_uses=10)
    world.release(terms, grant_id)
    world.set_paused(grant_id, True)
    world.set_paused(grant_id, False)
    ids = new_request_ids(2)
    items = []
    # the second is refused (request used); the third is not the grantee's: skipped without an event
    for request_id, key in ((ids[0], world.dept.key), (ids[0], world.dept.key), (ids[1], world.other_dept.key)):
        rid, deadline, signature = world.release_request(grant_id, ID_CARD, key=key, request_id=request_id)
        items.append(ReleaseItem(terms, ID_CARD, rid, deadline, signature))
    result = ledger.record_releases(items)
    assert result.recorded == [0] and list(result.rejected) == [1] and result.skipped == [2]
    world.revoke(grant_id)
    scope = active_emergency(world)
    emergency_release(world, scope)
    cancel = {"emergencyId": scope.emergency_id, "deadline": world.now() + 600}
    ledger.cancel_emergency(
        scope.emergency_id,
        cancel["deadline"],
        eip712.sign(ledger.domain(), "EmergencyCancel", cancel, world.auditor.key),
    )
    second_auditor = Account.create()
    nonce, deadline, approval = world.enrolment(second_auditor.address)
    ledger.enrol_auditor(second_auditor.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=approval)
    unsigned = world.terms()
    failing = ledger.consent.functions.recordGrant(unsigned.as_tuple(), world.sign_grant(unsigned, world.dept.key))
    assert list(ledger.multicall([ledger.encode(failing)]).failed) == [0]
    document_id = secrets.token_bytes(32)
    ledger.anchor_document(document_id, world.citizen.address, ID_CARD, secrets.token_bytes(32), world.provider.address)
    ledger.shred_document(document_id)
    ledger.anchor_checkpoint(3, b"\x01" * 32)
    ledger.anchor_checkpoint(7, b"\x02" * 32)
    ledger.anchor_record(secrets.token_bytes(32), eip712.keccak(text="correction"), secrets.token_bytes(32))
    return {"grant_id": grant_id, "emergency_id": scope.emergency_id, "document_id": document_id}


def active_emergency(world: World) -> EmergencyScope:
    """An emergency over ID_CARD for world.dept, proposed by the admin and approved by the auditor."""
    ledger, now = world.ledger, world.now()
    scope = EmergencyScope(
        emergency_id=secrets.token_bytes(32),
        resources=(ID_CARD,),
        consumers=(world.dept.address,),
        valid_from=now - 10,
        valid_until=now + 3600,
        reason=eip712.keccak(text="flood response"),
        deadline=now + 600,
    )
    admin = world.deployed.admin
    ledger.propose_emergency(scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), admin.key))
    ledger.approve_emergency(scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), world.auditor.key))
    return scope


def emergency_release(world: World, scope: EmergencyScope) -> tuple[bytes, int, bytes]:
    """An emergency release of the citizen's ID_CARD to world.dept; (request id, deadline, signature)."""
    ledger = world.ledger
    request_id, deadline = new_request_ids(1)[0], world.now() + 600
    message = {
        "emergencyId": scope.emergency_id,
        "subject": world.citizen.address,
        "resource": ID_CARD,
        "requestId": request_id,
        "deadline": deadline,
    }
    signature = eip712.sign(ledger.domain(), "EmergencyReleaseRequest", message, world.dept.key)
    ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, request_id, deadline, signature)
    return request_id, deadline, signature


Row = tuple[int, int, str, str, int, str, str, dict[str, Any]]


def chain_view(
    ledger: Ledger, names: tuple[str, ...] = EVENTS, *, from_block: int | None = None, to_block: int | str = "latest"
) -> list[Row]:
    """What the chain says, through Ledger.events, in chain order."""
    rows: list[Row] = []
    start = ledger.deployment.deploy_block if from_block is None else from_block
    for name in names:
        for e in ledger.events(name, from_block=start, to_block=to_block):
            rows.append(
                (
                    int(e.blockNumber),
                    int(e.logIndex),
                    HexBytes(e.blockHash).to_0x_hex(),
                    HexBytes(e.transactionHash).to_0x_hex(),
                    int(e.transactionIndex),
                    str(e.address),
                    name,
                    jsonable(dict(e.args)),
                )
            )
    return sorted(rows, key=lambda r: (r[0], r[1]))


def index_view(events: list[IndexedEvent]) -> list[Row]:
    return [
        (e.block_number, e.log_index, e.block_hash, e.tx_hash, e.tx_index, e.contract, e.event, e.args) for e in events
    ]


def chain_transactions(
    ledger: Ledger, *, from_block: int | None = None, to_block: int | None = None
) -> list[IndexedTransaction]:
    """What the chain says: every transaction to the ledger's contracts, block by block, in chain order."""
    w3, contracts = ledger.w3, {ledger.consent.address, ledger.anchor.address}
    start = ledger.deployment.deploy_block if from_block is None else from_block
    end = ledger.head_block() if to_block is None else to_block
    found = []
    for number in range(start, end + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if isinstance(tx, bytes) or tx["to"] not in contracts:  # bytes: not asked for (full blocks)
                continue
            found.append(
                IndexedTransaction(
                    block_number=number,
                    block_hash=HexBytes(block["hash"]).to_0x_hex(),
                    tx_index=int(tx["transactionIndex"]),
                    hash=HexBytes(tx["hash"]).to_0x_hex(),
                    sender=str(tx["from"]),
                    recipient=str(tx["to"]),
                    input=HexBytes(tx["input"]).to_0x_hex(),
                )
            )
    return found


def stored_blocks(store: SqlIndexStore) -> dict[int, str]:
    return {b.number: b.hash for b in store.blocks_below(2**62, 10**6)}


def chain_hash(w3: Web3, number: int) -> str:
    return HexBytes(w3.eth.get_block(number)["hash"]).to_0x_hex()


def assert_consistent(indexer: Indexer, store: SqlIndexStore) -> None:
    """The index is a prefix of the chain: cursor = highest stored block, everything on the chain."""
    cursor = indexer.cursor()
    blocks = stored_blocks(store)
    events = indexer.events()
    transactions = indexer.transactions()
    if cursor is None:
        assert not blocks and not events and not transactions
        return
    assert max(blocks) == cursor.number and blocks[cursor.number] == cursor.hash
    for number, block_hash in blocks.items():
        assert chain_hash(indexer.w3, number) == block_hash, number
    assert all(e.block_number <= cursor.number and blocks[e.block_number] == e.block_hash for e in events)
    assert all(t.block_number <= cursor.number and blocks[t.block_number] == t.block_hash for t in transactions)
    assert index_view(events) == chain_view(indexer.ledger, from_block=indexer.start_block, to_block=cursor.number)
    assert transactions == chain_transactions(indexer.ledger, from_block=indexer.start_block, to_block=cursor.number)
    tx_hashes = {t.hash for t in transactions}
    for tx_hash in {e.tx_hash for e in events} - tx_hashes:  # a contract's creation; else every call is direct
        assert indexer.w3.eth.get_transaction(HexBytes(tx_hash))["to"] is None
    for event in events:  # and so every release carries its signed request
        assert (event.deadline is not None and event.signature is not None) == (event.event in RELEASE_EVENTS)


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in response, response
    return response.get("result")


# ---- indexing ----------------------------------------------------------------------------------


def postgres_store() -> Iterator[SqlIndexStore]:
    """A store on a fresh PostgreSQL database, dropped afterwards (the test fails without a server)."""
    url = create_pg_database("qcl_idx")
    store = Store(url)
    try:
        yield SqlIndexStore(store)
    finally:
        store.dispose()
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlIndexStore]:
    if request.param == "sqlite":
        store = Store.sqlite(tmp_path / "index.sqlite")
        yield SqlIndexStore(store)
        store.dispose()
        return
    yield from postgres_store()


@pytest.fixture
def pg_store() -> Iterator[SqlIndexStore]:
    yield from postgres_store()


def test_every_event_kind_is_indexed_as_the_chain_reports_it(world: World, any_store: SqlIndexStore) -> None:
    ids = populate(world)
    ledger = world.ledger
    indexer = Indexer(ledger=ledger, store=any_store, batch_blocks=7)
    report = indexer.sync()
    head = ledger.head_block()
    assert report.cursor == head and report.caught_up and report.reorgs == 0
    assert report.from_block == ledger.deployment.deploy_block and report.to_block == head
    assert report.events == len(chain_view(ledger)) and report.batches >= 3
    for name in EVENTS:
        expected = chain_view(ledger, (name,))
        assert expected, f"populate() emits no {name}"
        assert index_view(indexer.events(event=name)) == expected, name
    assert index_view(indexer.events()) == chain_view(ledger)
    assert_consistent(indexer, any_store)

    # the JSON form: bytes as hex, big integers as strings, small ones as numbers
    (grant,) = indexer.events(event="GrantRecorded")
    assert grant.args["resources"] == ["0x" + ID_CARD.hex(), "0x" + TAX.hex()]
    assert grant.args["maxUses"] == 10 and isinstance(grant.args["nonce"], str) and int(grant.args["nonce"]) > 2**53
    assert grant.grant_id == "0x" + ids["grant_id"].hex() and grant.subject == world.citizen.address
    assert grant.block_timestamp == ledger.block_timestamp(grant.block_number)

    # key columns and query helpers
    citizen, dept = world.citizen.address, world.dept.address
    by_subject = {e.event for e in indexer.events(subject=citizen.lower())}
    assert by_subject == {
        "GrantRecorded",
        "ReleaseRecorded",  # subject filled in from the grant
        "ReleaseRejected",  # also filled in from the grant
        "GrantPauseChanged",
        "GrantRevoked",
        "EmergencyReleaseRecorded",
        "DocumentAnchored",
        "DocumentShredded",
    }
    assert [e.event for e in indexer.events(grant_id=ids["grant_id"])] == [
        "GrantRecorded",
        "ReleaseRecorded",
        "GrantPauseChanged",
        "GrantPauseChanged",
        "ReleaseRecorded",
        "ReleaseRejected",
        "GrantRevoked",
    ]
    assert all(e.grantee == dept for e in indexer.events(grant_id=ids["grant_id"]))
    assert {e.event for e in indexer.events(grantee=dept)} == {
        "GrantRecorded",
        "ReleaseRecorded",
        "GrantPauseChanged",
        "ReleaseRejected",
        "GrantRevoked",
    }
    assert [e.event for e in indexer.events(consumer=dept)] == ["EmergencyReleaseRecorded"]
    assert [e.event for e in indexer.events(account=dept)] == ["MemberOnboarded", "MemberUpdated"]
    assert {e.event for e in indexer.events(resource=ID_CARD)} == {
        "ResourceRegistered",
        "ReleaseRecorded",
        "EmergencyReleaseRecorded",
        "DocumentAnchored",
    }
    assert [e.event for e in indexer.events(emergency_id=ids["emergency_id"])] == [
        "EmergencyProposed",
        "EmergencyApproved",
        "EmergencyApproved",
        "EmergencyReleaseRecorded",
        "EmergencyCancelled",
    ]
    assert [e.event for e in indexer.events(document_id=ids["document_id"].hex())] == [
        "DocumentAnchored",
        "DocumentShredded",
    ]
    releases = indexer.events(event=("ReleaseRecorded", "EmergencyReleaseRecorded"))
    assert len(releases) == 3 and all(e.request_id for e in releases)
    assert indexer.events(request_id=releases[0].request_id) == [releases[0]]
    assert indexer.events(tx_hash=releases[0].tx_hash) == [releases[0]]
    middle = releases[1].block_number
    assert indexer.events(from_block=middle, to_block=middle) == [
        e for e in indexer.events() if e.block_number == middle
    ]
    assert [e.event for e in indexer.events(from_block=middle, to_block=middle)] == [
        "ReleaseRecorded",
        "ReleaseRejected",
    ]
    assert indexer.events(limit=2, offset=1) == indexer.events()[1:3]
    with pytest.raises(ValueError):
        indexer.events(subject="not an address")
    with pytest.raises(ValueError):
        indexer.events(grant_id=b"short")


def test_release_events_carry_the_signed_request(world: World, any_store: SqlIndexStore) -> None:
    ledger = world.ledger
    terms, grant_id = world.grant(resources=(ID_CARD, TAX), max_uses=0)
    submitted: dict[bytes, tuple[int, bytes]] = {}  # request id -> (deadline, signature)
    for deadline in (None, 2**256 - 1):  # a deadline beyond BIGINT: stored as decimal text
        request_id, deadline_, signature = world.release_request(grant_id, ID_CARD, deadline=deadline)
        ledger.record_release(terms, ID_CARD, request_id, deadline_, signature)
        submitted[request_id] = (deadline_, signature)

    # grouped: a skipped item (not the grantee's signature), then the same request properly signed
    # with another deadline; a release, then its replay (rejected: request used) with another deadline
    first, second = new_request_ids(2)
    forged = world.release_request(grant_id, TAX, key=world.other_dept.key, request_id=first)
    signed = world.release_request(grant_id, TAX, request_id=first, deadline=world.now() + 900)
    other = world.release_request(grant_id, ID_CARD, request_id=second)
    replay = world.release_request(grant_id, ID_CARD, request_id=second, deadline=world.now() + 1200)
    items = [ReleaseItem(terms, resource, *r) for resource, r in ((TAX, forged), (TAX, signed), (ID_CARD, other))]
    items.append(ReleaseItem(terms, ID_CARD, *replay))
    result = ledger.record_releases(items)
    assert result.recorded == [1, 2] and sorted(result.rejected) == [3] and result.skipped == [0]
    assert forged[1:] != signed[1:] and replay[1:] != other[1:]
    submitted[first], submitted[second] = signed[1:], other[1:]

    request_id, deadline, signature = emergency_release(world, active_emergency(world))
    submitted[request_id] = (deadline, signature)

    indexer = Indexer(ledger=ledger, store=any_store, batch_blocks=4)
    indexer.sync()
    releases = indexer.events(event=tuple(RELEASE_EVENTS))
    assert sorted(e.event for e in releases) == ["EmergencyReleaseRecorded"] + ["ReleaseRecorded"] * 4
    assert {e.request_id: (e.deadline, e.signature) for e in releases} == {
        "0x" + rid.hex(): (d, "0x" + sig.hex()) for rid, (d, sig) in submitted.items()
    }
    assert all(e.deadline is None and e.signature is None for e in indexer.events() if e.event not in RELEASE_EVENTS)
    assert [e.deadline for e in indexer.events(request_id=releases[1].request_id)] == [2**256 - 1]

    # what the auditor checks from the index alone: each signature recovers the grantee (consumer)
    domain = ledger.domain()
    for e in releases:
        if e.event == "ReleaseRecorded":
            primary, signer = "ReleaseRequest", e.grantee
            fields = {"grantId": e.args["grantId"], "resource": e.args["resource"]}
        else:
            primary, signer = "EmergencyReleaseRequest", e.consumer
            fields = {
                "emergencyId": e.args["emergencyId"],
                "subject": e.args["subject"],
                "resource": e.args["resource"],
            }
        message = {k: HexBytes(v) if k != "subject" else v for k, v in fields.items()}
        message |= {"requestId": HexBytes(e.args["requestId"]), "deadline": e.deadline}
        assert e.signature is not None
        recovered = Account.recover_message(eip712.signable(domain, primary, message), signature=e.signature)
        assert recovered == signer, e
    assert_consistent(indexer, any_store)


def test_reverted_transactions_to_the_ledger_are_indexed(world: World, any_store: SqlIndexStore) -> None:
    ledger, w3 = world.ledger, world.ledger.w3
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id, deadline=world.now() - 1)
    with pytest.raises(errors.ExpiredDeadline) as expired:  # fixed gas: mined, and reverted
        ledger.record_release(terms, ID_CARD, request_id, deadline, signature, gas=300_000)
    with pytest.raises(errors.ContractRevert) as wrong_signer:
        world.revoke(grant_id, key=world.dept.key, gas=200_000)
    ledger.anchor_checkpoint(1, b"\x03" * 32)  # the AuditAnchor's transactions too
    failed = [h for h in (expired.value.tx_hash, wrong_signer.value.tx_hash) if h is not None]
    assert len(failed) == 2 and all(w3.eth.get_transaction_receipt(HexBytes(h))["status"] == 0 for h in failed)

    indexer = Indexer(ledger=ledger, store=any_store, batch_blocks=3)
    report = indexer.sync()
    transactions = indexer.transactions()
    assert report.transactions == len(transactions) > len(failed)
    assert transactions == chain_transactions(ledger)
    assert [t.position for t in transactions] == sorted(t.position for t in transactions)
    by_hash = {t.hash: t for t in transactions}
    for tx_hash in failed:
        stored, sent = by_hash[tx_hash], w3.eth.get_transaction(HexBytes(tx_hash))
        assert stored.input == HexBytes(sent["input"]).to_0x_hex() and stored.input.startswith("0x")
        assert (stored.sender, stored.recipient) == (ledger.relay.address, ledger.consent.address)
        assert stored.block_number == sent["blockNumber"] and stored.tx_index == sent["transactionIndex"]
        assert not indexer.events(tx_hash=tx_hash)  # a reverted transaction emits nothing
        assert indexer.block(stored.block_number) is not None  # its block is stored all the same
    # the reverted release's calldata holds what was submitted (what check 4 scans)
    assert signature.hex() in by_hash[failed[0]].input and request_id.hex() in by_hash[failed[0]].input
    assert {t.recipient for t in transactions} == {ledger.consent.address, ledger.anchor.address}
    middle = by_hash[failed[1]].block_number
    assert indexer.transactions(from_block=middle, to_block=middle) == [by_hash[failed[1]]]
    assert indexer.transactions(from_block=middle + 1) == [t for t in transactions if t.block_number > middle]
    assert indexer.transactions(to_block=middle - 1) == [t for t in transactions if t.block_number < middle]
    assert_consistent(indexer, any_store)


def test_a_release_through_another_contract_is_proven_by_its_event(
    world: World, index_db: Callable[[str], SqlIndexStore], compiled: CompilationResult
) -> None:
    """L2: a release sent through another contract (no transaction to the ledger) still gets its
    deadline and signature, from the event itself (SPEC §9.8: the chain alone proves a release)."""
    ledger = world.ledger
    terms, grant_id = world.grant()
    art = compiled["ReleaseForwarder"]
    factory = ledger.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    address = ledger.tx.transact(factory.constructor()).contract_address
    assert address is not None
    forwarder = ledger.w3.eth.contract(address=address, abi=art.abi)
    request_id, deadline, signature = world.release_request(grant_id)
    data = ledger.encode(
        ledger.consent.functions.recordRelease(terms.as_tuple(), ID_CARD, request_id, deadline, signature)
    )
    receipt = ledger.tx.transact(forwarder.functions.forward(ledger.consent.address, data))
    indexer = Indexer(ledger=ledger, store=index_db("index"))
    indexer.sync()
    (release,) = indexer.events(grant_id=grant_id, event="ReleaseRecorded")
    assert release.tx_hash == receipt.tx_hash
    assert receipt.tx_hash not in {t.hash for t in indexer.transactions()}  # not sent to the ledger
    assert (release.deadline, release.signature) == (deadline, "0x" + signature.hex())
    # the calldata decoders stay for v1 events without these arguments
    world.release(terms, grant_id)
    indexer.sync()
    (tx,) = [t for t in indexer.transactions() if t.block_number == ledger.head_block()]
    calls = indexer._release_calls(tx)
    assert calls is not None and len(calls) == 1
    assert indexer._release_calls(replace(tx, input="0x12345678" + tx.input[10:])) is None


def test_resumes_where_it_stopped_without_duplicates(world: World, tmp_path: Path) -> None:
    ledger, path = world.ledger, tmp_path / "index.sqlite"
    store = sqlite_store(path)
    first = Indexer(ledger=ledger, store=store, batch_blocks=4)
    first.sync(max_batches=2)  # stop early: a partial index
    partial = first.cursor()
    assert partial is not None and partial.number < ledger.head_block()
    store.store.dispose()

    store = sqlite_store(path)  # as after a restart
    second = Indexer(ledger=ledger, store=store, batch_blocks=4)
    report = second.sync()
    assert report.from_block == partial.number + 1 and report.cursor == ledger.head_block()
    terms, grant_id = world.grant()
    world.release(terms, grant_id)
    store.store.dispose()

    store = sqlite_store(path)
    third = Indexer(ledger=ledger, store=store)
    report = third.sync()
    assert report.events == 2 and report.blocks == 2 and report.transactions == 2
    assert index_view(third.events()) == chain_view(ledger)
    transactions = third.transactions()
    assert transactions == chain_transactions(ledger)
    assert len({t.hash for t in transactions}) == len(transactions)
    assert third.sync().batches == 0  # nothing new
    assert third.transactions() == transactions
    (release,) = third.events(grant_id=grant_id, event="ReleaseRecorded")
    assert release.deadline is not None and release.signature is not None
    assert_consistent(third, store)
    store.store.dispose()


def test_confirmation_depth(world: World, index_db: Callable[[str], SqlIndexStore]) -> None:
    ledger, w3 = world.ledger, world.ledger.w3
    indexer = Indexer(ledger=ledger, store=index_db("index"), confirmations=3)
    terms, grant_id = world.grant()
    world.release(terms, grant_id)  # the grant is 2 blocks deep, the release 1
    head = ledger.head_block()
    report = indexer.sync()
    assert report.cursor == head - 3 and report.target == head - 3
    assert not indexer.events(grant_id=grant_id)
    mine(w3, 1)
    indexer.sync()
    assert not indexer.events(grant_id=grant_id)  # the grant now has 2 blocks on top of it, not 3
    mine(w3, 1)
    indexer.sync()
    assert [e.event for e in indexer.events(grant_id=grant_id)] == ["GrantRecorded"]
    mine(w3, 1)
    indexer.sync()
    assert [e.event for e in indexer.events(grant_id=grant_id)] == ["GrantRecorded", "ReleaseRecorded"]
    cursor = indexer.cursor()
    assert cursor is not None and cursor.number == ledger.head_block() - 3
    with pytest.raises(ValueError):
        Indexer(ledger=ledger, store=index_db("other"), confirmations=-1)


def test_run_forever_follows_the_chain_and_survives_outages(
    world: World, index_db: Callable[[str], SqlIndexStore], compiled: CompilationResult
) -> None:
    provider = HTTPProvider(f"http://127.0.0.1:{free_port()}", exception_retry_configuration=None)
    ledger = Ledger(
        w3=Web3(provider),
        deployment=world.ledger.deployment,
        compiled=compiled,
        operator=world.deployed.admin,
    )
    indexer = Indexer(ledger=ledger, store=index_db("index"))
    reports: list[Any] = []
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run_forever, args=(0.05, stop), kwargs={"on_report": reports.append})
    thread.start()
    try:
        _wait(lambda: isinstance(indexer.last_error, ChainUnavailable))  # nobody answers there
        assert thread.is_alive() and indexer.cursor() is None
        assert world.deployed.node.url is not None
        provider.endpoint_uri = world.deployed.node.url  # type: ignore[assignment]
        _wait(lambda: indexer.last_error is None and bool(reports) and reports[-1].caught_up)
        _, grant_id = world.grant()
        _wait(lambda: bool(indexer.events(grant_id=grant_id)))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert index_view(indexer.events()) == chain_view(world.ledger)


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---- reorgs ------------------------------------------------------------------------------------


def _signed_grant(world: World, admin: LocalAccount, nonce: int) -> str:
    """A raw, signed recordGrant transaction of a new grant (for anvil_reorg)."""
    ledger = world.ledger
    terms = world.terms()
    fn = ledger.consent.functions.recordGrant(terms.as_tuple(), world.sign_grant(terms))
    params: Any = {"from": admin.address, "nonce": nonce, "gas": 600_000, "chainId": ledger.chain_id}
    tx: Any = fn.build_transaction(params)
    return admin.sign_transaction(tx).raw_transaction.to_0x_hex()


@pytest.mark.parametrize("how", ["replace", "rollback"])
def test_reorg_is_rolled_back_and_reindexed(
    own_chain: Deployed, index_db: Callable[[str], SqlIndexStore], how: str
) -> None:
    world = make_world(own_chain)
    ledger, w3, admin = world.ledger, world.ledger.w3, own_chain.admin
    terms, kept = world.grant()
    world.release(terms, kept)
    store = index_db("index")
    indexer = Indexer(ledger=ledger, store=store, batch_blocks=5)
    indexer.sync()
    fork = ledger.head_block()

    # four blocks that will be orphaned: a grant, a release, a revocation, a reverted revocation
    orphan_terms, orphan = world.grant()
    world.release(orphan_terms, orphan)
    world.revoke(orphan)
    with pytest.raises(errors.ContractRevert):  # already revoked; mined with a fixed gas, no events
        world.revoke(orphan, gas=200_000)
    report = indexer.sync()
    assert report.events == 3 and report.transactions == 4
    orphaned_hashes = {n: chain_hash(w3, n) for n in range(fork + 1, fork + 5)}
    assert all(stored_blocks(store)[n] == h for n, h in orphaned_hashes.items())
    orphaned_txs = {t.hash for t in indexer.transactions(from_block=fork + 1)}
    assert len(orphaned_txs) == 4 and {t.block_number for t in indexer.transactions(from_block=fork + 1)} == set(
        orphaned_hashes
    )

    replacement_txs = set()
    if how == "replace":  # same height, other blocks: a different grant in the second of them
        nonce = w3.eth.get_transaction_count(admin.address, fork)  # type: ignore[arg-type]
        raw = _signed_grant(world, admin, nonce)
        replacement_txs.add(Web3.keccak(HexBytes(raw)).to_0x_hex())
        rpc(w3, "anvil_reorg", [4, [[raw, 1]]])
        assert ledger.head_block() == fork + 4
    else:  # the chain gets shorter first, then grows other blocks
        rpc(w3, "anvil_rollback", [4])
        assert ledger.head_block() == fork
        report = indexer.sync()
        assert report.reorgs == 1 and report.rolled_back_blocks == 4 and report.rolled_back_events == 3
        assert report.cursor == fork and report.events == 0
        assert not indexer.transactions(from_block=fork + 1)
    ledger.tx.nonces.reset()
    assert all(chain_hash(w3, n) != h for n, h in orphaned_hashes.items() if n <= ledger.head_block())
    replacement_grant = world.grant()[1]
    replacement_txs.add(ledger.events("GrantRecorded", from_block=ledger.head_block())[0].transactionHash.to_0x_hex())

    report = indexer.sync()
    if how == "replace":
        assert report.reorgs == 1 and report.rolled_back_blocks == 4 and report.rolled_back_events == 3
    else:
        assert report.reorgs == 0  # already rolled back above
    assert report.transactions == len(replacement_txs)
    assert not indexer.events(grant_id=orphan)
    assert [e.event for e in indexer.events(grant_id=replacement_grant)] == ["GrantRecorded"]
    assert [e.event for e in indexer.events(grant_id=kept)] == ["GrantRecorded", "ReleaseRecorded"]
    transactions = {t.hash for t in indexer.transactions()}
    assert not transactions & orphaned_txs and replacement_txs <= transactions
    assert {t.hash for t in indexer.transactions(from_block=fork + 1)} == replacement_txs

    fresh_store = index_db("fresh")
    fresh = Indexer(ledger=ledger, store=fresh_store)
    fresh.sync()
    assert index_view(indexer.events()) == index_view(fresh.events()) == chain_view(ledger)
    assert indexer.transactions() == fresh.transactions() == chain_transactions(ledger)
    assert indexer.cursor() == fresh.cursor()
    ours, theirs = stored_blocks(store), stored_blocks(fresh_store)
    assert all(theirs[n] == h for n, h in ours.items() if n in theirs)
    assert_consistent(indexer, store)


class HookedProvider(HTTPProvider):
    """An HTTP provider that runs ``hook(method, params)`` before every request it sends."""

    def __init__(self, url: str, hook: Callable[[str, Any], None]) -> None:
        super().__init__(url, exception_retry_configuration=None)
        self.hook = hook

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self.hook(str(method), params)
        return super().make_request(method, params)

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        self.hook("batch", batch_requests)
        return super().make_batch_request(batch_requests)


def _ledger_on(deployed: Deployed, compiled: CompilationResult, provider: HTTPProvider) -> Ledger:
    return Ledger(w3=Web3(provider), deployment=deployed.ledger.deployment, compiled=compiled, operator=deployed.admin)


@pytest.mark.parametrize("when", ["end-hash", "logs", "blocks"])
def test_reorg_while_a_batch_is_read(
    own_chain: Deployed, index_db: Callable[[str], SqlIndexStore], compiled: CompilationResult, when: str
) -> None:
    world = make_world(own_chain)
    populate(world)
    head = world.ledger.head_block()
    node_w3 = own_chain.node.w3
    fired: list[int] = []

    def reads(method: str, params: Any) -> bool:
        """Is this the read ``when`` of the batch that ends at the head?"""
        if when == "end-hash":  # the first read: then every read of the batch sees the new chain
            return method == "eth_getBlockByNumber" and params == [hex(head), False]
        if when == "logs":
            return method == "eth_getLogs" and params[0]["toBlock"] == hex(head)
        return method == "batch" and any(p == [hex(head), True] for _, p in params)

    def hook(method: str, params: Any) -> None:
        # replace the last 4 blocks: the batch's blocks and the cursor it extends change under it
        if reads(method, params) and not fired:
            fired.append(head)
            rpc(node_w3, "anvil_reorg", [4, []])

    assert own_chain.node.url is not None
    ledger = _ledger_on(own_chain, compiled, HookedProvider(own_chain.node.url, hook))
    store = index_db("index")
    indexer = Indexer(ledger=ledger, store=store, batch_blocks=3)
    report = indexer.sync()
    assert fired and report.reorgs == 1 and report.rolled_back_blocks >= 1 and report.cursor == head
    fresh = Indexer(ledger=ledger, store=index_db("fresh"))
    fresh.sync()
    assert index_view(indexer.events()) == index_view(fresh.events()) == chain_view(ledger)
    assert indexer.transactions() == fresh.transactions() == chain_transactions(ledger)
    assert_consistent(indexer, store)


def test_reorg_below_everything_indexed_starts_over(
    own_chain: Deployed, index_db: Callable[[str], SqlIndexStore]
) -> None:
    world = make_world(own_chain)
    ledger = world.ledger
    store = index_db("index")
    indexer = Indexer(ledger=ledger, store=store, start_block=ledger.head_block() - 2)
    indexer.sync()
    assert indexer.events()
    rpc(ledger.w3, "anvil_reorg", [3, []])  # every indexed block is replaced
    report = indexer.sync()
    assert report.reorgs == 1 and report.rolled_back_events == 3 and not indexer.events()
    assert not indexer.transactions()
    assert_consistent(indexer, store)


# ---- failures ----------------------------------------------------------------------------------


class FailingProvider(HTTPProvider):
    """Answers ``fail_after`` requests, then points at a port nobody listens on."""

    def __init__(self, url: str, fail_after: int | None) -> None:
        super().__init__(url, exception_retry_configuration=None)
        self.url, self.fail_after, self.calls = url, fail_after, 0

    def _count(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            self.endpoint_uri = f"http://127.0.0.1:{free_port()}"  # type: ignore[assignment]

    def heal(self) -> None:
        self.fail_after, self.endpoint_uri = None, self.url  # type: ignore[assignment]

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._count()
        return super().make_request(method, params)

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        self._count()
        return super().make_batch_request(batch_requests)


def test_chain_going_away_mid_sync_leaves_a_consistent_prefix(
    own_chain: Deployed, tmp_path: Path, compiled: CompilationResult
) -> None:
    world = make_world(own_chain)
    populate(world)
    url = own_chain.node.url
    assert url is not None
    counting = FailingProvider(url, None)
    Indexer(
        ledger=_ledger_on(own_chain, compiled, counting), store=sqlite_store(tmp_path / "count.sqlite"), batch_blocks=4
    ).sync()
    expected = chain_view(world.ledger)
    assert counting.calls > 10
    for fail_after in range(counting.calls):  # the chain stops answering at every request in turn
        provider = FailingProvider(url, fail_after)
        store = sqlite_store(tmp_path / f"fail-{fail_after}.sqlite")
        indexer = Indexer(ledger=_ledger_on(own_chain, compiled, provider), store=store, batch_blocks=4)
        with pytest.raises(ChainUnavailable):
            indexer.sync()
        provider.heal()
        assert_consistent(indexer, store)
        with store.store.session() as session:  # the stored state is exactly the highest stored block
            state = session.scalar(select(IndexerState))
            top = session.scalar(select(func.max(IndexedBlock.number)))
            assert (state.last_block if state else None) == top
        indexer.sync()
        assert index_view(indexer.events()) == expected
        store.store.dispose()


def test_a_failed_batch_write_leaves_nothing(world: World, index_db: Callable[[str], SqlIndexStore]) -> None:
    store = index_db("index")
    indexer = Indexer(ledger=world.ledger, store=store, batch_blocks=3)
    indexer.sync(max_batches=1)
    cursor = indexer.cursor()
    assert cursor is not None
    before, transactions = indexer.events(), indexer.transactions()
    assert transactions
    new_header = BlockHeader(number=cursor.number + 1, hash="0x" + "ab" * 32, parent_hash=cursor.hash, timestamp=0)
    new_tx = replace(transactions[0], hash="0x" + "cd" * 32, block_number=new_header.number, block_hash=new_header.hash)
    with pytest.raises(IndexConflict):  # another indexer moved the cursor meanwhile
        store.append("ledger", expected=None, blocks=[], events=[], cursor=cursor, transactions=[new_tx])
    with pytest.raises(Exception, match="UNIQUE"):  # a new block and transaction, but a duplicate event: all refused
        store.append(
            "ledger",
            expected=cursor,
            blocks=[new_header],
            events=before[:1],
            cursor=new_header.cursor,
            transactions=[new_tx],
        )
    with pytest.raises(Exception, match="UNIQUE"):  # a transaction stored already: all refused
        store.append(
            "ledger",
            expected=cursor,
            blocks=[new_header],
            events=[],
            cursor=new_header.cursor,
            transactions=[transactions[0]],
        )
    assert indexer.cursor() == cursor and indexer.events() == before and indexer.transactions() == transactions
    assert store.block(new_header.number) is None
    with store.store.session() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEvent)) == len(before)
        assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == len(transactions)


# ---- schema ------------------------------------------------------------------------------------


def _diff_table(entry: Any) -> str | None:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(entry, list):  # column modifications: [(op, schema, table, column, ...)]
        return str(entry[0][2])
    obj = entry[1] if len(entry) == 2 else entry[3] if entry[0].endswith("column") else entry[1]
    table = getattr(obj, "table", obj)
    name = getattr(table, "name", None)
    return str(name) if name is not None else str(entry[2])


def _index_schema_diff(store: Store) -> list[Any]:
    """Alembic's differences between the database and the indexer's models, on the indexer's tables."""
    metadata = MetaData()
    for table in INDEX_TABLES:
        table.to_metadata(metadata)
    names = {t.name for t in INDEX_TABLES}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diff if _diff_table(d) in names]


def _schema(store: Store) -> dict[str, Any]:
    """The reflected schema of the indexer's tables in ``store`` (columns, keys, indexes, constraints)."""
    with store.engine.connect() as conn:
        inspector = inspect(conn)
        return {
            table: {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
                ),
            }
            for table in inspector.get_table_names()
            if table in {t.name for t in INDEX_TABLES}
        }


def _migrate(store: Store, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parents[2] / "db" / "migrations"))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migrations_match_the_models(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "schema.sqlite")
    assert _index_schema_diff(store) == []
    names = {t.name for t in INDEX_TABLES}
    assert _schema(store).keys() == names
    at_0003 = Store(f"sqlite:///{tmp_path / 'at-0003.sqlite'}", migrate=False)
    _migrate(at_0003, "0003")
    expected = _schema(at_0003)
    at_0003.dispose()
    assert expected.keys() == names - {"ledger_transactions"}

    _migrate(store, "0003", down=True)  # 0004 undone: exactly the schema of 0003, every index kept
    assert _schema(store) == expected
    assert not {"deadline", "signature"} & {c[0] for c in expected["ledger_events"]["columns"]}
    _migrate(store, "0002", down=True)
    assert _schema(store) == {}
    store.migrate()
    assert _schema(store).keys() == names
    assert _index_schema_diff(store) == []
    store.dispose()


def test_migrations_match_the_models_on_postgresql(pg_store: SqlIndexStore) -> None:
    store = pg_store.store
    assert _index_schema_diff(store) == []
    _migrate(store, "0003", down=True)
    schema = _schema(store)
    assert "ledger_transactions" not in schema
    assert not {"deadline", "signature"} & {c[0] for c in schema["ledger_events"]["columns"]}
    _migrate(store, "head")
    assert _index_schema_diff(store) == []


class CappedProvider(HTTPProvider):
    """Refuses ``eth_getLogs`` over more than ``cap`` blocks, as public nodes do."""

    def __init__(self, url: str, cap: int) -> None:
        super().__init__(url, exception_retry_configuration=None)
        self.cap, self.refused = cap, 0

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method == "eth_getLogs" and int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) >= self.cap:
            self.refused += 1
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "query exceeds max block range"}}
        return super().make_request(method, params)


def test_refused_log_ranges_are_split(
    world: World, index_db: Callable[[str], SqlIndexStore], compiled: CompilationResult
) -> None:
    populate(world)
    assert world.deployed.node.url is not None
    provider = CappedProvider(world.deployed.node.url, cap=5)
    indexer = Indexer(ledger=_ledger_on(world.deployed, compiled, provider), store=index_db("index"))
    report = indexer.sync()
    assert provider.refused > 0 and report.caught_up
    assert index_view(indexer.events()) == chain_view(world.ledger)


def test_logs_the_abi_does_not_decode_are_kept_raw(world: World, index_db: Callable[[str], SqlIndexStore]) -> None:
    indexer = Indexer(ledger=world.ledger, store=index_db("index"))
    revoked_topic = Web3.keccak(text="GrantRevoked(bytes32,address)").to_0x_hex()
    base = {
        "address": world.ledger.consent.address.lower(),
        "data": "0x",
        "blockNumber": "0x10",
        "blockHash": "0x" + "11" * 32,
        "logIndex": "0x2",
        "transactionHash": "0x" + "22" * 32,
        "transactionIndex": "0x0",
    }
    unknown = indexer._decode({**base, "topics": ["0x" + "33" * 32]})
    assert unknown.event == "Unknown" and unknown.args == {"topics": ["0x" + "33" * 32], "data": "0x"}
    assert (unknown.block_number, unknown.log_index) == (16, 2)
    malformed = indexer._decode({**base, "topics": [revoked_topic]})  # its indexed arguments are missing
    assert malformed.event == "Unknown" and malformed.grant_id is None
    grant_id, subject = "0x" + "44" * 32, world.citizen.address
    good = indexer._decode({**base, "topics": [revoked_topic, grant_id, "0x" + "00" * 12 + subject[2:].lower()]})
    assert good.event == "GrantRevoked" and good.args == {"grantId": grant_id, "subject": subject}
    assert (good.grant_id, good.subject) == (grant_id, subject)
