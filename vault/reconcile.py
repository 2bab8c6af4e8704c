"""Reconciliation of the release log against a chain that came back behind it (issue 16).

A node restarted from an older state (anvil's state file written before it was killed), or a reorg
deeper than the indexer's confirmations, can drop blocks whose releases were already answered 2xx,
appended to the release log and delivered. The release relayer stored every transaction it signed
(``relayer_transactions``, before sending it), so nothing has to be rebuilt from memory:

1. every transaction of the relayer's account marked ``mined`` whose nonce the chain has not used
   any more (``nonce >= eth_getTransactionCount(latest)``) was lost with its block;
2. each is sent again, byte for byte, in nonce order (same hash; a nonce of the account with no
   stored transaction is filled by :meth:`chain_client.relayer.RawSender.fill`), and its new
   receipt is read: the contract checks every item again (the grant must still allow it, the
   signed request's deadline must not have passed);
3. a release the log holds and the new receipt records again is **restored**; one the chain now
   refuses is **flagged** with the contract's reason (its intent keeps ``recorded``, its ``error``
   says ``lost_on_chain: <reason>``), so the audit lists exactly what could not be restored; an
   item the caller was refused but the chain now records is flagged too (``recorded_after_refusal``);
4. the API's grants, revocations and pauses (other accounts' stored ``multicall`` transactions) are
   sent again first; each call the ledger now refuses (``CallFailed``: e.g. its signed deadline has
   passed) is listed with its kind, grant id and decoded reason (:class:`LostCall`) and kept in
   ``lost_calls`` (migration 0011), one row per call.

Nothing is re-signed here: the stored bytes carry the departments' signed requests unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from eth_abi import decode as abi_decode
from eth_utils import keccak
from hexbytes import HexBytes
from sqlalchemy import select, update

from chain_client import ChainUnavailable, Ledger, Transactor, eip712
from chain_client.ledger import abi_type
from chain_client.relayer import SendRefused, SignedTx
from db.models import LostCallRow, RelayerTransaction, ReleaseIntent
from db.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from chain_client.relayer.group import CallGroup

    from .releases import ReleaseRelayer

log = logging.getLogger("qcl.reconcile")

#: Seconds to wait for one resent transaction's receipt.
RESTORE_TIMEOUT = 30.0


#: The ledger functions of the API's group commit, as a report names them.
_KINDS = {"recordGrant": "grant", "revoke": "revocation", "revokeUnrecorded": "revocation"}
_CALL_FAILED = keccak(text="CallFailed(uint256,bytes)")


@dataclass(frozen=True)
class LostCall:
    """A grant, revocation or pause answered 2xx whose block the chain lost, and which the ledger
    refused when its stored transaction was sent again (its multicall's ``CallFailed``)."""

    #: "grant", "revocation", "pause", "resume" (else the ledger function's name)
    kind: str
    #: The grant id (``0x``-hex) the call was about.
    id: str
    #: The contract's refusal, decoded: e.g. ``ConsentLedgerExpiredDeadline(deadline=…)``.
    reason: str
    tx_hash: str
    #: The call's position in its multicall.
    index: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "reason": self.reason, "tx_hash": self.tx_hash, "index": self.index}


@dataclass
class RecoveryReport:
    """What one reconciliation found and did."""

    checked_at: float
    #: The relayer account's lowest unmined nonce on the chain as found.
    mined_nonce: int
    #: Transactions the log relied on that the chain no longer had (sent again).
    lost_transactions: list[str] = field(default_factory=list)
    #: Release ids recorded on chain again.
    restored: list[str] = field(default_factory=list)
    #: (release id, why) that the chain no longer records and could not record again.
    flagged: list[tuple[str, str]] = field(default_factory=list)
    #: Grants, revocations and pauses sent again that the ledger refused this time.
    lost_calls: list[LostCall] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.flagged and not self.lost_calls

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "mined_nonce": self.mined_nonce,
            "lost_transactions": list(self.lost_transactions),
            "restored": len(self.restored),
            "flagged": [{"release_id": r, "reason": why} for r, why in self.flagged],
            "lost_calls": [call.as_dict() for call in self.lost_calls],
        }


def restore_lost_releases(relayer: ReleaseRelayer, *, timeout: float = RESTORE_TIMEOUT) -> RecoveryReport:
    """Find the relayer's mined transactions the chain lost, send them again and settle what the
    chain records now (module docstring). Raises ChainUnavailable when the chain does not answer
    (the relayer then tries again before it takes new work)."""
    sender, store = relayer.sender, relayer.store
    with relayer._lock:
        report = RecoveryReport(checked_at=time.time(), mined_nonce=-1)
        # first the API's grants, revocations and pauses (other accounts): releases may need them
        _restore_other_senders(relayer, report, timeout)
        mined = sender.mined_nonce()
        report.mined_nonce = mined
        with store.session() as s:
            lost = s.scalars(
                select(RelayerTransaction)
                .where(
                    RelayerTransaction.sender == sender.address,
                    RelayerTransaction.status == "mined",
                    RelayerTransaction.nonce >= mined,
                )
                .order_by(RelayerTransaction.nonce)
            ).all()
        if not lost:
            return report
        log.warning(
            "reconcile: the chain lost %d release transactions of %s from nonce %d; sending them again",
            len(lost),
            sender.address,
            lost[0].nonce,
        )
        for row in lost:
            signed = SignedTx(tx_hash=row.tx_hash, nonce=row.nonce, raw=bytes(row.raw))
            report.lost_transactions.append(row.tx_hash)
            try:
                sender.send(signed)
                receipt: dict[str, Any] | None = sender.wait(row.tx_hash, timeout=timeout, tx=signed)
            except SendRefused as exc:
                receipt = sender.receipt(row.tx_hash)
                if receipt is None:
                    _flag_all(relayer, row.tx_hash, f"not accepted again: {exc}", report)
                    continue
            except ChainUnavailable:
                raise
            if receipt is not None:
                _settle(relayer, row.tx_hash, receipt, report)
        if report.flagged:
            log.error("reconcile: %d releases could not be restored: %s", len(report.flagged), report.flagged)
        else:
            log.warning("reconcile: %d releases recorded on chain again", len(report.restored))
        return report


def _restore_other_senders(relayer: ReleaseRelayer, report: RecoveryReport, timeout: float) -> None:
    """Send again, byte for byte, the stored transactions of the other accounts (the API's group
    commit of grants, revocations and pauses) that the chain lost, and wait for those it can mine
    now (a gap below them is filled by their own sender when it next sends)."""
    sender, store = relayer.sender, relayer.store
    with store.session() as s:
        others = s.scalars(
            select(RelayerTransaction.sender)
            .where(RelayerTransaction.sender != sender.address, RelayerTransaction.status == "mined")
            .distinct()
        ).all()
    for other in others:
        with store.session() as s:  # read before the chain: a row marked meanwhile is not "lost"
            newest = s.scalars(
                select(RelayerTransaction)
                .where(RelayerTransaction.sender == other, RelayerTransaction.status == "mined")
                .order_by(RelayerTransaction.nonce.desc())
                .limit(256)
            ).all()
        mined = int(sender._request("eth_getTransactionCount", [other, "latest"]), 16)
        lost = sorted((row for row in newest if row.nonce >= mined), key=lambda row: row.nonce)
        if not lost:
            continue
        log.warning("reconcile: the chain lost %d transactions of %s; sending them again", len(lost), other)
        expected = mined
        for row in lost:
            report.lost_transactions.append(row.tx_hash)
            sender._raw("eth_sendRawTransaction", ["0x" + bytes(row.raw).hex()])
        for row in lost:
            if row.nonce != expected:
                break  # a gap its own sender fills
            expected += 1
            deadline = time.monotonic() + timeout
            while (receipt := sender.receipt(row.tx_hash)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if receipt is None:
                report.flagged.append((row.tx_hash, "not mined again"))
            elif not (int(receipt["status"], 16) if isinstance(receipt["status"], str) else receipt["status"]):
                report.flagged.append((row.tx_hash, "failed as a whole when sent again"))
            else:
                _check_calls(relayer, row.tx_hash, receipt, report)
    if report.lost_calls:
        log.warning(
            "reconcile: %d grants, revocations or pauses answered before the loss were refused when sent again: %s",
            len(report.lost_calls),
            "; ".join(f"{c.kind} {c.id}: {c.reason}" for c in report.lost_calls),
        )


def _check_calls(relayer: ReleaseRelayer, tx_hash: str, receipt: dict[str, Any], report: RecoveryReport) -> None:
    """List and keep every call of a multicall sent again that the ledger refused this time."""
    ledger = relayer.ledger
    address = str(ledger.consent.address).lower()
    failed: dict[int, bytes] = {}
    for entry in receipt.get("logs") or ():
        topics = [bytes(HexBytes(t)) for t in entry.get("topics", [])]
        if topics and topics[0] == _CALL_FAILED and str(entry.get("address", "")).lower() == address:
            (failed[int.from_bytes(topics[1], "big")],) = abi_decode(["bytes"], bytes(HexBytes(entry["data"])))
    if not failed:
        return
    sent = relayer.sender._request("eth_getTransactionByHash", [tx_hash]) or {}
    data = bytes(HexBytes(sent.get("input", "0x")))
    multicall = _functions(ledger).get(data[:4])
    calls: list[bytes] = []
    if multicall is not None and multicall["name"] == "multicall":
        (calls,) = abi_decode(["bytes[]"], data[4:])
    lost = []
    for index, reason in sorted(failed.items()):
        kind, grant_id = describe_call(ledger, calls[index]) if index < len(calls) else ("unknown", "")
        lost.append(LostCall(kind, grant_id, str(ledger.decoder.decode(reason)), tx_hash, index))
    report.lost_calls.extend(lost)
    now = time.time()
    with relayer.store.session() as s:
        for call in lost:  # durable: one row per call (kept once, whatever reconciles it again)
            if s.get(LostCallRow, (call.tx_hash, call.index)) is None:
                s.add(
                    LostCallRow(
                        tx_hash=call.tx_hash,
                        call_index=call.index,
                        kind=call.kind,
                        grant_id=call.id,
                        reason=call.reason,
                        flagged_at=now,
                    )
                )


def _functions(ledger: Ledger) -> dict[bytes, dict[str, Any]]:
    """The ledger's functions by selector."""
    found: dict[bytes, dict[str, Any]] | None = ledger.__dict__.get("_by_selector")
    if found is None:
        found = {}
        for entry in cast(list[dict[str, Any]], ledger.consent.abi):
            if entry.get("type") == "function":
                types = ",".join(abi_type(i) for i in entry["inputs"])
                found[bytes(keccak(text=f"{entry['name']}({types})")[:4])] = dict(entry)
        ledger.__dict__["_by_selector"] = found
    return found


def describe_call(ledger: Ledger, data: bytes) -> tuple[str, str]:
    """The kind of a ledger call (``grant``, ``revocation``, ``pause``, ``resume``, else the
    function's name) and the grant id it is about (a Grant's id is its EIP-712 digest)."""
    entry = _functions(ledger).get(data[:4])
    if entry is None:
        return "unknown", ""
    inputs = entry["inputs"]
    values = dict(zip((i["name"] for i in inputs), abi_decode([abi_type(i) for i in inputs], data[4:]), strict=True))
    grant_id: bytes = values.get("grantId", b"")
    if "grant" in values:
        fields = next(i["components"] for i in inputs if i["name"] == "grant")
        message = dict(zip((c["name"] for c in fields), values["grant"], strict=True))
        grant_id = eip712.grant_digest(ledger.domain(), message)
    name = str(entry["name"])
    kind = ("pause" if values["paused"] else "resume") if name == "setPaused" else _KINDS.get(name, name)
    return kind, "0x" + bytes(grant_id).hex()


def _intents(relayer: ReleaseRelayer, tx_hash: str) -> list[ReleaseIntent]:
    with relayer.store.session() as s:
        rows = s.scalars(select(ReleaseIntent).where(ReleaseIntent.tx_hash == tx_hash)).all()
    return sorted(rows, key=lambda r: r.position or 0)


def _settle(relayer: ReleaseRelayer, tx_hash: str, receipt: dict[str, Any], report: RecoveryReport) -> None:
    status = receipt.get("status")
    ok = (int(status, 16) if isinstance(status, str) else int(status or 0)) == 1
    if not ok:
        _flag_all(relayer, tx_hash, "the transaction failed as a whole when sent again", report)
        return
    recorded, rejected = relayer.outcomes(receipt)
    for index, row in enumerate(_intents(relayer, tx_hash)):
        on_chain = (row.grantee.lower(), row.request_id.lower()) in recorded
        if row.status == "recorded" and on_chain:
            report.restored.append(row.id)
        elif row.status == "recorded":
            _flag(relayer, row.id, f"lost_on_chain: {rejected.get(index, 'not recorded again')}", report)
        elif on_chain:
            _flag(relayer, row.id, "recorded_after_refusal", report)


def _flag_all(relayer: ReleaseRelayer, tx_hash: str, why: str, report: RecoveryReport) -> None:
    for row in _intents(relayer, tx_hash):
        if row.status == "recorded":
            _flag(relayer, row.id, f"lost_on_chain: {why}", report)


def _flag(relayer: ReleaseRelayer, intent_id: str, why: str, report: RecoveryReport) -> None:
    report.flagged.append((intent_id, why))
    with relayer.store.session() as s:
        s.execute(update(ReleaseIntent).where(ReleaseIntent.id == intent_id).values(error=why[:64]))


def stored_transactions(store: Store, sender: str) -> Callable[[int], bytes | None]:
    """The signed bytes ``sender`` stored for a nonce (its newest not dropped), for
    :meth:`chain_client.relayer.RawSender.fill`: a gap is filled with what was really sent."""

    def lookup(nonce: int) -> bytes | None:
        with store.session() as s:
            raw = s.scalar(
                select(RelayerTransaction.raw)
                .where(
                    RelayerTransaction.sender == sender,
                    RelayerTransaction.nonce == nonce,
                    RelayerTransaction.status != "dropped",
                )
                .order_by(RelayerTransaction.created_at.desc())
                .limit(1)
            )
        return bytes(raw) if raw is not None else None

    return lookup


def keep_transactions(owner: CallGroup | Transactor, store: Store, *, purpose: str = "calls") -> None:
    """Store every transaction ``owner`` signs before it is sent, and mark it mined with its
    receipt: a node that comes back behind then gets the same signed bytes again when the gap is
    filled (:meth:`chain_client.relayer.RawSender.fill`) or the chain is reconciled, so what it lost
    is recorded again (the contract checks each signed message's deadline and nonce once more).

    ``owner``: the API's group commit of grants, revocations and pauses (purpose ``calls``), or a
    :class:`~chain_client.Transactor` (the operator account's onboarding, catalog entries, document
    anchors and checkpoints; purpose ``operator``). A Transactor given no store (the deployment in
    ``bootstrap``, before the database is open; scripts) fills a gap with an empty transfer."""
    if isinstance(owner, Transactor):
        address = owner.address
        owner.stored = stored_transactions(store, address)
    else:
        address = owner.sender.address
        owner.sender.stored = stored_transactions(store, address)

    def signed(tx: SignedTx) -> None:
        with store.session() as s:
            s.add(
                RelayerTransaction(
                    tx_hash=tx.tx_hash,
                    sender=address,
                    nonce=tx.nonce,
                    raw=tx.raw,
                    purpose=purpose,
                    status="sent",
                    created_at=time.time(),
                )
            )

    def mined(tx_hash: str) -> None:
        try:  # bookkeeping only: the callers' grants are on chain whatever happens here
            with store.session() as s:
                s.execute(
                    update(RelayerTransaction).where(RelayerTransaction.tx_hash == tx_hash).values(status="mined")
                )
        except StoreUnavailable as exc:
            log.warning("transaction %s mined but not marked so: %s", tx_hash, exc)

    owner.on_signed, owner.on_mined = signed, mined


def keep_ledger_transactions(ledger: Ledger, store: Store) -> None:
    """:func:`keep_transactions` for the ledger's operator account (and its relay account, when
    it has one of its own)."""
    keep_transactions(ledger.tx, store, purpose="operator")
    if ledger.relay is not ledger.tx:
        keep_transactions(ledger.relay, store, purpose="relay")
