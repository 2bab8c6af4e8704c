"""The relayer's rules against a fake node that behaves like a Besu consortium node (DESIGN.md
"Scale beyond one machine"): at most 50 calls per JSON-RPC batch, ``eth_sendRawTransaction`` only,
a pool that drops a transaction behind a nonce gap, a transaction lost by the node, nonce too low."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.providers.base import BaseProvider

from chain_client import CompilationResult
from chain_client.relayer import MAX_BATCH_CALLS, RawSender, SendRefused

BASE_FEE = 7 * 10**9


class FakeBesu(BaseProvider):
    """Just enough of a node: nonces, a pool that can lose transactions, receipts, batch limit 50."""

    def __init__(self) -> None:
        super().__init__()
        self.mined: dict[str, dict[str, Any]] = {}
        self.pool: dict[str, int] = {}  # tx hash -> nonce
        self.next_nonce = 0  # lowest unmined nonce
        self.lose_next = 0  # transactions to accept and then forget
        self.batches: list[int] = []
        self.sent: list[str] = []

    # single calls
    def make_request(self, method: Any, params: Any) -> Any:
        return {"jsonrpc": "2.0", "id": 1, **self._answer(str(method), list(params))}

    def make_batch_request(self, requests: Any) -> Any:
        calls = list(requests)
        self.batches.append(len(calls))
        if len(calls) > MAX_BATCH_CALLS:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "batch size limit exceeded"}}
        return [{"jsonrpc": "2.0", "id": i, **self._answer(str(m), list(p))} for i, (m, p) in enumerate(calls)]

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_getBlockByNumber":
            return {"result": {"number": hex(len(self.mined)), "baseFeePerGas": hex(BASE_FEE)}}
        if method == "eth_getTransactionCount":
            pending = self.next_nonce + len(self.pool)
            return {"result": hex(pending if params[1] == "pending" else self.next_nonce)}
        if method == "eth_sendRawTransaction":
            raw = bytes.fromhex(params[0][2:])
            tx_hash = "0x" + keccak(raw).hex()
            nonce = _nonce(raw)
            self.sent.append(tx_hash)
            if tx_hash in self.pool or tx_hash in self.mined:
                return {"error": {"code": -32000, "message": "Known transaction"}}
            if nonce < self.next_nonce:
                return {"error": {"code": -32001, "message": "Nonce too low"}}
            if nonce > self.next_nonce + len(self.pool):
                return {"error": {"code": -32000, "message": "Nonce too distant from current sender nonce"}}
            if self.lose_next:
                self.lose_next -= 1
                return {"result": tx_hash}  # accepted, then lost (a restarted or pruning node)
            self.pool[tx_hash] = nonce
            return {"result": tx_hash}
        if method == "eth_getTransactionReceipt":
            return {"result": self.mined.get(params[0])}
        if method == "eth_getTransactionByHash":
            known = params[0] in self.pool or params[0] in self.mined
            return {"result": {"hash": params[0]} if known else None}
        if method == "eth_chainId":
            return {"result": hex(2026)}
        return {"error": {"code": -32601, "message": f"method {method} not found"}}

    def mine(self) -> None:
        for tx_hash, nonce in sorted(self.pool.items(), key=lambda item: item[1]):
            if nonce != self.next_nonce:
                break
            self.mined[tx_hash] = {
                "transactionHash": tx_hash,
                "status": "0x1",
                "blockNumber": hex(len(self.mined) + 1),
                "logs": [],
            }
            del self.pool[tx_hash]
            self.next_nonce += 1


def _nonce(raw: bytes) -> int:
    body = rlp.decode(raw[1:]) if raw[0] < 0x7F else rlp.decode(raw)
    nonce_field = body[1] if raw[0] < 0x7F else body[0]
    return int.from_bytes(nonce_field, "big")


@pytest.fixture
def node() -> FakeBesu:
    return FakeBesu()


def _sender(node: FakeBesu) -> RawSender:
    return RawSender(w3=Web3(node), account=Account.create(), chain_id=2026)


def test_receipts_are_read_in_batches_of_at_most_50(node: FakeBesu) -> None:
    sender = _sender(node)
    hashes = []
    for _ in range(120):
        tx = sender.sign("0x" + "11" * 20, b"\x01", 50_000)
        sender.send(tx)
        hashes.append(tx.tx_hash)
    node.mine()
    found = sender.receipts(hashes)
    assert all(found[h] is not None for h in hashes)
    assert node.batches and max(node.batches) <= MAX_BATCH_CALLS
    assert sum(node.batches) == 120


def test_fees_follow_the_base_fee_not_the_nodes_suggestion(node: FakeBesu) -> None:
    tx = _sender(node).sign("0x" + "11" * 20, b"", 30_000)
    assert tx.raw[0] == 2  # EIP-1559
    assert _sender(node).fees() == {"maxFeePerGas": 2 * BASE_FEE + 10**9, "maxPriorityFeePerGas": 10**9}


def test_a_free_gas_network_pays_nothing(node: FakeBesu, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("tests.chain_client.test_relayer.BASE_FEE", 0)
    assert _sender(node).fees() == {"maxFeePerGas": 0, "maxPriorityFeePerGas": 0}


def test_nonce_too_low_resyncs_from_the_node(node: FakeBesu) -> None:
    sender = _sender(node)
    first = sender.sign("0x" + "11" * 20, b"", 30_000)
    sender.send(first)
    node.mine()
    stale = sender.sign("0x" + "11" * 20, b"\x02", 30_000, nonce=0)  # another transaction with a used nonce
    with pytest.raises(SendRefused):
        sender.send(stale)
    fresh = sender.sign("0x" + "11" * 20, b"", 30_000)
    assert fresh.nonce == 1  # asked the node again
    sender.send(fresh)


def test_a_gap_the_pool_refuses_is_resent_from_the_lowest_unmined_nonce(node: FakeBesu) -> None:
    sender = _sender(node)
    lost = sender.sign("0x" + "11" * 20, b"", 30_000)
    node.lose_next = 1
    sender.send(lost)  # accepted, then lost: nonce 0 never reaches a block
    behind = sender.sign("0x" + "11" * 20, b"", 30_000)  # nonce 1: behind a gap
    with pytest.raises(SendRefused):
        sender.send(behind)
    retry = sender.sign("0x" + "11" * 20, b"", 30_000)
    assert retry.nonce == 0  # resent from the lowest unmined nonce
    sender.send(retry)
    node.mine()
    assert sender.receipt(retry.tx_hash) is not None


def test_the_release_relayer_sends_a_lost_transaction_again(
    node: FakeBesu, compiled: CompilationResult, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from vault import releases

    monkeypatch.setattr(releases, "LOST_AFTER", 0.05)
    abi = compiled["ConsentLedger"].abi
    ledger = SimpleNamespace(consent=SimpleNamespace(address="0x" + "22" * 20, abi=abi))
    relayer = releases.ReleaseRelayer(store=None, ledger=ledger, sender=_sender(node), receipt_timeout=5)  # type: ignore[arg-type]
    applied: list[str] = []
    relayer._apply = lambda receipt, tx_hash: applied.append(tx_hash) or []  # type: ignore[method-assign]
    tx = relayer.sender.sign("0x" + "22" * 20, b"\x01", 50_000)
    node.lose_next = 1
    relayer.sender.send(tx)
    assert not relayer.sender.known(tx.tx_hash)  # the node lost it
    now = time.monotonic()
    relayer._flights.append(releases._Flight(tx=tx, ids=[], group=True, sent=now, look_at=now + 0.05, deadline=now + 5))

    def mine_later() -> None:
        deadline = time.monotonic() + 5
        while tx.tx_hash not in node.pool and time.monotonic() < deadline:
            time.sleep(0.01)
        node.mine()

    miner = threading.Thread(target=mine_later)
    miner.start()
    relayer._drain([])
    miner.join()
    assert applied == [tx.tx_hash] and relayer.in_flight == 0
    assert node.sent.count(tx.tx_hash) == 2  # the same bytes, sent again


def test_the_pipeline_applies_receipts_oldest_first_and_reads_them_in_one_batch(
    node: FakeBesu, compiled: CompilationResult
) -> None:
    """Three transactions in flight; the node mines them in one block: their receipts are read
    in one JSON-RPC batch and applied in nonce order (the chain's order), none before an older
    one is mined."""
    import time

    from vault import releases

    abi = compiled["ConsentLedger"].abi
    ledger = SimpleNamespace(consent=SimpleNamespace(address="0x" + "22" * 20, abi=abi))
    relayer = releases.ReleaseRelayer(store=None, ledger=ledger, sender=_sender(node), receipt_timeout=5)  # type: ignore[arg-type]
    applied: list[str] = []
    relayer._apply = lambda receipt, tx_hash: applied.append(tx_hash) or []  # type: ignore[method-assign]
    sent = []
    for _ in range(3):
        tx = relayer.sender.sign("0x" + "22" * 20, b"\x01", 50_000)
        relayer.sender.send(tx)
        now = time.monotonic()
        relayer._flights.append(
            releases._Flight(tx=tx, ids=[], group=True, sent=now, look_at=now + 60, deadline=now + 60)
        )
        sent.append(tx.tx_hash)
    relayer._settle([])
    assert applied == []  # nothing mined: nothing applied
    node.batches.clear()
    node.mine()
    relayer._settle([])
    assert applied == sent  # oldest first
    assert node.batches == [3]  # one batch for the three receipts
    assert relayer.in_flight == 0 and relayer.groups == 3


def test_the_call_group_keeps_up_to_depth_multicalls_in_flight(node: FakeBesu, compiled: CompilationResult) -> None:
    """Grants, revocations and pauses do not wait for the previous group's block: each group is
    sent while earlier ones are unmined, up to ``depth``; the next waits for a free place."""
    import time

    from chain_client.relayer.group import CallGroup

    group = CallGroup(
        sender=_sender(node),
        ledger_address="0x" + "22" * 20,
        abi=compiled["ConsentLedger"].abi,  # type: ignore[arg-type]
        decoder=None,
        depth=3,
        linger=0.0,
    )

    def until(condition: Any) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    try:
        futures = []
        for wave in range(3):
            futures.append(group.submit(bytes([wave + 1])))
            until(lambda wave=wave: len(node.pool) == wave + 1)  # sent: nothing is mined
        fourth = group.submit(b"\x09")
        time.sleep(0.3)
        assert group.in_flight == 3 and len(node.pool) == 3 and not fourth.done()  # no place for it
        node.mine()
        receipts = [f.result(timeout=10) for f in futures]
        assert len({r.tx_hash for r in receipts}) == 3  # three transactions, one block's worth
        until(lambda: len(node.pool) == 1)  # a place freed: the fourth is sent
        node.mine()
        assert fourth.result(timeout=10).tx_hash not in {r.tx_hash for r in receipts}
        assert group.groups == 4 and group.calls == 4
        until(lambda: group.in_flight == 0)
    finally:
        group.stop()


def test_a_turn_that_fails_after_settling_still_wakes_the_settled_callers(
    node: FakeBesu, compiled: CompilationResult
) -> None:
    import time

    from db.store import StoreUnavailable
    from vault import releases

    abi = compiled["ConsentLedger"].abi
    ledger = SimpleNamespace(consent=SimpleNamespace(address="0x" + "22" * 20, abi=abi))
    woken: list[str] = []
    relayer = releases.ReleaseRelayer(
        store=None,  # type: ignore[arg-type]
        ledger=ledger,  # type: ignore[arg-type]
        sender=_sender(node),
        notify=woken.extend,
        receipt_timeout=5,
    )
    relayer._apply = lambda receipt, tx_hash: ["intent-1", "intent-2"]  # type: ignore[method-assign]

    def store_down(done: list[str]) -> int:
        raise StoreUnavailable("the database is locked")

    relayer._launch = store_down  # type: ignore[method-assign]
    tx = relayer.sender.sign("0x" + "22" * 20, b"\x01", 50_000)
    relayer.sender.send(tx)
    now = time.monotonic()
    relayer._flights.append(releases._Flight(tx=tx, ids=[], group=True, sent=now, look_at=now + 60, deadline=now + 60))
    node.mine()
    with pytest.raises(StoreUnavailable):
        relayer.pump()
    assert woken == ["intent-1", "intent-2"]  # settled before the failure: their callers are told


def test_the_block_pace_spreads_a_slow_blocks_groups_over_its_interval() -> None:
    from chain_client.relayer import BlockPace

    pace = BlockPace()
    assert pace.linger(4, 0.05) == 0.05  # nothing seen yet: the floor
    for waited in (0.01, 2.0, 1.5, 1.0, 0.5):  # a 2 s block: sent just after it waits longest
        pace.observe(waited)
    assert pace.interval == pytest.approx(2.0 * BlockPace.DECAY**3)  # the longest wait, decayed thrice
    assert pace.linger(4, 0.05) == pytest.approx(pace.interval / 4)
    pace.observe(30.0)  # a transaction the node lost and got again
    assert pace.linger(4, 0.05) == 1.0  # never more than the ceiling
    for _ in range(200):
        pace.observe(0.002)  # a node that mines at once
    assert pace.linger(4, 0.05) == 0.05
