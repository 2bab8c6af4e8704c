"""Audit (SPEC §7): the trail of ledger events and the verification of every release.

Verification replays the ledger's events from the deployment block, in chain order, into a
small model of the rules (members, catalog, grants, emergencies) and checks, for every release
recorded in the requested block range:

1. it was covered at its block by a grant that was active, not revoked, not paused, inside its
   window, under ``maxUses``, naming that grantee, resource and purpose — or by an approved,
   unexpired emergency whose scope covers it;
2. its transaction carries a valid ``ReleaseRequest`` (``EmergencyReleaseRequest``) signature by
   the grantee (consumer), recomputed from the calldata;
3. the vault's release log and the chain agree one to one, and every anchored checkpoint of the
   log equals the RFC 9162 root of the log's first ``tree_size`` entries;
4. no personal data on chain: no member's name or organisation code, and no emergency reason
   text, appears in the calldata of any transaction to the ledger's contracts.

Every difference is a :class:`Violation` naming the transaction or log entry that shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from chain_client import Ledger, eip712
from chain_client.ids import WILDCARD
from chain_client.indexer import jsonable

from .releaselog import LogEntry, release_id

_ROLE_SUBJECT, _ROLE_CONSUMER, _ROLE_ADMIN, _ROLE_AUDITOR = 16, 4, 1, 8

_EVENTS = (
    "MemberOnboarded",
    "MemberUpdated",
    "MemberSuspensionChanged",
    "ResourceRegistered",
    "ResourceUpdated",
    "GrantRecorded",
    "GrantRevoked",
    "GrantPauseChanged",
    "ReleaseRecorded",
    "EmergencyProposed",
    "EmergencyApproved",
    "EmergencyReleaseRecorded",
)


@dataclass(frozen=True)
class Violation:
    check: int
    code: str
    detail: str
    tx_hash: str | None = None
    log_index: int | None = None


@dataclass
class Report:
    from_block: int
    to_block: int
    releases: int = 0
    emergency_releases: int = 0
    grants: int = 0
    log_entries: int = 0
    checkpoints: int = 0
    transactions_scanned: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["ok"] = self.ok
        return body


@dataclass
class _Grant:
    terms: dict[str, Any]
    uses: int = 0
    revoked: bool = False
    paused: bool = False


@dataclass
class _Emergency:
    resources: set[bytes]
    consumers: set[str]
    valid_from: int
    valid_until: int
    approvers: set[str] = field(default_factory=set)
    admin: bool = False
    auditor: bool = False


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class Auditor:
    """Reads the chain through ``ledger`` and the vault's log through ``log_entries``."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        log_entries: Callable[[], list[bytes]],
        private_texts: Callable[[], list[str]] = lambda: [],
        merkle_root: Callable[[list[bytes]], bytes] | None = None,
    ) -> None:
        self.ledger = ledger
        self._log_entries = log_entries
        self._private_texts = private_texts
        self._merkle_root = merkle_root

    # ---- trail -----------------------------------------------------------------------------------

    def events(self, to_block: int | None = None) -> list[Any]:
        """Every ledger event from the deployment block, in chain order."""
        end = self.ledger.head_block() if to_block is None else to_block
        found: list[Any] = []
        for name in _EVENTS:
            found.extend(self.ledger.events(name, from_block=self.ledger.deployment.deploy_block, to_block=end))
        found.sort(key=lambda e: (e.blockNumber, e.logIndex))
        return found

    def trail(
        self,
        *,
        subject: str | None = None,
        grantee: str | None = None,
        resource: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[dict[str, Any]]:
        """Grants, revocations, pauses, releases and emergencies in order, filtered."""
        grants: dict[bytes, dict[str, Any]] = {}
        out = []
        for event in self.events(to_block):
            args = dict(event.args)
            if event.event == "GrantRecorded":
                grants[bytes(args["grantId"])] = args
            if event.event not in (
                "GrantRecorded",
                "GrantRevoked",
                "GrantPauseChanged",
                "ReleaseRecorded",
                "EmergencyProposed",
                "EmergencyApproved",
                "EmergencyReleaseRecorded",
            ):
                continue
            if event.blockNumber < from_block:
                continue
            grant = grants.get(bytes(args.get("grantId", b"")), {})
            who_subject = args.get("subject") or grant.get("subject")
            who_grantee = args.get("grantee") or args.get("consumer") or grant.get("grantee")
            resources = [bytes(r) for r in args.get("resources", grant.get("resources", []))]
            if "resource" in args:
                resources = [bytes(args["resource"])]
            if subject and who_subject != subject:
                continue
            if grantee and who_grantee != grantee:
                continue
            if resource and resource not in resources:
                continue
            out.append(
                {
                    "event": event.event,
                    "block_number": event.blockNumber,
                    "log_index": event.logIndex,
                    "tx_hash": _hex(event.transactionHash),
                    "args": jsonable(args),
                }
            )
        return out

    # ---- verify ----------------------------------------------------------------------------------

    def verify(self, *, from_block: int = 0, to_block: int | None = None) -> Report:
        end = self.ledger.head_block() if to_block is None else to_block
        report = Report(from_block=from_block, to_block=end)
        members: dict[str, tuple[int, bool]] = {}
        catalog: dict[bytes, int] = {}
        grants: dict[bytes, _Grant] = {}
        emergencies: dict[bytes, _Emergency] = {}
        threshold = int(self.ledger.tx.call(self.ledger.consent.functions.emergencyThreshold()))
        timestamps: dict[int, int] = {}
        chain_releases: dict[str, tuple[str, int]] = {}  # release id -> (tx hash, block)
        domain = self.ledger.domain()

        def timestamp(block: int) -> int:
            if block not in timestamps:
                timestamps[block] = self.ledger.block_timestamp(block)
            return timestamps[block]

        def active(account: str, role: int) -> bool:
            roles, suspended = members.get(account, (0, False))
            return bool(roles) and not suspended and roles & role == role

        for event in self.events(end):
            a, name, tx = event.args, event.event, _hex(event.transactionHash)
            in_range = event.blockNumber >= from_block
            if name in ("MemberOnboarded", "MemberUpdated"):
                members[a.account] = (int(a.roles), members.get(a.account, (0, False))[1])
            elif name == "MemberSuspensionChanged":
                members[a.account] = (members.get(a.account, (0, False))[0], bool(a.suspended))
            elif name in ("ResourceRegistered", "ResourceUpdated"):
                catalog[bytes(a.resource)] = int(a.sensitivity)
            elif name == "GrantRecorded":
                grants[bytes(a.grantId)] = _Grant(terms=dict(a))
                report.grants += in_range
            elif name == "GrantRevoked" and bytes(a.grantId) in grants:
                grants[bytes(a.grantId)].revoked = True
            elif name == "GrantPauseChanged" and bytes(a.grantId) in grants:
                grants[bytes(a.grantId)].paused = bool(a.paused)
            elif name == "EmergencyProposed":
                emergencies[bytes(a.emergencyId)] = _Emergency(
                    resources={bytes(r) for r in a.resources},
                    consumers=set(a.consumers),
                    valid_from=int(a.validFrom),
                    valid_until=int(a.validUntil),
                )
            elif name == "EmergencyApproved" and bytes(a.emergencyId) in emergencies:
                em = emergencies[bytes(a.emergencyId)]
                em.approvers.add(a.approver)
                roles = members.get(a.approver, (0, False))[0]
                em.admin |= bool(roles & _ROLE_ADMIN)
                em.auditor |= bool(roles & _ROLE_AUDITOR)
            elif name == "ReleaseRecorded":
                grant_id = bytes(a.grantId)
                rid = release_id(a.grantee, bytes(a.requestId))
                chain_releases[rid] = (tx, event.blockNumber)
                grant = grants.get(grant_id)
                if grant is not None:
                    grant.uses += 1
                if not in_range:
                    continue
                report.releases += 1
                for code, detail in self._check_grant_release(grant, a, timestamp(event.blockNumber), catalog, active):
                    report.violations.append(Violation(1, code, detail, tx_hash=tx))
                if grant is not None:
                    signature_problem = self._check_release_signature(tx, grant, a, domain)
                    if signature_problem:
                        report.violations.append(Violation(2, *signature_problem, tx_hash=tx))
            elif name == "EmergencyReleaseRecorded":
                rid = release_id(a.consumer, bytes(a.requestId))
                chain_releases[rid] = (tx, event.blockNumber)
                if not in_range:
                    continue
                report.emergency_releases += 1
                scope = emergencies.get(bytes(a.emergencyId))
                now = timestamp(event.blockNumber)
                if scope is None:
                    report.violations.append(
                        Violation(1, "unknown_emergency", "release under an unknown emergency", tx)
                    )
                elif not (len(scope.approvers) >= threshold and scope.admin and scope.auditor):
                    report.violations.append(Violation(1, "emergency_not_approved", "emergency lacked approvals", tx))
                elif not scope.valid_from <= now < scope.valid_until:
                    report.violations.append(Violation(1, "emergency_outside_window", "outside the window", tx))
                elif bytes(a.resource) not in scope.resources or a.consumer not in scope.consumers:
                    report.violations.append(Violation(1, "emergency_out_of_scope", "outside the scope", tx))
                emergency_problem = self._check_emergency_signature(tx, a, domain)
                if emergency_problem:
                    report.violations.append(Violation(2, *emergency_problem, tx_hash=tx))

        self._check_log(report, chain_releases)
        self._check_calldata(report)
        return report

    @staticmethod
    def _check_grant_release(
        grant: _Grant | None, a: Any, now: int, catalog: dict[bytes, int], active: Callable[[str, int], bool]
    ) -> list[tuple[str, str]]:
        if grant is None:
            return [("unknown_grant", f"release under unknown grant {_hex(a.grantId)}")]
        t = grant.terms
        problems = []
        if grant.revoked:
            problems.append(("grant_revoked", "released after the grant was revoked"))
        if grant.paused:
            problems.append(("grant_paused", "released while the grant was paused"))
        if not int(t["validFrom"]) <= now < int(t["validUntil"]):
            problems.append(("grant_window", f"released at {now}, outside [{t['validFrom']}, {t['validUntil']})"))
        if int(t["maxUses"]) and grant.uses > int(t["maxUses"]):
            problems.append(("grant_exhausted", f"use {grant.uses} of {t['maxUses']}"))
        if a.grantee != t["grantee"]:
            problems.append(("not_grantee", "the release names another grantee"))
        resources = [bytes(r) for r in t["resources"]]
        resource = bytes(a.resource)
        covered = resource in resources or (
            WILDCARD in resources and resource != WILDCARD and catalog.get(resource, 9) < 3
        )
        if not covered:
            problems.append(("resource_not_granted", f"resource {_hex(resource)} not covered"))
        if not active(t["subject"], _ROLE_SUBJECT) or not active(t["grantee"], _ROLE_CONSUMER):
            problems.append(("member_inactive", "the subject or grantee was not an active member"))
        return problems

    def _items(self, tx_hash: str) -> list[dict[str, Any]]:
        tx = self.ledger.w3.eth.get_transaction(HexBytes(tx_hash))
        fn, args = self.ledger.consent.decode_function_input(tx["input"])
        if fn.fn_name == "recordRelease":
            return [dict(args)]
        if fn.fn_name == "recordReleases":
            return [dict(item) for item in args["items"]]
        if fn.fn_name == "recordEmergencyRelease":
            return [dict(args)]
        return []

    def _check_release_signature(self, tx: str, grant: _Grant, a: Any, domain: Any) -> tuple[str, str] | None:
        try:
            items = self._items(tx)
        except Exception as exc:  # noqa: BLE001 - undecodable calldata is itself the finding
            return ("calldata_undecodable", f"cannot decode the release transaction: {exc}")
        for item in items:
            if bytes(item["requestId"]) != bytes(a.requestId) or bytes(item["resource"]) != bytes(a.resource):
                continue
            message = {
                "grantId": bytes(a.grantId),
                "resource": bytes(a.resource),
                "requestId": bytes(a.requestId),
                "deadline": int(item["deadline"]),
            }
            signer = _recover(eip712.signable(domain, "ReleaseRequest", message), bytes(item["signature"]))
            if signer != to_checksum_address(grant.terms["grantee"]):
                return ("signature_invalid", f"the ReleaseRequest is signed by {signer}, not the grantee")
            return None
        return ("signature_missing", "no ReleaseRequest for this release in its transaction")

    def _check_emergency_signature(self, tx: str, a: Any, domain: Any) -> tuple[str, str] | None:
        try:
            items = self._items(tx)
        except Exception as exc:  # noqa: BLE001
            return ("calldata_undecodable", f"cannot decode the release transaction: {exc}")
        for item in items:
            message = {
                "emergencyId": bytes(a.emergencyId),
                "subject": a.subject,
                "resource": bytes(a.resource),
                "requestId": bytes(a.requestId),
                "deadline": int(item["deadline"]),
            }
            signer = _recover(eip712.signable(domain, "EmergencyReleaseRequest", message), bytes(item["signature"]))
            if signer == a.consumer:
                return None
        return ("signature_invalid", "no valid EmergencyReleaseRequest by the consumer in the transaction")

    def _check_log(self, report: Report, chain_releases: dict[str, tuple[str, int]]) -> None:
        raw_entries = self._log_entries()
        report.log_entries = len(raw_entries)
        logged: dict[str, int] = {}
        for index, raw in enumerate(raw_entries):
            try:
                entry = LogEntry.parse(raw)
            except (ValueError, TypeError, KeyError):
                report.violations.append(Violation(3, "log_entry_malformed", "unparsable log entry", log_index=index))
                continue
            if entry.index != index:
                report.violations.append(
                    Violation(
                        3,
                        "log_out_of_order",
                        f"entry {entry.index} at position {index}",
                        tx_hash=entry.tx_hash,
                        log_index=index,
                    )
                )
            logged[entry.release_id] = index
            on_chain = chain_releases.get(entry.release_id)
            if on_chain is None:
                if report.from_block <= entry.block_number <= report.to_block:
                    report.violations.append(
                        Violation(
                            3,
                            "release_without_receipt",
                            "the vault logged a release the chain never recorded",
                            tx_hash=entry.tx_hash,
                            log_index=index,
                        )
                    )
            elif on_chain[0] != entry.tx_hash:
                report.violations.append(
                    Violation(
                        3,
                        "receipt_mismatch",
                        "log and chain name different transactions",
                        tx_hash=entry.tx_hash,
                        log_index=index,
                    )
                )
        for rid, (tx, block) in chain_releases.items():
            if report.from_block <= block <= report.to_block and rid not in logged:
                report.violations.append(
                    Violation(
                        3, "receipt_without_release", "the chain recorded a release the vault never logged", tx_hash=tx
                    )
                )
        checkpoints = self.ledger.checkpoints()
        report.checkpoints = len(checkpoints)
        if self._merkle_root is not None:
            for cp in checkpoints:
                if cp.tree_size > len(raw_entries):
                    report.violations.append(
                        Violation(
                            3,
                            "checkpoint_beyond_log",
                            f"checkpoint of {cp.tree_size} entries, log has {len(raw_entries)}",
                        )
                    )
                elif self._merkle_root(raw_entries[: cp.tree_size]) != cp.root_hash:
                    report.violations.append(
                        Violation(
                            3, "checkpoint_mismatch", f"the log's root at size {cp.tree_size} differs from the anchor"
                        )
                    )

    def _check_calldata(self, report: Report) -> None:
        needles = [t.encode() for t in self._private_texts() if len(t.encode()) >= 4]
        addresses = {self.ledger.consent.address.lower(), self.ledger.anchor.address.lower()}
        w3 = self.ledger.w3
        for block in range(max(report.from_block, self.ledger.deployment.deploy_block), report.to_block + 1):
            for tx in w3.eth.get_block(block, full_transactions=True)["transactions"]:
                if isinstance(tx, bytes) or not tx.get("to") or str(tx["to"]).lower() not in addresses:
                    continue
                report.transactions_scanned += 1
                data = bytes(tx["input"])
                for needle in needles:
                    if needle in data:
                        report.violations.append(
                            Violation(
                                4,
                                "personal_data_on_chain",
                                "calldata contains a member's name, an org code or a reason text",
                                tx_hash=_hex(tx["hash"]),
                            )
                        )
                        break


def _recover(signable: Any, signature: bytes) -> str | None:
    try:
        return str(Account.recover_message(signable, signature=signature))
    except Exception:  # noqa: BLE001 - malformed signatures
        return None
