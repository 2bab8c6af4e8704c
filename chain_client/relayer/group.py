"""Group commit of independent ledger calls (grants, revocations, pauses) through ``multicall``.

Callers hand in a call's calldata and get a :class:`concurrent.futures.Future`; one thread takes
every call that arrived while the previous transaction was being mined and sends them as ONE
``multicall`` transaction (signed here, fixed gas, see :class:`~chain_client.relayer.RawSender`).
The contract runs each call on its own: a refused call emits ``CallFailed`` with its revert data,
which resolves that caller's future with the typed error, and does not undo the others.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import encode as abi_encode
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes

from ..errors import ChainError, ChainUnavailable
from . import RawSender, SendRefused, SignedTx

log = logging.getLogger(__name__)

#: Calls in one multicall transaction (the contract takes up to 256).
MAX_CALLS = 100
#: Gas of a multicall transaction: a fixed part and one per call (a grant costs about 50,000 in a
#: group, a first nonce of a bitmap word 17,000 more; unused gas is not paid for).
GAS_BASE = 60_000
GAS_PER_CALL = 110_000
_CALL_FAILED = keccak(text="CallFailed(uint256,bytes)")


@dataclass(frozen=True)
class CallReceipt:
    """Where a call of a group was recorded."""

    tx_hash: str
    block_number: int


class CallGroup:
    """One account's group commit of ledger calls. ``decoder`` turns revert data into typed errors."""

    def __init__(
        self,
        *,
        sender: RawSender,
        ledger_address: str,
        abi: list[dict[str, Any]],
        decoder: Any,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.sender = sender
        self.address = ledger_address
        self._abi = abi
        self.decoder = decoder
        self.receipt_timeout = receipt_timeout
        self._queue: queue.Queue[tuple[bytes, Future[CallReceipt]]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.groups = 0
        self.calls = 0
        #: Told each signed transaction before it is sent, and each mined one (the API stores them,
        #: so that a node that comes back behind gets the very same bytes again: RawSender.fill).
        self.on_signed: Callable[[SignedTx], None] | None = None
        self.on_mined: Callable[[str], None] | None = None

    def submit(self, calldata: bytes) -> Future[CallReceipt]:
        """Queue one ledger call; its future resolves with its receipt or its typed error."""
        future: Future[CallReceipt] = Future()
        self._ensure_running()
        self._queue.put((calldata, future))
        return future

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="qcl-call-group", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put((b"", Future()))  # wake the thread
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < MAX_CALLS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [(data, future) for data, future in batch if data]  # drop the wake-up
            if batch:
                self._commit(batch)

    @functools.cached_property
    def _selector(self) -> bytes:
        entry = next(e for e in self._abi if e.get("type") == "function" and e.get("name") == "multicall")
        return bytes(function_abi_to_4byte_selector(cast(Any, entry)))

    def _sign_and_send(self, data: bytes, gas: int) -> SignedTx:
        for attempt in range(2):  # once more after a nonce resync (another process used ours)
            tx = self.sender.sign(to_checksum_address(self.address), data, gas)
            if self.on_signed is not None:
                self.on_signed(tx)
            try:
                self.sender.send(tx)
                return tx
            except SendRefused:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _commit(self, batch: list[tuple[bytes, Future[CallReceipt]]]) -> None:
        calls = [data for data, _ in batch]
        data = self._selector + abi_encode(["bytes[]"], [calls])
        try:
            tx = self._sign_and_send(data, GAS_BASE + GAS_PER_CALL * len(calls))
            receipt = self.sender.wait(tx.tx_hash, timeout=self.receipt_timeout, tx=tx)
            if self.on_mined is not None:
                self.on_mined(tx.tx_hash)
        except ChainError as exc:
            for _, future in batch:
                future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("call group failed")
            for _, future in batch:
                future.set_exception(ChainUnavailable(f"the ledger call could not be sent: {exc}"))
            return
        status = receipt.get("status")
        block = _int(receipt.get("blockNumber"))
        if _int(status) != 1:
            message = f"grouped transaction {tx.tx_hash} failed as a whole; send the request again"
            error = ChainUnavailable(message, public=message)
            for _, future in batch:
                future.set_exception(error)
            return
        failed: dict[int, bytes] = {}
        for entry in receipt.get("logs") or ():
            topics = [bytes(HexBytes(t)) for t in entry.get("topics", [])]
            if (
                topics
                and topics[0] == _CALL_FAILED
                and str(entry.get("address", "")).lower() == str(self.address).lower()
            ):
                index = int.from_bytes(topics[1], "big")
                (reason,) = _decode_bytes(bytes(HexBytes(entry["data"])))
                failed[index] = reason
        self.groups += 1
        self.calls += len(batch)
        for index, (_, future) in enumerate(batch):
            if index in failed:
                future.set_exception(self.decoder.decode(failed[index], tx_hash=tx.tx_hash))
            else:
                future.set_result(CallReceipt(tx_hash=tx.tx_hash, block_number=block))


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16)
    return int(value or 0)


def _decode_bytes(data: bytes) -> tuple[bytes]:
    from eth_abi import decode

    return cast(tuple[bytes], decode(["bytes"], data))
