"""Typed access to the deployed contracts: one method per contract operation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from . import eip712
from ._compiler import CompilationResult
from ._deploy import Deployment
from ._revert import RevertDecoder
from ._tx import Receipt, Transactor, guard
from .eip712 import DOMAIN_NAME, DOMAIN_VERSION
from .errors import ContractRevert
from .types import (
    Address,
    Eip712Domain,
    EmergencyScope,
    EmergencyState,
    GrantState,
    GrantStatus,
    GrantTerms,
    Member,
    ReleaseItem,
    Role,
)

_NO_ROLE = Role(0)
#: Half the secp256k1 group order: a larger ``s`` is the malleable form the ledger refuses.
_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def org_id(org_code: str | None) -> bytes:
    """The on-chain identifier of an organisation code: keccak256 of it, or zero for none."""
    return keccak(text=org_code) if org_code else bytes(32)


@dataclass(frozen=True)
class GrantRecorded:
    grant_id: bytes
    receipt: Receipt


@dataclass(frozen=True)
class BatchResult:
    """Outcome of a grouped release: which items were recorded, and why the others were refused."""

    receipt: Receipt
    recorded: list[int]
    rejected: dict[int, ContractRevert]
    #: Items not signed by their grantee: skipped by the ledger without any event.
    skipped: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MulticallResult:
    """Outcome of :meth:`Ledger.multicall`: which calls succeeded, and the typed error of the others
    (decoded from their ``CallFailed`` revert data)."""

    receipt: Receipt
    succeeded: list[int]
    failed: dict[int, Exception]


@dataclass(frozen=True)
class Resource:
    """A catalog entry. ``registered_at`` and ``lowered_at`` are block numbers (SPEC §9.8: a
    wildcard grant covers only entries registered, and not lowered from 3+, by its block)."""

    provider: str
    sensitivity: int
    registered_at: int = 0
    lowered_at: int = 0

    @property
    def exists(self) -> bool:
        return int(self.provider, 16) != 0


@dataclass(frozen=True)
class Document:
    commitment: bytes
    subject: str
    issuer: str
    anchored_at: int
    shredded: bool


@dataclass(frozen=True)
class AnchoredRecord:
    """A generic anchored commitment (e.g. of a data-correction record); all zero when unknown."""

    kind: bytes
    commitment: bytes
    anchored_at: int

    @property
    def exists(self) -> bool:
        return self.anchored_at != 0


@dataclass(frozen=True)
class Checkpoint:
    index: int
    tree_size: int
    root_hash: bytes
    anchored_at: int


def abi_type(param: Any) -> str:
    """The canonical ABI type of a function or event input (tuples spelled out), as signatures use."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


class Ledger:
    """The deployment's contracts as seen by the platform's accounts.

    ``operator`` (ADMIN on chain) signs what no data subject signs: onboarding, suspension,
    catalog entries, document anchors, checkpoints (SPEC §3). ``relayer`` submits the members'
    own signed messages (grants, revocations, pauses, releases, emergencies), so members never
    need Ether; without one, the operator relays too. Each account has its own in-process nonces.
    """

    def __init__(
        self,
        *,
        w3: Web3,
        deployment: Deployment,
        compiled: CompilationResult,
        operator: LocalAccount,
        relayer: LocalAccount | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.decoder = RevertDecoder([c.abi for c in compiled.contracts.values()])
        self.tx = Transactor(w3=w3, account=operator, decoder=self.decoder)
        self.relay = Transactor(w3=w3, account=relayer, decoder=self.decoder) if relayer is not None else self.tx
        self.consent = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.contracts["ConsentLedger"]), abi=compiled["ConsentLedger"].abi
        )
        #: The member registry and data catalog live in the ConsentLedger contract.
        self.registry = self.consent
        self.anchor = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.contracts["AuditAnchor"]), abi=compiled["AuditAnchor"].abi
        )

    # ---- chain --------------------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def head_block(self) -> int:
        return int(guard(lambda: self.w3.eth.block_number))

    def block_timestamp(self, block: int | None = None) -> int:
        """The timestamp of ``block`` (default: the latest block)."""
        return int(guard(lambda: self.w3.eth.get_block("latest" if block is None else block)["timestamp"]))

    def domain(self) -> Eip712Domain:
        """The EIP-712 domain of SPEC §3 for this deployment."""
        return Eip712Domain(
            name=DOMAIN_NAME,
            version=DOMAIN_VERSION,
            chain_id=self.deployment.chain_id,
            verifying_contract=Address(self.consent.address),
        )

    # ---- member registry ----------------------------------------------------------------------

    def onboard(self, account: str, roles: Role, *, org_code: str | None = None, hpke_key: bytes = b"") -> Receipt:
        fn = self.registry.functions.onboard(_addr(account), int(roles), org_id(org_code), hpke_key)
        return self.tx.transact(fn)

    def onboard_wallet(
        self,
        account: str,
        roles: Role,
        *,
        deadline: int,
        proof: bytes,
        org_code: str | None = None,
        hpke_key: bytes = b"",
    ) -> Receipt:
        """Onboard an EIP-1271 contract wallet with its proof of control: ``proof`` is what its
        ``isValidSignature`` accepts for the ``WalletOnboarding`` digest (SPEC §9.8)."""
        fn = self.registry.functions.onboardWallet(
            _addr(account), int(roles), org_id(org_code), hpke_key, deadline, proof
        )
        return self.tx.transact(fn)

    def enrol_auditor(
        self,
        account: str,
        roles: Role,
        *,
        nonce: int,
        deadline: int,
        signature: bytes,
        org_code: str | None = None,
        hpke_key: bytes = b"",
    ) -> Receipt:
        """Give ``account`` (new or a member) ``roles`` including AUDITOR, with the
        ``AuditorEnrolment`` signature of another active AUDITOR (SPEC §9.8); ADMIN sends it."""
        fn = self.registry.functions.enrolAuditor(
            _addr(account), int(roles), org_id(org_code), hpke_key, nonce, deadline, signature
        )
        return self.tx.transact(fn)

    def update_member(
        self, account: str, roles: Role, *, org_code: str | None = None, hpke_key: bytes = b""
    ) -> Receipt:
        fn = self.registry.functions.updateMember(_addr(account), int(roles), org_id(org_code), hpke_key)
        return self.tx.transact(fn)

    def set_suspended(self, account: str, suspended: bool) -> Receipt:
        return self.tx.transact(self.registry.functions.setSuspended(_addr(account), suspended))

    def member(self, account: str) -> Member:
        address = _addr(account)
        roles, suspended, wallet, since, oid = self.tx.call(self.registry.functions.member(address))
        key = self.tx.call(self.registry.functions.hpkeKey(address)) if roles else b""
        return Member(
            address=Address(address),
            roles=Role(roles),
            suspended=bool(suspended),
            since=int(since),
            org_id=bytes(oid),
            hpke_key=bytes(key),
            wallet=bool(wallet),
        )

    def is_active(self, account: str, roles: Role = _NO_ROLE) -> bool:
        return bool(self.tx.call(self.registry.functions.isActive(_addr(account), int(roles))))

    # ---- data catalog -------------------------------------------------------------------------

    def register_resource(self, code: str, name: str, provider: str, sensitivity: int) -> Receipt:
        fn = self.consent.functions.registerResource(code, name, _addr(provider), sensitivity)
        return self.tx.transact(fn)

    def update_resource(self, resource: bytes, provider: str, sensitivity: int) -> Receipt:
        return self.tx.transact(self.consent.functions.updateResource(resource, _addr(provider), sensitivity))

    def resource(self, resource: bytes) -> Resource:
        provider, sensitivity, registered_at, lowered_at = self.tx.call(self.consent.functions.resourceInfo(resource))
        return Resource(
            provider=str(provider),
            sensitivity=int(sensitivity),
            registered_at=int(registered_at),
            lowered_at=int(lowered_at),
        )

    # ---- grants -------------------------------------------------------------------------------

    def record_grant(self, terms: GrantTerms, signature: bytes) -> GrantRecorded:
        """Relay a subject's signed ``Grant``; returns its grant id (the EIP-712 digest)."""
        receipt = self.relay.transact(self.consent.functions.recordGrant(terms.as_tuple(), signature))
        (event,) = self.consent.events.GrantRecorded().process_receipt(receipt.raw)
        return GrantRecorded(grant_id=bytes(event.args.grantId), receipt=receipt)

    def revoke(
        self, grant_id: bytes, nonce: int, deadline: int, signature: bytes, *, gas: int | None = None
    ) -> Receipt:
        return self.relay.transact(self.consent.functions.revoke(grant_id, nonce, deadline, signature), gas=gas)

    def revoke_unrecorded(self, terms: GrantTerms, nonce: int, deadline: int, signature: bytes) -> Receipt:
        """Revoke a grant given its terms, recorded or not (a lost QR code): the subject's ``Revoke``
        of the grant id; an unrecorded grant can then never be recorded (SPEC §9.8)."""
        fn = self.consent.functions.revokeUnrecorded(terms.as_tuple(), nonce, deadline, signature)
        return self.relay.transact(fn)

    def set_paused(
        self, grant_id: bytes, paused: bool, sequence: int, nonce: int, deadline: int, signature: bytes
    ) -> Receipt:
        """Apply the subject's ``SetPaused``; ``sequence`` must exceed :meth:`pause_sequence`."""
        fn = self.consent.functions.setPaused(grant_id, paused, sequence, nonce, deadline, signature)
        return self.relay.transact(fn)

    def pause_sequence(self, grant_id: bytes) -> int:
        """The last ``SetPaused`` sequence applied to the grant (0 before any)."""
        return int(self.tx.call(self.consent.functions.pauseSequence(grant_id)))

    def grant_state(self, grant_id: bytes) -> GrantState:
        subject, uses, revoked, paused, recorded_at = self.tx.call(self.consent.functions.grantState(grant_id))
        return GrantState(
            subject=str(subject),
            uses=int(uses),
            revoked=bool(revoked),
            paused=bool(paused),
            recorded_at=int(recorded_at),
        )

    def grant_status(self, terms: GrantTerms) -> GrantStatus:
        return GrantStatus(self.tx.call(self.consent.functions.grantStatus(terms.as_tuple())))

    def hash_grant(self, message: dict[str, Any] | GrantTerms) -> bytes:
        """The contract's own digest of a ``Grant`` message (its grant id)."""
        terms = message if isinstance(message, GrantTerms) else GrantTerms.from_message(message)
        return bytes(self.tx.call(self.consent.functions.hashGrant(terms.as_tuple())))

    def domain_separator(self) -> bytes:
        return bytes(self.tx.call(self.consent.functions.domainSeparator()))

    def typehash(self, constant: str) -> bytes:
        """The value of a ``*_TYPEHASH`` constant of the ledger (see ``eip712.TYPEHASH_CONSTANTS``)."""
        return bytes(self.tx.call(getattr(self.consent.functions, constant)()))

    def nonce_used(self, signer: str, nonce: int) -> bool:
        return bool(self.tx.call(self.consent.functions.nonceUsed(_addr(signer), nonce)))

    # ---- releases -----------------------------------------------------------------------------

    def record_release(
        self,
        terms: GrantTerms,
        resource: bytes,
        request_id: bytes,
        deadline: int,
        signature: bytes,
        *,
        gas: int | None = None,
    ) -> Receipt:
        """Record one release under ``terms`` with the grantee's signed ``ReleaseRequest``."""
        fn = self.consent.functions.recordRelease(terms.as_tuple(), resource, request_id, deadline, signature)
        return self.relay.transact(fn, gas=gas)

    def check_release(
        self, terms: GrantTerms, resource: bytes, request_id: bytes, deadline: int, signature: bytes
    ) -> None:
        """Simulate :meth:`record_release` (``eth_call``): raises the typed error it would revert with."""
        fn = self.consent.functions.recordRelease(terms.as_tuple(), resource, request_id, deadline, signature)
        self.tx.call(fn)

    def check_emergency_release(
        self, scope: EmergencyScope, subject: str, resource: bytes, request_id: bytes, deadline: int, signature: bytes
    ) -> None:
        """Simulate :meth:`record_emergency_release`; raises the typed error it would revert with."""
        fn = self.consent.functions.recordEmergencyRelease(
            scope.as_tuple(), _addr(subject), resource, request_id, deadline, signature
        )
        self.tx.call(fn)

    def send_release(
        self, terms: GrantTerms, resource: bytes, request_id: bytes, deadline: int, signature: bytes, *, gas: int
    ) -> str:
        """Send a release without estimating or waiting (for pipelined submission); returns the tx hash."""
        fn = self.consent.functions.recordRelease(terms.as_tuple(), resource, request_id, deadline, signature)
        return self.relay.send(fn, gas=gas)

    def record_releases(self, items: list[ReleaseItem], *, gas: int | None = None) -> BatchResult:
        """Record many releases in one transaction; each item is checked on its own.

        A refused item names its reason in ``ReleaseRejected``, except one whose signature is not
        the grantee's: the ledger skips it without any event (SPEC §9.8), so it is in ``skipped``.
        """
        receipt = self.relay.transact(self.consent.functions.recordReleases([i.as_tuple() for i in items]), gas=gas)
        rejected: dict[int, ContractRevert] = {}
        for event in self.consent.events.ReleaseRejected().process_receipt(receipt.raw, errors=DISCARD):
            rejected[int(event.args.index)] = self.decoder.from_selector(
                bytes(event.args.reason), {"grantId": bytes(event.args.grantId)}
            )
        events = self.consent.events.ReleaseRecorded().process_receipt(receipt.raw, errors=DISCARD)
        keys = [(str(e.args.grantee).lower(), bytes(e.args.resource), bytes(e.args.requestId)) for e in events]
        candidates = [i for i in range(len(items)) if i not in rejected]
        signed = {i: self._signed_by_grantee(items[i]) for i in candidates}
        recorded: list[int] = []
        skipped: list[int] = []
        for position, index in enumerate(candidates):
            item = items[index]
            key = (item.grant.grantee.lower(), item.resource, item.request_id)
            # Events follow item order. An item whose signature does not recover its grantee took
            # the event only when no later item of the same request was properly signed (a
            # contract-wallet grantee signs with EIP-1271, which no local check can recover).
            takes = bool(keys) and keys[0] == key
            if takes and not signed[index]:
                takes = not any(
                    signed[j] and (items[j].grant.grantee.lower(), items[j].resource, items[j].request_id) == key
                    for j in candidates[position + 1 :]
                )
            if takes:
                keys.pop(0)
                recorded.append(index)
            else:
                skipped.append(index)
        return BatchResult(receipt=receipt, recorded=recorded, rejected=rejected, skipped=skipped)

    # ---- grouped calls --------------------------------------------------------------------------

    def calldata(self, name: str, *args: Any) -> bytes:
        """The calldata of the ledger function ``name`` with ``args`` (as :meth:`encode` gives for
        ``consent.functions.<name>(*args)``), encoded straight by eth_abi: building a web3
        ``ContractFunction`` costs about a millisecond of CPU, which the relay paths pay per request."""
        calls: dict[str, tuple[bytes, list[str]]] = self.__dict__.setdefault("_calls", {})
        entry = calls.get(name)
        if entry is None:
            abi: list[dict[str, Any]] = list(self.consent.abi)  # type: ignore[arg-type]
            fns = [e for e in abi if e.get("type") == "function" and e.get("name") == name]
            if len(fns) != 1:
                raise ValueError(f"the ledger has {len(fns)} functions named {name!r}")
            types = [abi_type(i) for i in fns[0]["inputs"]]
            entry = (keccak(text=f"{name}({','.join(types)})")[:4], types)
            calls[name] = entry
        selector, types = entry
        return selector + abi_encode(types, list(args))

    def encode(self, fn: ContractFunction) -> bytes:
        """The calldata of a ledger call (e.g. ``ledger.consent.functions.recordGrant(...)``), for
        :meth:`multicall`."""
        return bytes.fromhex(fn._encode_transaction_data()[2:])

    def multicall(self, calls: list[bytes], *, gas: int | None = None) -> MulticallResult:
        """Run many ledger calls (their calldata, see :meth:`encode`) in one transaction, each on
        its own: a failed call emits ``CallFailed`` with its revert data, decoded here into the
        typed error, and does not undo the others. At most 256 calls. One exception: a contract
        wallet's check short of gas (``InsufficientGas``) reverts the whole transaction, so a
        relayer cannot make a wallet's signature fail by sending too little gas."""
        receipt = self.relay.transact(self.consent.functions.multicall(calls), gas=gas)
        failed: dict[int, Exception] = {}
        for event in self.consent.events.CallFailed().process_receipt(receipt.raw, errors=DISCARD):
            failed[int(event.args.index)] = self.decoder.decode(bytes(event.args.reason), tx_hash=receipt.tx_hash)
        succeeded = [i for i in range(len(calls)) if i not in failed]
        return MulticallResult(receipt=receipt, succeeded=succeeded, failed=failed)

    def _signed_by_grantee(self, item: ReleaseItem) -> bool:
        """Whether ``item``'s signature recovers (low-s) to its grantee, as the ledger checks it."""
        domain = self.domain()
        message = {
            "grantId": eip712.digest(domain, "Grant", item.grant.message()),
            "resource": item.resource,
            "requestId": item.request_id,
            "deadline": item.deadline,
        }
        signature = item.signature
        if len(signature) != 65 or int.from_bytes(signature[32:64], "big") > _HALF_ORDER:
            return False
        try:
            signer = Account.recover_message(eip712.signable(domain, "ReleaseRequest", message), signature=signature)
        except (ValueError, TypeError):
            return False
        return str(signer).lower() == item.grant.grantee.lower()

    def request_used(self, grantee: str, request_id: bytes) -> bool:
        return bool(self.tx.call(self.consent.functions.requestUsed(_addr(grantee), request_id)))

    # ---- emergencies --------------------------------------------------------------------------

    def propose_emergency(self, scope: EmergencyScope, signature: bytes) -> Receipt:
        return self.relay.transact(self.consent.functions.proposeEmergency(scope.as_tuple(), signature))

    def approve_emergency(self, scope: EmergencyScope, signature: bytes) -> Receipt:
        return self.relay.transact(self.consent.functions.approveEmergency(scope.as_tuple(), signature))

    def record_emergency_release(
        self, scope: EmergencyScope, subject: str, resource: bytes, request_id: bytes, deadline: int, signature: bytes
    ) -> Receipt:
        fn = self.consent.functions.recordEmergencyRelease(
            scope.as_tuple(), _addr(subject), resource, request_id, deadline, signature
        )
        return self.relay.transact(fn)

    def cancel_emergency(self, emergency_id: bytes, deadline: int, signature: bytes) -> Receipt:
        """Relay an ADMIN's or AUDITOR's signed ``EmergencyCancel``: the emergency ends at once (final)."""
        return self.relay.transact(self.consent.functions.cancelEmergency(emergency_id, deadline, signature))

    def emergency_state(self, emergency_id: bytes) -> EmergencyState:
        digest, valid_from, valid_until, activated_at, approvals, cancelled = self.tx.call(
            self.consent.functions.emergencyState(emergency_id)
        )
        return EmergencyState(
            digest=bytes(digest),
            valid_from=int(valid_from),
            valid_until=int(valid_until),
            activated_at=int(activated_at),
            approvals=int(approvals),
            cancelled=bool(cancelled),
        )

    def emergency_approvers(self, emergency_id: bytes) -> list[str]:
        """The accounts whose approvals of the emergency were recorded, in order."""
        return [str(a) for a in self.tx.call(self.consent.functions.emergencyApprovers(emergency_id))]

    def emergency_active(self, emergency_id: bytes) -> bool:
        """Whether the emergency may be used now: approved by approvers active now, activated, not
        cancelled, inside its window (SPEC §9.8)."""
        return bool(self.tx.call(self.consent.functions.emergencyActive(emergency_id)))

    def emergency_threshold(self) -> int:
        return int(self.tx.call(self.consent.functions.emergencyThreshold()))

    # ---- anchors ------------------------------------------------------------------------------

    def anchor_document(
        self, document_id: bytes, subject: str, resource: bytes, commitment: bytes, issuer: str
    ) -> Receipt:
        fn = self.anchor.functions.anchorDocument(document_id, _addr(subject), resource, commitment, _addr(issuer))
        return self.tx.transact(fn)

    def shred_document(self, document_id: bytes) -> Receipt:
        return self.tx.transact(self.anchor.functions.shredDocument(document_id))

    def document(self, document_id: bytes) -> Document:
        commitment, subject, issuer, anchored_at, shredded = self.tx.call(self.anchor.functions.document(document_id))
        return Document(
            commitment=bytes(commitment),
            subject=str(subject),
            issuer=str(issuer),
            anchored_at=int(anchored_at),
            shredded=bool(shredded),
        )

    def anchor_checkpoint(self, tree_size: int, root_hash: bytes) -> Receipt:
        return self.tx.transact(self.anchor.functions.anchorCheckpoint(tree_size, root_hash))

    def anchor_record(self, record_id: bytes, kind: bytes, commitment: bytes) -> Receipt:
        """Anchor the commitment of an off-chain record (no text, no personal data); ids are unique."""
        return self.tx.transact(self.anchor.functions.anchorRecord(record_id, kind, commitment))

    def record(self, record_id: bytes) -> AnchoredRecord:
        kind, commitment, anchored_at = self.tx.call(self.anchor.functions.record(record_id))
        return AnchoredRecord(kind=bytes(kind), commitment=bytes(commitment), anchored_at=int(anchored_at))

    def last_checkpoint(self) -> Checkpoint | None:
        """The latest anchored checkpoint (two calls, however many there are)."""
        count = int(self.tx.call(self.anchor.functions.checkpointCount()))
        if not count:
            return None
        size, at, root = self.tx.call(self.anchor.functions.checkpoint(count - 1))
        return Checkpoint(index=count - 1, tree_size=int(size), root_hash=bytes(root), anchored_at=int(at))

    def checkpoints(self) -> list[Checkpoint]:
        """Every anchored checkpoint (one call each: prefer the index's ``CheckpointAnchored`` events)."""
        count = int(self.tx.call(self.anchor.functions.checkpointCount()))
        found = []
        for index in range(count):
            size, at, root = self.tx.call(self.anchor.functions.checkpoint(index))
            found.append(Checkpoint(index=index, tree_size=int(size), root_hash=bytes(root), anchored_at=int(at)))
        return found

    # ---- events -------------------------------------------------------------------------------

    def events(self, name: str, *, from_block: int = 0, to_block: int | str = "latest") -> list[Any]:
        """Decoded logs of event ``name`` (of ConsentLedger or AuditAnchor) in a block range."""
        contract = (
            self.consent
            if any(e.get("name") == name for e in self.consent.abi if e.get("type") == "event")
            else self.anchor
        )
        event = getattr(contract.events, name)()
        return list(guard(lambda: event.get_logs(from_block=from_block, to_block=to_block)))


def _addr(value: str) -> str:
    return Web3.to_checksum_address(value)
