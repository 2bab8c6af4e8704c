"""The relayer's nonce handling one rule at a time, against the fake Besu node of test_relayer.py and
a clock of the test's own: where a nonce comes from (:class:`chain_client.NonceManager`, the node's
pending count, once), what a refusal does (resync, fees read again), what :meth:`RawSender.heal`
finds and does for each state of the node, the bytes :meth:`RawSender.fill` sends, the receipts'
batches, :meth:`RawSender.wait`'s polling and healing schedule, and :func:`chain_client._tx.guard`."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TimeExhausted

import chain_client.relayer as relayer
from chain_client._tx import NonceManager, guard
from chain_client.errors import ChainUnavailable
from chain_client.relayer import FILL_GAS, MAX_BATCH_CALLS, PRIORITY_FEE, RawSender, SendRefused, SignedTx
from tests.chain_client.test_relayer import FakeBesu

TO = "0x" + "ab" * 20
CHAIN_ID = 2026


class Node(FakeBesu):
    """FakeBesu with a base fee (None: a chain without EIP-1559), a gas price, a missing latest block,
    scripted refusals of ``eth_sendRawTransaction`` (and of bytes not written as the JSON-RPC spec
    writes them), a pool that may queue transactions behind a nonce gap
    (``queue_gaps``), and every call and sent transaction recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.base_fee: int | None = 7 * 10**9
        self.gas_price = 3
        self.no_block = False
        self.refuse: list[dict[str, Any]] = []  # errors the next sends get, in order
        self.queue_gaps = False
        self.calls: list[tuple[str, list[Any]]] = []
        self.raw_sent: list[bytes] = []

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.calls.append((method, params))
        if method == "eth_getTransactionCount" and params[1] not in ("latest", "pending"):
            return {"error": {"code": -32602, "message": f"unknown block tag {params[1]!r}"}}
        if method == "eth_getBlockByNumber":
            if params != ["latest", False]:  # the latest block, without its transactions
                return {"error": {"code": -32602, "message": f"unexpected parameters {params!r}"}}
            if self.no_block:
                return {"result": None}
            block: dict[str, Any] = {"number": hex(len(self.mined))}
            if self.base_fee is not None:
                block["baseFeePerGas"] = hex(self.base_fee)
            return {"result": block}
        if method == "eth_gasPrice":
            return {"result": hex(self.gas_price)}
        if method == "eth_sendRawTransaction":
            if not re.fullmatch("0x([0-9a-f]{2})+", params[0]):  # the JSON-RPC spec's bytes: lower-case 0x
                return {"error": {"code": -32602, "message": f"invalid hex bytes {params[0][:10]!r}"}}
            raw = bytes.fromhex(params[0][2:])
            tx_hash = "0x" + keccak(raw).hex()
            self.raw_sent.append(raw)
            if self.refuse:
                self.sent.append(tx_hash)
                return {"error": self.refuse.pop(0)}
            if self.queue_gaps and tx_hash not in self.pool and tx_hash not in self.mined:
                nonce = int(fields(raw)["nonce"])
                if nonce > self.next_nonce + len(self.pool):
                    self.sent.append(tx_hash)
                    if self.lose_next:
                        self.lose_next -= 1
                    else:
                        self.pool[tx_hash] = nonce
                    return {"result": tx_hash}
        return super()._answer(method, params)

    def called(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def pending_asks(self) -> int:
        """How many times the pending count (where a local nonce counter starts) was asked."""
        return sum(1 for m, p in self.calls if m == "eth_getTransactionCount" and p[1] == "pending")


class Clock:
    """``time.monotonic`` and ``time.sleep`` of the relayer module: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep: list[Any] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()


@pytest.fixture
def node() -> Node:
    return Node()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(relayer, "time", c)
    return c


def sender_of(node: Node, **kwargs: Any) -> RawSender:
    return RawSender(w3=Web3(node), account=Account.create(), chain_id=CHAIN_ID, **kwargs)


def fields(tx: SignedTx | bytes) -> dict[str, Any]:
    raw = tx.raw if isinstance(tx, SignedTx) else tx
    return dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())


# ---- NonceManager and guard ---------------------------------------------------------------------


class CountingEth:
    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.asked: list[tuple[str, str]] = []

    def get_transaction_count(self, address: str, block: str) -> int:
        self.asked.append((address, block))
        return self.pending


def test_nonce_manager_asks_the_node_once_then_counts() -> None:
    eth = CountingEth(7)
    nonces = NonceManager(SimpleW3(eth), "0xabc")  # type: ignore[arg-type]
    assert [nonces.take(), nonces.take(), nonces.take()] == [7, 8, 9]
    assert eth.asked == [("0xabc", "pending")]  # the pending count: the pool's transactions are taken
    eth.pending = 2
    nonces.reset()
    assert eth.asked == [("0xabc", "pending")]  # a reset asks nothing by itself...
    assert [nonces.take(), nonces.take()] == [2, 3]  # ...the next take does
    assert len(eth.asked) == 2


def test_nonce_manager_never_hands_out_a_nonce_twice_across_threads() -> None:
    nonces = NonceManager(SimpleW3(CountingEth(0)), "0xabc")  # type: ignore[arg-type]
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(500):
            n = nonces.take()
            with lock:
                taken.append(n)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(2000))


class SimpleW3:
    def __init__(self, eth: Any, provider: Any = None) -> None:
        self.eth = eth
        self.provider = provider


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        ConnectionResetError("reset"),
        TimeoutError("late"),
        TimeExhausted("no receipt"),
    ],
)
def test_guard_turns_a_connection_failure_into_chain_unavailable(error: Exception) -> None:
    def fail() -> None:
        raise error

    with pytest.raises(ChainUnavailable) as raised:
        guard(fail)
    assert str(raised.value) == f"the chain did not answer: {type(error).__name__}: {error}"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_guard_passes_other_errors_and_results_through() -> None:
    assert guard(lambda: 42) == 42

    def fail() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        guard(fail)


# ---- RawSender: nonces, fees, signing -----------------------------------------------------------


def test_a_sender_takes_its_nonces_from_the_nodes_pending_count(node: Node) -> None:
    node.next_nonce, node.pool = 4, {"0x01": 4, "0x02": 5}
    sender = sender_of(node)
    assert isinstance(sender.nonces, NonceManager) and sender.healed == 0 and sender.stored is None
    assert sender.mined_nonce() == 4  # the latest count, not the pending one
    assert [sender.sign(TO, b"", 30_000).nonce for _ in range(3)] == [6, 7, 8]
    assert node.called("eth_getTransactionCount") == 2  # once for mined_nonce, once for the first take
    node.pool.clear()
    sender.resync()
    assert sender.sign(TO, b"", 30_000).nonce == 4


def test_a_shared_counter_is_used_as_given(node: Node) -> None:
    class Fixed:
        def __init__(self) -> None:
            self.next, self.resets = 40, 0

        def take(self) -> int:
            self.next += 1
            return self.next - 1

        def reset(self) -> None:
            self.resets += 1

    nonces = Fixed()
    sender = sender_of(node, nonces=nonces)
    assert sender.sign(TO, b"", 30_000).nonce == 40
    sender.resync()
    assert nonces.resets == 1
    assert node.called("eth_getTransactionCount") == 0


def test_sign_fills_every_field(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO.upper().replace("0X", "0x"), b"\x01\x02", 45_678)
    signed = fields(tx)
    assert signed["nonce"] == 0 and tx.nonce == 0
    assert signed["gas"] == 45_678
    assert signed["to"] == HexBytes(TO)
    assert signed["value"] == 0 and signed["data"] == HexBytes(b"\x01\x02")
    assert signed["chainId"] == CHAIN_ID
    assert signed["maxFeePerGas"] == 2 * node.base_fee + PRIORITY_FEE  # type: ignore[operator]
    assert signed["maxPriorityFeePerGas"] == PRIORITY_FEE
    assert tx.tx_hash == "0x" + keccak(tx.raw).hex()
    assert Account.recover_transaction(tx.raw) == sender.address
    assert sender.address == sender.account.address
    explicit = sender.sign(TO, b"", 30_000, nonce=17)
    assert explicit.nonce == 17 and fields(explicit)["nonce"] == 17
    assert sender.sign(TO, b"", 30_000).nonce == 1  # an explicit nonce takes none


def test_a_chain_without_a_base_fee_pays_the_nodes_gas_price(node: Node, clock: Clock) -> None:
    node.base_fee = None
    assert sender_of(node).fees() == {"gasPrice": 3}
    node.no_block = True  # no block at all yet
    node.gas_price = 0x1234
    assert sender_of(node).fees() == {"gasPrice": 0x1234}
    tx = sender_of(node).sign(TO, b"", 30_000)
    assert tx.raw[0] > 0x7F  # a legacy transaction
    assert Account.recover_transaction(tx.raw)


def test_a_zero_base_fee_pays_no_tip(node: Node, clock: Clock) -> None:
    node.base_fee = 0
    assert sender_of(node).fees() == {"maxFeePerGas": 0, "maxPriorityFeePerGas": 0}
    node.base_fee = 1
    assert sender_of(node).fees() == {"maxFeePerGas": 2 + PRIORITY_FEE, "maxPriorityFeePerGas": PRIORITY_FEE}


def test_fees_are_reused_for_five_seconds(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    first = sender.fees()
    first["maxFeePerGas"] = 1  # a copy: the cache is not changed through it
    node.base_fee = 9 * 10**9
    clock.now += 5.0
    assert sender.fees() == {"maxFeePerGas": 2 * 7 * 10**9 + PRIORITY_FEE, "maxPriorityFeePerGas": PRIORITY_FEE}
    assert node.called("eth_getBlockByNumber") == 1
    clock.now += 0.001
    assert sender.fees()["maxFeePerGas"] == 2 * 9 * 10**9 + PRIORITY_FEE
    assert node.called("eth_getBlockByNumber") == 2
    assert sender.fees()["maxFeePerGas"] == 2 * 9 * 10**9 + PRIORITY_FEE
    assert node.called("eth_getBlockByNumber") == 2


# ---- RawSender: sending -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message", ["Already known", "transaction ALREADY IMPORTED", "Known transaction", "known transaction: 0xab"]
)
def test_a_transaction_the_node_has_is_not_a_refusal(node: Node, clock: Clock, message: str) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    node.refuse.append({"code": -32000, "message": message})
    sender.send(tx)  # no error
    assert sender.sign(TO, b"", 30_000).nonce == 1  # the local count kept
    assert node.called("eth_getTransactionCount") == 1
    sender.fees()
    assert node.called("eth_getBlockByNumber") == 1  # the fees kept


def test_a_refusal_resyncs_the_nonce_and_forgets_the_fees(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    node.refuse.append({"code": -32001, "message": "Nonce TOO low"})
    with pytest.raises(SendRefused) as refused:
        sender.send(tx)
    assert str(refused.value) == f"the node refused transaction {tx.tx_hash} (nonce 0): nonce too low"
    assert sender.sign(TO, b"", 30_000).nonce == 0  # asked the node again
    assert node.called("eth_getTransactionCount") == 2
    assert node.called("eth_getBlockByNumber") == 2  # and the fees


def test_a_refusal_without_a_message_names_the_whole_error(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    node.refuse.append({"code": -32000})
    with pytest.raises(SendRefused, match=r"\(nonce 0\): \{'code': -32000\}$"):
        sender.send(tx)


def test_a_failed_call_raises_chain_unavailable(node: Node) -> None:
    sender = sender_of(node)
    with pytest.raises(ChainUnavailable, match=r"^eth_nope failed: \{'code': -32601, 'message': 'method eth_nope not"):
        sender._request("eth_nope", [])
    assert sender._request("eth_chainId", []) == hex(2026)


# ---- receipts -----------------------------------------------------------------------------------


def test_receipts_in_batches_of_fifty_and_a_single_call_for_one(node: Node) -> None:
    sender = sender_of(node)
    txs = [sender.sign(TO, bytes([i]), 30_000) for i in range(MAX_BATCH_CALLS * 2 + 1)]
    for tx in txs:
        sender.send(tx)
    node.mine()
    hashes = [tx.tx_hash for tx in txs]
    node.calls.clear()
    found = sender.receipts(hashes)
    assert list(found) == hashes and all(found[h]["transactionHash"] == h for h in hashes)  # type: ignore[index]
    assert node.batches == [MAX_BATCH_CALLS, MAX_BATCH_CALLS]
    assert node.called("eth_getTransactionReceipt") == len(hashes)  # 100 in the batches, the last one alone
    assert sender.receipts([]) == {}
    assert sender.receipts(["0x" + "00" * 32, hashes[0]]) == {"0x" + "00" * 32: None, hashes[0]: found[hashes[0]]}
    assert node.batches[-1] == 2


def test_receipts_one_by_one_without_batches_or_when_a_batch_fails(node: Node) -> None:
    sender = sender_of(node)
    txs = [sender.sign(TO, bytes([i]), 30_000) for i in range(3)]
    for tx in txs:
        sender.send(tx)
    node.mine()
    hashes = [tx.tx_hash for tx in txs] + ["0x" + "00" * 32]

    def refused_batch(calls: Any) -> Any:
        node.batches.append(len(list(calls)))
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "batch size limit exceeded"}}

    node.make_batch_request = refused_batch  # type: ignore[method-assign]
    found = sender.receipts(hashes)
    assert node.batches == [4]
    assert [found[h] is not None for h in hashes] == [True, True, True, False]
    assert node.called("eth_getTransactionReceipt") == 4  # one by one after the refused batch

    class NoBatches:
        def make_request(self, method: Any, params: Any) -> Any:
            return node.make_request(method, params)

    plain = RawSender(w3=SimpleW3(None, NoBatches()), account=sender.account, chain_id=CHAIN_ID)  # type: ignore[arg-type]
    assert plain.receipts(hashes) == found
    assert node.batches == [4]


def test_a_batch_answer_missing_a_response_is_an_error(node: Node) -> None:
    """Receipts are matched to their transactions by position: an answer with fewer responses than
    calls is refused, never read as receipts of the wrong transactions or as "not mined"."""
    sender = sender_of(node)
    txs = [sender.sign(TO, bytes([i]), 30_000) for i in range(3)]
    for tx in txs:
        sender.send(tx)
    node.mine()
    full = node.make_batch_request
    node.make_batch_request = lambda calls: full(calls)[1:]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="zip"):
        sender.receipts([tx.tx_hash for tx in txs])


def test_a_receipt_that_is_not_an_object_is_none(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    node.mined[tx.tx_hash] = "pending"  # type: ignore[assignment]
    assert sender.receipt(tx.tx_hash) is None
    assert sender.receipts([tx.tx_hash, tx.tx_hash]) == {tx.tx_hash: None}


# ---- known, heal, fill --------------------------------------------------------------------------


def test_known_asks_the_node_for_the_transaction(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    assert not sender.known(tx.tx_hash)
    sender.send(tx)
    assert sender.known(tx.tx_hash)
    assert node.calls[-1] == ("eth_getTransactionByHash", [tx.tx_hash])


def test_heal_a_mined_transaction(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    sender.send(tx)
    node.mine()
    node.calls.clear()
    assert sender.heal(tx) == "mined"
    assert [m for m, _ in node.calls] == ["eth_getTransactionReceipt"]
    assert sender.healed == 0


def test_heal_a_transaction_waiting_in_order(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    sender.send(tx)
    assert sender.heal(tx) == "pending"
    assert node.sent == [tx.tx_hash] and sender.healed == 0
    assert sender.sign(TO, b"", 30_000).nonce == 1
    assert node.pending_asks() == 1  # nothing resynced


def test_heal_a_transaction_mined_but_not_served_yet(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    sender.send(tx)
    node.mine()
    del node.mined[tx.tx_hash]  # a lagging node: mined (the count moved), no receipt yet, but known
    node.pool[tx.tx_hash] = 0
    assert sender.mined_nonce() == 1
    assert sender.heal(tx) == "pending"
    assert sender.healed == 0 and node.sent == [tx.tx_hash]
    assert sender.sign(TO, b"", 30_000).nonce == 1
    assert node.pending_asks() == 1  # nothing resynced


def test_heal_a_transaction_whose_nonce_another_took(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"\x01", 30_000)
    other = sender.sign(TO, b"\x02", 30_000, nonce=0)
    sender.send(other)
    node.mine()
    assert [sender.sign(TO, b"", 30_000).nonce for _ in range(2)] == [1, 2]
    assert sender.heal(tx) == "replaced"
    assert sender.healed == 0 and node.sent == [other.tx_hash]  # nothing sent
    assert sender.sign(TO, b"", 30_000).nonce == 1  # resynced: the node's count again


def test_heal_sends_a_lost_transaction_again(node: Node) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    node.lose_next = 1
    sender.send(tx)
    assert sender.heal(tx) == "resent"
    assert node.sent == [tx.tx_hash, tx.tx_hash] and node.pool == {tx.tx_hash: 0}
    assert sender.healed == 1
    node.pool.clear()  # lost again
    assert sender.heal(tx) == "resent"
    assert sender.healed == 2 and node.pool == {tx.tx_hash: 0}
    assert node.pending_asks() == 1  # the nonce counter kept


def test_heal_fills_a_gap_with_stored_bytes_else_empty_transactions(
    node: Node, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sender = sender_of(node)
    node.queue_gaps = True
    lost = [sender.sign(TO, bytes([n]), 30_000) for n in range(3)]  # nonces 0, 1, 2: lost
    waiting = sender.sign(TO, b"\x09", 30_000)  # nonce 3: lost too
    node.lose_next = 4
    for tx in [*lost, waiting]:
        sender.send(tx)
    sender.stored = {1: lost[1].raw}.get
    node.sent.clear()
    node.raw_sent.clear()
    with caplog.at_level(logging.WARNING, logger="chain_client.relayer"):
        assert sender.heal(waiting) == "filled"
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "chain_client.relayer",
            logging.WARNING,
            f"{sender.address}: transaction {waiting.tx_hash} (nonce 3) waits behind a nonce gap from 0; filling it",
        )
    ]
    assert node.sent[0] == waiting.tx_hash  # sent again first (queued behind the gap)...
    filled = node.sent[1:]
    assert filled[1] == lost[1].tx_hash  # ...then nonce 1 from its stored bytes
    assert len(filled) == 3 and filled[0] != lost[0].tx_hash and filled[2] != lost[2].tx_hash
    empty = [fields(raw) for raw in node.raw_sent[1:]]
    for nonce, tx in ((0, empty[0]), (2, empty[2])):
        assert tx["nonce"] == nonce and tx["gas"] == FILL_GAS and tx["value"] == 0 and tx["data"] == HexBytes(b"")
        assert tx["to"] == HexBytes(sender.address) and tx["chainId"] == CHAIN_ID
        assert tx["maxFeePerGas"] == 2 * node.base_fee + PRIORITY_FEE  # type: ignore[operator]
        assert Account.recover_transaction(node.raw_sent[1 + nonce]) == sender.address
    assert sender.healed == 4  # sent again, and three nonces filled
    assert sorted(node.pool.values()) == [0, 1, 2, 3]
    assert sender.heal(waiting) == "filled"  # in the pool: the nonces below it are offered again (known)
    assert sender.healed == 4
    node.mine()
    assert sender.receipt(waiting.tx_hash) is not None
    assert sender.heal(waiting) == "mined"


def test_fill_counts_only_what_the_node_accepted(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    node.queue_gaps = True
    node.refuse.append({"message": "Known transaction"})
    assert sender.fill(0, 3) == 2
    assert sender.healed == 2
    assert sender.fill(3, 3) == 0
    assert sender.fill(5, 4) == 0
    assert sender.healed == 2
    assert [fields(raw)["nonce"] for raw in node.raw_sent] == [0, 1, 2]


# ---- wait ---------------------------------------------------------------------------------------


def test_wait_polls_ever_more_slowly_up_to_a_quarter_second(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    sender.send(tx)
    clock.on_sleep.append(lambda: len(clock.slept) == 11 and node.mine())
    assert sender.wait(tx.tx_hash)["transactionHash"] == tx.tx_hash
    expected = [0.005]
    while len(expected) < 11:
        expected.append(min(expected[-1] * 1.5, 0.25))
    assert clock.slept == pytest.approx(expected)
    assert expected[-1] == 0.25 and expected[-2] < 0.25


def test_wait_gives_up_after_its_timeout(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    start = clock.now
    with pytest.raises(ChainUnavailable, match=rf"^transaction {tx.tx_hash} was not mined within 2 s$"):
        sender.wait(tx.tx_hash, timeout=2.4, poll=0.1)
    assert 2.4 < clock.now - start < 2.4 + 0.26
    assert clock.slept[0] == 0.1
    sender.send(tx)
    clock.on_sleep.append(node.mine)
    assert sender.wait(tx.tx_hash, timeout=0.0)["transactionHash"] == tx.tx_hash  # polled once more at the deadline


def test_wait_gives_up_after_two_minutes_by_default(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    start = clock.now
    with pytest.raises(ChainUnavailable, match=r"was not mined within 120 s$"):
        sender.wait("0x" + "00" * 32)
    assert 120.0 < clock.now - start <= 120.25


def healing_sender(node: Node, clock: Clock, mine_at: int) -> tuple[RawSender, SignedTx, list[float]]:
    """A sender with one transaction sent, whose heal only records when it was called (seconds from
    now) and has the node mine at its ``mine_at``-th call."""
    sender = sender_of(node)
    tx = sender.sign(TO, b"", 30_000)
    sender.send(tx)
    healed: list[float] = []
    start = clock.now

    def heal(signed: SignedTx) -> str:
        assert signed is tx
        healed.append(clock.now - start)
        if len(healed) == mine_at:
            node.mine()
        return "pending"

    sender.heal = heal  # type: ignore[method-assign]
    return sender, tx, healed


def test_wait_heals_every_heal_after_seconds(node: Node, clock: Clock) -> None:
    sender, tx, healed = healing_sender(node, clock, 3)
    assert sender.wait(tx.tx_hash, tx=tx, heal_after=1.0)["transactionHash"] == tx.tx_hash
    assert len(healed) == 3
    assert 1.0 <= healed[0] < 1.26 and 1.0 <= healed[1] - healed[0] < 1.26 and 1.0 <= healed[2] - healed[1] < 1.26
    healed.clear()
    with pytest.raises(ChainUnavailable):  # without the signed bytes nothing is healed
        sender.wait("0x" + "00" * 32, timeout=5.0)
    assert healed == []


def test_wait_heals_at_exactly_heal_after(node: Node, clock: Clock) -> None:
    sender, tx, healed = healing_sender(node, clock, 1)
    sender.wait(tx.tx_hash, tx=tx, heal_after=0.0, poll=0.5)
    assert healed == [0.0] and clock.slept == []  # healed before any sleep, then the receipt read again


def test_wait_stops_at_a_replaced_transaction(node: Node, clock: Clock) -> None:
    sender = sender_of(node)
    tx = sender.sign(TO, b"\x01", 30_000)
    other = sender.sign(TO, b"\x02", 30_000, nonce=0)
    sender.send(other)
    node.mine()
    with pytest.raises(SendRefused, match=rf"^transaction {tx.tx_hash} \(nonce 0\) was replaced; its nonce is used$"):
        sender.wait(tx.tx_hash, tx=tx, heal_after=1.0, timeout=60.0)
    assert clock.now - 1000.0 < 1.3  # at the first heal, not at the timeout
