"""Group commit of independent ledger calls (grants, revocations, pauses) through ``multicall``.

Callers hand in a call's calldata and get a :class:`concurrent.futures.Future`; one thread takes
every call that arrived while the previous transaction was being sent and sends them as ONE
``multicall`` transaction (signed here, fixed gas, see :class:`~chain_client.relayer.RawSender`).
It does not wait for that transaction's block: up to ``depth`` transactions are in flight at once
(consecutive nonces), each awaited by a daemon thread of its own, so a network with 1-2 s blocks takes
several groups per block. While others are in flight a partial group gathers for ``linger``
seconds first. The contract runs each call on its own: a refused call emits ``CallFailed`` with its
revert data, which resolves that caller's future with the typed error, and does not undo the others.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import encode as abi_encode
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes

from ..errors import ChainError, ChainUnavailable
from . import LINGER, PIPELINE_DEPTH, BlockPace, RawSender, SendRefused, SignedTx

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
        depth: int = PIPELINE_DEPTH,
        linger: float = LINGER,
    ) -> None:
        if depth < 1:
            raise ValueError("the pipeline's depth is at least 1")
        self.sender = sender
        self.address = ledger_address
        self._abi = abi
        self.decoder = decoder
        self.receipt_timeout = receipt_timeout
        self._queue: queue.Queue[tuple[bytes, Future[CallReceipt]]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.depth = depth
        self.linger = linger
        #: one per transaction in flight; the sending thread takes one before it sends
        self._slots = threading.Semaphore(depth)
        self._flying = 0
        #: the chain's pace, from the blocks the receipts land in (sets the linger)
        self.pace = BlockPace()
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

    @property
    def in_flight(self) -> int:
        """Multicall transactions sent and not yet settled."""
        with self._lock:
            return self._flying

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
            while not self._slots.acquire(timeout=0.5):  # depth transactions in flight: wait for one
                if self._stop.is_set():
                    break
            if self._stop.is_set():
                self._fail([first], ChainUnavailable("the ledger's call group is stopping"))
                break
            batch = self._gather(first)
            if not batch:
                self._slots.release()
                continue
            tx = self._send(batch)
            if tx is None:
                self._slots.release()
                continue
            with self._lock:
                self._flying += 1
            # a daemon thread per transaction in flight (at most depth): a process that stops
            # while the chain is slow never waits for one (an executor's threads are joined at exit)
            threading.Thread(
                target=self._settle, args=(tx, batch, time.monotonic()), name="qcl-call-receipt", daemon=True
            ).start()

    def _gather(self, first: tuple[bytes, Future[CallReceipt]]) -> list[tuple[bytes, Future[CallReceipt]]]:
        """``first`` and every call queued behind it (up to MAX_CALLS); while other transactions are
        in flight, a partial group waits up to ``linger`` seconds for more."""
        batch = [first]
        until = time.monotonic() + (self.pace.linger(self.depth, self.linger) if self.in_flight else 0.0)
        while len(batch) < MAX_CALLS:
            left = until - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return [(data, future) for data, future in batch if data]  # drop the wake-up

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

    def _send(self, batch: list[tuple[bytes, Future[CallReceipt]]]) -> SignedTx | None:
        """Sign and send ``batch`` as one multicall; None (every future failed) when it could not be sent."""
        calls = [data for data, _ in batch]
        data = self._selector + abi_encode(["bytes[]"], [calls])
        try:
            return self._sign_and_send(data, GAS_BASE + GAS_PER_CALL * len(calls))
        except ChainError as exc:
            self._fail(batch, exc)
        except Exception as exc:
            log.exception("call group failed")
            self._fail(batch, ChainUnavailable(f"the ledger call could not be sent: {exc}"))
        return None

    def _settle(self, tx: SignedTx, batch: list[tuple[bytes, Future[CallReceipt]]], sent: float) -> None:
        """Wait for ``tx``'s receipt (sent at ``sent``, monotonic) (looked after if it waits: RawSender.wait) and resolve each call."""
        try:
            receipt = self.sender.wait(tx.tx_hash, timeout=self.receipt_timeout, tx=tx)
            if self.on_mined is not None:
                self.on_mined(tx.tx_hash)
        except ChainError as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            log.exception("call group failed")
            self._fail(batch, ChainUnavailable(f"the ledger call could not be sent: {exc}"))
            return
        finally:
            with self._lock:
                self._flying -= 1
            self._slots.release()
        self.pace.observe(time.monotonic() - sent)
        self._resolve(tx, receipt, batch)

    def _resolve(self, tx: SignedTx, receipt: dict[str, Any], batch: list[tuple[bytes, Future[CallReceipt]]]) -> None:
        status = receipt.get("status")
        block = _int(receipt.get("blockNumber"))
        if _int(status) != 1:
            message = f"grouped transaction {tx.tx_hash} failed as a whole; send the request again"
            self._fail(batch, ChainUnavailable(message, public=message))
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
        with self._lock:
            self.groups += 1
            self.calls += len(batch)
        for index, (_, future) in enumerate(batch):
            if index in failed:
                future.set_exception(self.decoder.decode(failed[index], tx_hash=tx.tx_hash))
            else:
                future.set_result(CallReceipt(tx_hash=tx.tx_hash, block_number=block))

    @staticmethod
    def _fail(batch: list[tuple[bytes, Future[CallReceipt]]], error: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16)
    return int(value or 0)


def _decode_bytes(data: bytes) -> tuple[bytes]:
    from eth_abi import decode

    return cast(tuple[bytes], decode(["bytes"], data))
