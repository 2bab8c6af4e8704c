"""The chain indexer: every event kind, resumption, confirmation depth, reorgs, a chain going away."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import MetaData, create_engine, func, select, text
from web3 import Web3
from web3.providers import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from chain_client import ChainUnavailable, CompilationResult, Ledger, Role, eip712, free_port, start_node
from chain_client.ids import new_request_ids
from chain_client.indexer import BlockHeader, IndexConflict, IndexedEvent, Indexer, jsonable
from chain_client.types import EmergencyScope, ReleaseItem
from tests.chain_client.world import ID_CARD, TAX, World, make_world
from tests.conftest import Deployed, deploy_fresh
from vault.index_models import INDEX_TABLES, IndexedBlock, IndexerState, LedgerEvent, SqlIndexStore
from vault.store import Store

PG_ADMIN_URL = os.environ.get("QCL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

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
    "DocumentAnchored",
    "DocumentShredded",
    "CheckpointAnchored",
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
    ledger, admin = world.ledger, world.deployed.admin
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
    for request_id, key in ((ids[0], world.dept.key), (ids[1], world.other_dept.key)):  # the second is refused
        rid, deadline, signature = world.release_request(grant_id, ID_CARD, key=key, request_id=request_id)
        items.append(ReleaseItem(terms, ID_CARD, rid, deadline, signature))
    result = ledger.record_releases(items)
    assert result.recorded == [0] and list(result.rejected) == [1]
    world.revoke(grant_id)
    now = world.now()
    scope = EmergencyScope(
        emergency_id=secrets.token_bytes(32),
        resources=(ID_CARD,),
        consumers=(world.dept.address,),
        valid_from=now - 10,
        valid_until=now + 3600,
        reason=eip712.keccak(text="flood response"),
        deadline=now + 600,
    )
    ledger.propose_emergency(scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), admin.key))
    ledger.approve_emergency(scope, eip712.sign(ledger.domain(), "Emergency", scope.message(), world.auditor.key))
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
    document_id = secrets.token_bytes(32)
    ledger.anchor_document(document_id, world.citizen.address, ID_CARD, secrets.token_bytes(32), world.provider.address)
    ledger.shred_document(document_id)
    ledger.anchor_checkpoint(3, b"\x01" * 32)
    ledger.anchor_checkpoint(7, b"\x02" * 32)
    return {"grant_id": grant_id, "emergency_id": scope.emergency_id, "document_id": document_id}


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


def stored_blocks(store: SqlIndexStore) -> dict[int, str]:
    return {b.number: b.hash for b in store.blocks_below(2**62, 10**6)}


def chain_hash(w3: Web3, number: int) -> str:
    return HexBytes(w3.eth.get_block(number)["hash"]).to_0x_hex()


def assert_consistent(indexer: Indexer, store: SqlIndexStore) -> None:
    """The index is a prefix of the chain: cursor = highest stored block, everything on the chain."""
    cursor = indexer.cursor()
    blocks = stored_blocks(store)
    events = indexer.events()
    if cursor is None:
        assert not blocks and not events
        return
    assert max(blocks) == cursor.number and blocks[cursor.number] == cursor.hash
    for number, block_hash in blocks.items():
        assert chain_hash(indexer.w3, number) == block_hash, number
    assert all(e.block_number <= cursor.number and blocks[e.block_number] == e.block_hash for e in events)
    assert index_view(events) == chain_view(indexer.ledger, from_block=indexer.start_block, to_block=cursor.number)


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in response, response
    return response.get("result")


# ---- indexing ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlIndexStore]:
    if request.param == "sqlite":
        store = Store.sqlite(tmp_path / "index.sqlite")
        yield SqlIndexStore(store)
        store.dispose()
        return
    name = f"qcl_idx_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - no server: the SQLite run covers the logic
        admin.dispose()
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}: {exc}")
    store = Store(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    try:
        yield SqlIndexStore(store)
    finally:
        store.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
    assert report.events == 2 and report.blocks == 2
    assert index_view(third.events()) == chain_view(ledger)
    assert third.sync().batches == 0  # nothing new
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

    # three blocks that will be orphaned: a grant, a release, a revocation
    orphan_terms, orphan = world.grant()
    world.release(orphan_terms, orphan)
    world.revoke(orphan)
    assert indexer.sync().events == 3
    orphaned_hashes = {n: chain_hash(w3, n) for n in range(fork + 1, fork + 4)}
    assert all(stored_blocks(store)[n] == h for n, h in orphaned_hashes.items())

    if how == "replace":  # same height, other blocks: a different grant in the second of them
        nonce = w3.eth.get_transaction_count(admin.address, fork)  # type: ignore[arg-type]
        rpc(w3, "anvil_reorg", [3, [[_signed_grant(world, admin, nonce), 1]]])
        assert ledger.head_block() == fork + 3
    else:  # the chain gets shorter first, then grows other blocks
        rpc(w3, "anvil_rollback", [3])
        assert ledger.head_block() == fork
        report = indexer.sync()
        assert report.reorgs == 1 and report.rolled_back_blocks == 3 and report.rolled_back_events == 3
        assert report.cursor == fork and report.events == 0
    ledger.tx.nonces.reset()
    assert all(chain_hash(w3, n) != h for n, h in orphaned_hashes.items() if n <= ledger.head_block())
    _, replacement = world.grant()

    report = indexer.sync()
    if how == "replace":
        assert report.reorgs == 1 and report.rolled_back_blocks == 3 and report.rolled_back_events == 3
    else:
        assert report.reorgs == 0  # already rolled back above
    assert not indexer.events(grant_id=orphan)
    assert [e.event for e in indexer.events(grant_id=replacement)] == ["GrantRecorded"]
    assert [e.event for e in indexer.events(grant_id=kept)] == ["GrantRecorded", "ReleaseRecorded"]

    fresh_store = index_db("fresh")
    fresh = Indexer(ledger=ledger, store=fresh_store)
    fresh.sync()
    assert index_view(indexer.events()) == index_view(fresh.events()) == chain_view(ledger)
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


def test_reorg_while_a_batch_is_read(
    own_chain: Deployed, index_db: Callable[[str], SqlIndexStore], compiled: CompilationResult
) -> None:
    world = make_world(own_chain)
    populate(world)
    head = world.ledger.head_block()
    node_w3 = own_chain.node.w3
    fired: list[int] = []

    def hook(method: str, params: Any) -> None:
        # when the batch that ends at the head asks for its logs, replace the last 4 blocks:
        # the batch's blocks and the cursor it extends change between its reads
        if method == "eth_getLogs" and params[0]["toBlock"] == hex(head) and not fired:
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
    before = indexer.events()
    new_header = BlockHeader(number=cursor.number + 1, hash="0x" + "ab" * 32, parent_hash=cursor.hash, timestamp=0)
    with pytest.raises(IndexConflict):  # another indexer moved the cursor meanwhile
        store.append("ledger", expected=None, blocks=[], events=[], cursor=cursor)
    with pytest.raises(Exception, match="UNIQUE"):  # a new block, but a duplicate event: all refused
        store.append("ledger", expected=cursor, blocks=[new_header], events=before[:1], cursor=new_header.cursor)
    assert indexer.cursor() == cursor and indexer.events() == before
    assert store.block(new_header.number) is None
    with store.store.session() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEvent)) == len(before)


# ---- schema ------------------------------------------------------------------------------------


def _diff_table(entry: Any) -> str | None:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(entry, list):  # column modifications: [(op, schema, table, column, ...)]
        return str(entry[0][2])
    obj = entry[1] if len(entry) == 2 else entry[3] if entry[0].endswith("column") else entry[1]
    table = getattr(obj, "table", obj)
    name = getattr(table, "name", None)
    return str(name) if name is not None else str(entry[2])


def test_migration_0003_matches_the_models(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "schema.sqlite")
    metadata = MetaData()
    for table in INDEX_TABLES:
        table.to_metadata(metadata)
    names = {t.name for t in INDEX_TABLES}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in diff if _diff_table(d) in names]
    assert ours == []

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parents[2] / "vault" / "migrations"))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    with store.engine.connect() as conn:
        tables = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars())
    assert not tables & names
    store.migrate()
    with store.engine.connect() as conn:
        tables = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars())
    assert names <= tables
    store.dispose()


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
