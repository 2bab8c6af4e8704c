"""Locally signed transactions: in-process nonces, receipts, decoded reverts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import RPCEndpoint

from ._revert import RevertDecoder, revert_data
from .errors import ChainUnavailable, TransactionFailed

if TYPE_CHECKING:
    from .relayer import SignedTx

try:  # eth-tester (in-process py-evm) raises its own type for reverts
    from eth_tester.exceptions import TransactionFailed as _EthTesterFailed
except ImportError:  # pragma: no cover - eth-tester is optional at run time
    _EthTesterFailed = ContractLogicError  # type: ignore[misc,assignment]

_REVERTS = (ContractCustomError, ContractLogicError, Web3RPCError, _EthTesterFailed)
_CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, TimeExhausted)


@dataclass(frozen=True)
class Receipt:
    """What callers need from a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: str | None
    logs: list[Any]
    raw: Any


class Nonces(Protocol):
    """Where an account's next nonce comes from: :class:`NonceManager` in one process, or a
    counter several processes share (``db.nonces.SharedNonces``)."""

    def take(self) -> int: ...

    def reset(self) -> None: ...


class NonceManager:
    """Hands out consecutive nonces for one account without asking the node each time."""

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self._address = address
        self._lock = threading.Lock()
        self._next: int | None = None

    def take(self) -> int:
        with self._lock:
            if self._next is None:
                self._next = int(self._w3.eth.get_transaction_count(self._address, "pending"))  # type: ignore[arg-type]
            nonce = self._next
            self._next += 1
            return nonce

    def reset(self) -> None:
        """Forget the local count; the next :meth:`take` asks the node again."""
        with self._lock:
            self._next = None


class Transactor:
    """Signs transactions of one account locally and sends them, one at a time or in a row."""

    def __init__(
        self, *, w3: Web3, account: LocalAccount, decoder: RevertDecoder, receipt_timeout: float = 120.0
    ) -> None:
        self.w3 = w3
        self.account = account
        self.decoder = decoder
        self.nonces: Nonces = NonceManager(w3, account.address)
        self.receipt_timeout = receipt_timeout
        self._chain_id: int | None = None
        self._sent_lock = threading.Lock()
        #: The signed bytes of recent transactions, so a lost one can be sent again while waiting.
        self._sent: dict[str, tuple[int, bytes]] = {}
        #: Told each signed transaction before it is sent, and each mined one: a process with a
        #: database stores them (``relayer_transactions``, vault/reconcile.py ``keep_transactions``)
        #: and gives :attr:`stored`, so that a nonce gap of this account is filled with the very
        #: bytes that were lost and a chain that came back behind gets them again.
        self.on_signed: Callable[[SignedTx], None] | None = None
        self.on_mined: Callable[[str], None] | None = None
        self.stored: Callable[[int], bytes | None] | None = None

    def _wait_receipt(self, tx_hash: str) -> Any:
        """The receipt of a transaction sent by :meth:`send`, looked after while it waits (a node
        that lost it, a nonce gap below it: :meth:`chain_client.relayer.RawSender.heal`)."""
        from .relayer import RawSender, SignedTx

        with self._sent_lock:
            sent = self._sent.get(tx_hash)
        if sent is None:
            receipt = guard(
                lambda: self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=self.receipt_timeout)
            )
        else:
            sender = RawSender(w3=self.w3, account=self.account, chain_id=self.chain_id, nonces=self.nonces)
            sender.stored = self.stored
            signed = SignedTx(tx_hash=tx_hash, nonce=sent[0], raw=sent[1])
            sender.wait(tx_hash, timeout=self.receipt_timeout, tx=signed)
            with self._sent_lock:
                self._sent.pop(tx_hash, None)
            receipt = guard(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        if self.on_mined is not None:
            self.on_mined(tx_hash)
        return receipt

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(guard(lambda: self.w3.eth.chain_id))
        return self._chain_id

    def call(self, fn: ContractFunction) -> Any:
        """A read-only call; custom-error reverts become typed exceptions."""
        try:
            return guard(lambda: fn.call({"from": self.address}))
        except _REVERTS as exc:
            raise self.decoder.decode(revert_data(exc)) from None

    def transact(self, fn: ContractFunction | ContractConstructor, *, gas: int | None = None) -> Receipt:
        """Sign and send ``fn``; wait for its receipt; raise the decoded revert if it failed."""
        tx_hash = self.send(fn, gas=gas)
        return self.wait(tx_hash, fn)

    def send(self, fn: ContractFunction | ContractConstructor, *, gas: int | None = None) -> str:
        """Sign and send ``fn`` without waiting; returns the transaction hash."""
        params: dict[str, Any] = {"from": self.address, "chainId": self.chain_id}
        if gas is not None:
            params["gas"] = gas
        try:
            tx = guard(lambda: fn.build_transaction(params))  # type: ignore[arg-type]
        except _REVERTS as exc:
            raise self.decoder.decode(revert_data(exc)) from None
        if gas is None:
            tx["gas"] = int(tx["gas"] * 1.2) + 10_000
        tx["nonce"] = self.nonces.take()
        signed = self.account.sign_transaction(tx)
        try:
            if self.on_signed is not None:  # stored before it leaves the process
                from .relayer import SignedTx

                raw = bytes(signed.raw_transaction)
                self.on_signed(SignedTx(tx_hash=signed.hash.to_0x_hex(), nonce=int(tx["nonce"]), raw=raw))
            sent = guard(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction)).to_0x_hex()
        except BaseException:
            self.nonces.reset()
            raise
        with self._sent_lock:
            self._sent[sent] = (int(tx["nonce"]), bytes(signed.raw_transaction))
            while len(self._sent) > 256:
                self._sent.pop(next(iter(self._sent)))
        return str(sent)

    def wait(self, tx_hash: str, fn: ContractFunction | ContractConstructor | None = None) -> Receipt:
        raw = self._wait_receipt(tx_hash)
        if raw["status"] != 1:
            raise self._failure(raw, tx_hash, fn)
        address = raw.get("contractAddress")
        return Receipt(
            tx_hash=tx_hash,
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            contract_address=str(address) if address else None,
            logs=list(raw["logs"]),
            raw=raw,
        )

    def _failure(self, raw: Any, tx_hash: str, fn: ContractFunction | ContractConstructor | None) -> Exception:
        """Recover the revert data of a mined, failed transaction.

        A call tracer (anvil, Hardhat, geth, Besu) gives the exact output, also when earlier
        transactions of the same block caused the failure; otherwise replay it as a call on the
        state before its block.
        """
        try:
            trace = self.w3.provider.make_request(
                RPCEndpoint("debug_traceTransaction"), [tx_hash, {"tracer": "callTracer"}]
            )
            output = (trace.get("result") or {}).get("output")
            if isinstance(output, str) and len(output) >= 10:
                return self.decoder.decode(output, tx_hash=tx_hash)
        except Exception:  # noqa: BLE001 - tracing is optional on a node
            pass
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"], "value": tx["value"]}
        try:
            self.w3.eth.call(call, raw["blockNumber"] - 1)  # type: ignore[arg-type]
        except _REVERTS as exc:
            err = self.decoder.decode(revert_data(exc), tx_hash=tx_hash)
            return err
        except Exception:  # noqa: BLE001 - replay is best effort
            pass
        return TransactionFailed(f"transaction {tx_hash} reverted", tx_hash=tx_hash)


def guard(thunk: Any) -> Any:
    """Run ``thunk``; connection failures become :class:`ChainUnavailable`."""
    try:
        return thunk()
    except _CONNECTION_ERRORS as exc:
        raise ChainUnavailable(f"the chain did not answer: {exc.__class__.__name__}: {exc}") from None
