"""Signed transactions without web3's per-transaction round trips (DESIGN.md "Relayer rules").

:class:`RawSender` signs in process with a fixed gas limit (no ``eth_estimateGas``), keeps the
account's nonces locally and recovers them from the node after any send error (nonce too low,
a gap the pool keeps queued, a dropped transaction), and sends the raw bytes with
``eth_sendRawTransaction``, the only write call a Besu network accepts (no unlocked accounts).
Signing and sending are separate steps, so a caller can store the signed bytes durably before
they leave the process and send the very same bytes again after a crash.

Receipts are read with one JSON-RPC call per poll (``eth_getTransactionReceipt``); a caller that
has several transactions in flight reads them in one JSON-RPC batch (:meth:`RawSender.receipts`),
at most :data:`MAX_BATCH_CALLS` per batch (Besu's default ``rpc-max-batch-size``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from .._tx import NonceManager, Nonces, guard
from ..errors import ChainUnavailable

__all__ = ["LINGER", "MAX_BATCH_CALLS", "PIPELINE_DEPTH", "BlockPace", "RawSender", "SendRefused", "SignedTx"]

log = logging.getLogger(__name__)

#: Besu's default ``rpc-max-batch-size``: never put more calls than this in one JSON-RPC batch.
MAX_BATCH_CALLS = 50
#: How long fees read from the node are reused.
_GAS_PRICE_TTL = 5.0
#: The tip of EIP-1559 transactions (a permissioned network needs none; 1 gwei is plenty locally).
PRIORITY_FEE = 10**9
#: Seconds a transaction may wait unmined before :meth:`RawSender.wait` looks for what is wrong (a
#: node that lost it, a nonce gap below it, its nonce taken by another transaction).
HEAL_AFTER = 3.0
#: Gas of the empty transaction that fills a nonce nothing stored can fill.
FILL_GAS = 21_000


#: Transactions a pipelined relayer (the release relayer, the call group) keeps in flight at once:
#: the next group is sent while the previous ones wait for their block (DESIGN.md "Relayer rules"),
#: so a network with 1-2 s blocks records several groups per block, not one. 1 = one at a time.
PIPELINE_DEPTH = 4
#: Seconds a partial group gathers at least before it is sent while earlier groups are in flight
#: (with none in flight it is sent at once); more on a slow chain (:meth:`BlockPace.linger`).
LINGER = 0.05


class BlockPace:
    """How long a pipelined relayer's transactions wait for their block: the longest recent wait,
    decaying (``DECAY`` per transaction settled). A transaction sent just after a block waits about
    a block interval; one sent just before, almost nothing; idle spells do not count.

    It sets how long a partial group gathers while others are in flight (:meth:`linger`): that
    wait shared by the transactions a block can take from this relayer, so that with 2 s blocks
    and 4 in flight the groups leave about every half second (rather than all four in the first
    200 ms after a block, the rest of the interval's requests then waiting a whole block more);
    with a node that mines at once the floor applies."""

    #: Factor applied to the estimate at every transaction settled before the new wait is taken in.
    DECAY = 0.9

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The estimated seconds a transaction waits for its block at most (0 until one settled).
        self.interval = 0.0

    def observe(self, waited: float) -> None:
        """One of our transactions was mined ``waited`` seconds after it was sent."""
        with self._lock:
            self.interval = max(waited, self.interval * self.DECAY)

    def linger(self, depth: int, floor: float, ceiling: float = 1.0) -> float:
        """Seconds a partial group waits for more while others are in flight: the wait over
        ``depth``, within ``[floor, ceiling]``."""
        return min(ceiling, max(floor, self.interval / depth))


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction: its hash, nonce and the exact bytes to send (and resend)."""

    tx_hash: str
    nonce: int
    raw: bytes


class SendRefused(ChainUnavailable):
    """The node refused a transaction for a reason resending cannot cure (after a nonce resync)."""


class RawSender:
    """One account's transactions: signed here, nonces kept here, sent raw."""

    def __init__(self, *, w3: Web3, account: LocalAccount, chain_id: int, nonces: Nonces | None = None) -> None:
        """``nonces``: share one account's counter with another sender in this process (e.g. the
        :class:`~chain_client.Transactor` relaying grants with the same account)."""
        self.w3 = w3
        self.account = account
        self.chain_id = chain_id
        self.nonces: Nonces = nonces if nonces is not None else NonceManager(w3, account.address)
        self._fees: tuple[float, dict[str, int]] | None = None
        #: The signed bytes this account stored for a nonce (e.g. the release relayer's table),
        #: sent again to fill a gap before an empty transaction is used.
        self.stored: Callable[[int], bytes | None] | None = None
        #: Transactions sent again or nonces filled by :meth:`heal` (for reports and tests).
        self.healed = 0

    @property
    def address(self) -> str:
        return str(self.account.address)

    # ---- nonces ------------------------------------------------------------------------------

    def mined_nonce(self) -> int:
        """The number of this account's transactions mined (the lowest unmined nonce)."""
        return int(self._request("eth_getTransactionCount", [self.address, "latest"]), 16)

    def resync(self) -> None:
        """Forget the local nonce; the next :meth:`sign` asks the node (after any send error)."""
        self.nonces.reset()

    # ---- signing and sending -----------------------------------------------------------------

    def fees(self) -> dict[str, int]:
        """The fee fields of the next transaction, from the latest block (reused for a few seconds).

        EIP-1559 chains: ``maxFeePerGas`` = twice the base fee plus the tip, the tip
        ``PRIORITY_FEE`` — bounded by the base fee, never by the node's own price suggestion (which
        follows recent tips: paying a multiple of it would feed back into it). Chains without a base
        fee (Besu free-gas networks): the node's gas price, 0 there.
        """
        now = time.monotonic()
        cached = self._fees
        if cached is None or now - cached[0] > _GAS_PRICE_TTL:
            block = self._request("eth_getBlockByNumber", ["latest", False]) or {}
            base = block.get("baseFeePerGas")
            if base is None:
                fields = {"gasPrice": int(self._request("eth_gasPrice", []), 16)}
            else:
                fee = int(base, 16)
                tip = PRIORITY_FEE if fee else 0  # a zero-base-fee (free gas) network: pay nothing
                fields = {"maxFeePerGas": 2 * fee + tip, "maxPriorityFeePerGas": tip}
            cached = (now, fields)
            self._fees = cached
        return dict(cached[1])

    def sign(self, to: str, data: bytes, gas: int, *, nonce: int | None = None) -> SignedTx:
        """Sign a call of ``to`` with ``data`` and a fixed ``gas`` limit, taking the next nonce."""
        fees = self.fees()
        if nonce is None:
            nonce = guard(self.nonces.take)
        tx = {
            **fees,
            "nonce": nonce,
            "gas": gas,
            "to": Web3.to_checksum_address(to),
            "value": 0,
            "data": data,
            "chainId": self.chain_id,
        }
        signed = self.account.sign_transaction(tx)
        return SignedTx(tx_hash=signed.hash.to_0x_hex(), nonce=nonce, raw=bytes(signed.raw_transaction))

    def send(self, tx: SignedTx) -> None:
        """Send ``tx``'s bytes. Sending the same bytes twice is harmless ("already known").

        On a refusal the local nonce is resynchronised from the node and :class:`SendRefused` is
        raised; a node that does not answer raises :class:`ChainUnavailable`.
        """
        response = self._raw("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        error = response.get("error")
        if not error:
            return
        message = str(error.get("message", error)).lower()
        if "already known" in message or "already imported" in message or "known transaction" in message:
            return
        self.resync()
        self._fees = None
        raise SendRefused(f"the node refused transaction {tx.tx_hash} (nonce {tx.nonce}): {message}")

    # ---- receipts ----------------------------------------------------------------------------

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The raw receipt of ``tx_hash``, or None while it is not mined."""
        result = self._request("eth_getTransactionReceipt", [tx_hash])
        return result if isinstance(result, dict) else None

    def receipts(self, tx_hashes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Receipts of several transactions, in JSON-RPC batches of at most :data:`MAX_BATCH_CALLS`."""
        found: dict[str, dict[str, Any] | None] = {}
        provider = self.w3.provider
        batch = getattr(provider, "make_batch_request", None)
        for start in range(0, len(tx_hashes), MAX_BATCH_CALLS):
            chunk = list(tx_hashes[start : start + MAX_BATCH_CALLS])
            if batch is not None and len(chunk) > 1:
                calls = [(RPCEndpoint("eth_getTransactionReceipt"), [h]) for h in chunk]
                responses = guard(lambda calls=calls: batch(calls))
                if isinstance(responses, list):
                    for h, r in zip(chunk, responses, strict=True):
                        result = r.get("result")
                        found[h] = result if isinstance(result, dict) else None
                    continue
            for h in chunk:
                found[h] = self.receipt(h)
        return found

    def wait(
        self,
        tx_hash: str,
        *,
        timeout: float = 120.0,
        poll: float = 0.005,
        tx: SignedTx | None = None,
        heal_after: float = HEAL_AFTER,
    ) -> dict[str, Any]:
        """Poll for ``tx_hash``'s receipt (a local node mines at once; a network in seconds).

        With ``tx`` (its signed bytes), a transaction still unmined after ``heal_after`` seconds is
        looked after (:meth:`heal`) every ``heal_after`` seconds: sent again if the node lost it,
        the nonces below it filled if a gap holds it in the pool; one whose nonce another
        transaction took raises :class:`SendRefused` at once (it can never be mined).
        """
        start = time.monotonic()
        deadline = start + timeout
        next_heal = start + heal_after
        delay = poll
        while True:
            found = self.receipt(tx_hash)
            if found is not None:
                return found
            now = time.monotonic()
            if now > deadline:
                raise ChainUnavailable(f"transaction {tx_hash} was not mined within {timeout:.0f} s")
            if tx is not None and now >= next_heal:
                next_heal = now + heal_after
                if self.heal(tx) == "replaced":
                    raise SendRefused(f"transaction {tx_hash} (nonce {tx.nonce}) was replaced; its nonce is used")
                continue
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def heal(self, tx: SignedTx) -> str:
        """Find out why ``tx`` is not mined, and cure what can be cured; returns what was found:

        * ``"mined"``: it is (nothing to do);
        * ``"replaced"``: its nonce was used by another transaction: it will never be mined (the
          local nonce is resynchronised; the caller signs its work again);
        * ``"filled"``: a nonce gap below it (a restarted node that came back behind, a pool that
          dropped a transaction) kept it queued: every missing nonce from the lowest unmined one
          is sent again from :attr:`stored` bytes, else filled with an empty transaction;
        * ``"resent"``: the node had lost it: the same bytes were sent again;
        * ``"pending"``: it waits in the pool in order (a slow node): keep waiting.
        """
        if self.receipt(tx.tx_hash) is not None:
            return "mined"
        mined = self.mined_nonce()
        if tx.nonce < mined:
            if self.known(tx.tx_hash):  # mined, its receipt not served yet (a lagging node): wait
                return "pending"
            self.resync()  # the node does not know it at all: another transaction took its nonce
            return "replaced"
        outcome = "pending"
        if not self.known(tx.tx_hash):
            self.send(tx)
            self.healed += 1
            outcome = "resent"
        if tx.nonce > mined:
            log.warning(
                "%s: transaction %s (nonce %d) waits behind a nonce gap from %d; filling it",
                self.address,
                tx.tx_hash,
                tx.nonce,
                mined,
            )
            self.fill(mined, tx.nonce)
            outcome = "filled"
        return outcome

    def fill(self, first: int, end: int) -> int:
        """Send a transaction for every nonce in ``[first, end)``: the stored bytes of that nonce,
        else an empty transfer to this account. A nonce the pool already holds refuses it
        (harmless). Returns how many were accepted."""
        accepted = 0
        for nonce in range(first, end):
            raw = self.stored(nonce) if self.stored is not None else None
            if raw is None:
                empty: dict[str, Any] = {
                    **self.fees(),
                    "nonce": nonce,
                    "gas": FILL_GAS,
                    "to": self.address,
                    "value": 0,
                    "data": b"",
                    "chainId": self.chain_id,
                }
                signed = self.account.sign_transaction(empty)  # type: ignore[arg-type]
                raw = bytes(signed.raw_transaction)
            response = self._raw("eth_sendRawTransaction", ["0x" + raw.hex()])
            if not response.get("error"):
                accepted += 1
        self.healed += accepted
        return accepted

    def known(self, tx_hash: str) -> bool:
        """Whether the node knows ``tx_hash`` (mined, or waiting in its pool)."""
        return self._request("eth_getTransactionByHash", [tx_hash]) is not None

    # ---- JSON-RPC ----------------------------------------------------------------------------

    def _raw(self, method: str, params: list[Any]) -> dict[str, Any]:
        provider = self.w3.provider
        response = guard(lambda: provider.make_request(RPCEndpoint(method), params))
        return dict(response)

    def _request(self, method: str, params: list[Any]) -> Any:
        response = self._raw(method, params)
        if response.get("error"):
            raise ChainUnavailable(f"{method} failed: {response['error']}")
        return response.get("result")
