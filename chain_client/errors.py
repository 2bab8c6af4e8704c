"""Errors raised by :mod:`chain_client`.

Every error derives from :class:`ChainError`. Reverts of our contracts' custom errors are decoded
once, in :mod:`chain_client._revert`, into the subclasses of :class:`ContractRevert` below.
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by chain_client."""


class ToolMissing(ChainError):
    """A program the toolchain needs (node, npm, a package) is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found: {hint}")
        self.tool = tool
        self.hint = hint


class CompilationFailed(ChainError):
    """The Solidity compiler reported errors."""


class ChainUnavailable(ChainError):
    """The chain's JSON-RPC endpoint did not answer, or a node failed to start.

    ``str(exc)`` is for operators (logs, the command line) and may name the node's address and
    the HTTP library's message; :attr:`public` is what an API caller is told (by default only
    that the chain did not answer).
    """

    #: What an API caller may read (never the node's address or a library's message).
    DEFAULT_PUBLIC = "the chain did not answer"

    def __init__(self, message: str = DEFAULT_PUBLIC, *, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or self.DEFAULT_PUBLIC


class DeploymentMismatch(ChainError):
    """A deployment manifest does not match the chain or the compiled contracts."""


class TransactionFailed(ChainError):
    """A transaction was mined but reverted without a custom error we know."""

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ContractRevert(ChainError):
    """A call or transaction reverted with one of our contracts' custom errors.

    ``error`` is the Solidity error name and ``args`` its decoded arguments by name.
    """

    def __init__(self, error: str, args: dict[str, Any], *, tx_hash: str | None = None) -> None:
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"{error}({rendered})")
        self.error = error
        self.args_by_name = args
        self.tx_hash = tx_hash


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


# ---- member registry -------------------------------------------------------------------------


class NotAuthorized(ContractRevert):
    """The caller lacks the role the operation needs (MemberRegistryUnauthorized)."""


class ZeroAddress(ContractRevert, ValueError):
    """The zero address was given where an account is needed."""


class AlreadyMember(ContractRevert):
    """The account is already onboarded."""


class UnknownMember(ContractRevert):
    """The account is not a member of the ledger."""


class InvalidRoles(ContractRevert, ValueError):
    """The role mask is empty or names an unknown role."""


class InvalidHpkeKey(ContractRevert, ValueError):
    """A consumer's HPKE key is missing or of the wrong length, or a non-consumer gave one."""


class SuspensionUnchanged(ContractRevert):
    """The member already is in the requested suspension state."""


class SelfLockout(ContractRevert):
    """An ADMIN tried to suspend itself or drop its own ADMIN role."""


class ConflictingRoles(ContractRevert, ValueError):
    """No account may hold both ADMIN and AUDITOR (separation of duties, SPEC §9.8)."""


class AuditorApprovalRequired(ContractRevert):
    """Giving the AUDITOR role needs an existing auditor's signed ``AuditorEnrolment``."""


class InvalidApproval(ContractRevert):
    """The enrolment approval is not the signature of an active AUDITOR other than the account."""


class WalletProofRequired(ContractRevert):
    """The account is a contract: it is onboarded only as a wallet, with its proof of control."""


class InvalidWalletProof(ContractRevert):
    """The wallet has no code, or its ``isValidSignature`` refused the onboarding proof."""


class TooManyAuditors(ContractRevert, ValueError):
    """A deployment names at most 16 first auditors."""


class ConstructionRevert(ContractRevert):
    """A constructor argument was refused (OpenZeppelin ShortStrings errors, emergency threshold)."""


# ---- data catalog ------------------------------------------------------------------------------


class ResourceExists(ContractRevert):
    """The resource code is already in the catalog."""


class UnknownResource(ContractRevert, LookupError):
    """The resource is not in the catalog."""


class InvalidSensitivity(ContractRevert, ValueError):
    """Sensitivity must be 1-4."""


class InvalidProvider(ContractRevert, ValueError):
    """The provider is not an active PROVIDER member."""


class ReservedResourceId(ContractRevert, ValueError):
    """The wildcard's id cannot be a catalog entry."""


# ---- consent ledger ----------------------------------------------------------------------------


class BatchTooLarge(ContractRevert, ValueError):
    """A grouped release holds more than 256 items."""


class ExpiredDeadline(ContractRevert):
    """The signed message's deadline has passed."""


class SignatureInvalid(ContractRevert):
    """The signature is not the expected signer's."""


class SignatureMalleable(SignatureInvalid):
    """The signature is in its malleable high-s form."""


class NonceUsed(ContractRevert):
    """The signer already used this nonce (or this exact grant is already recorded)."""


class InactiveMember(ContractRevert):
    """A party is not an active member with the needed role."""


class InvalidResources(ContractRevert, ValueError):
    """A grant or emergency names no resources, too many, or one outside the catalog."""


class InvalidWindow(ContractRevert, ValueError):
    """validFrom must be before validUntil (an emergency lasts at most 72 h)."""


class UnknownGrant(ContractRevert, LookupError):
    """No grant has this id."""


class GrantRevoked(ContractRevert):
    """The grant was revoked."""


class GrantPaused(ContractRevert):
    """The grant is paused."""


class GrantNotYetValid(ContractRevert):
    """The grant's window has not started."""


class GrantExpired(ContractRevert):
    """The grant's window has ended."""


class GrantExhausted(ContractRevert):
    """The grant reached its maxUses."""


class ResourceNotGranted(ContractRevert):
    """The grant does not cover the resource."""


class NotGrantee(ContractRevert):
    """The release request was not signed by the grantee."""


class RequestUsed(ContractRevert):
    """The grantee already used this request id."""


class StaleSequence(ContractRevert):
    """A ``SetPaused`` sequence does not exceed the last one applied to the grant (SPEC §9.8)."""


class InsufficientGas(ContractRevert):
    """Too little gas was sent to give a contract wallet's check its full cap; resend with more."""


class UnknownEmergency(ContractRevert, LookupError):
    """No emergency has this id, or the scope differs from the proposed one."""


class EmergencyExists(ContractRevert):
    """An emergency with this id already exists."""


class NotApprover(ContractRevert):
    """The signer is not an active ADMIN or AUDITOR."""


class AlreadyApproved(ContractRevert):
    """The approver already approved this emergency."""


class EmergencyCancelled(ContractRevert):
    """The emergency was cancelled (final)."""


class TooManyApprovals(ContractRevert):
    """The emergency already holds the most approvals it can record (16)."""


class EmergencyNotApproved(ContractRevert):
    """The emergency lacks the approvals that make it active."""


class EmergencyOutsideWindow(ContractRevert):
    """The emergency's window does not contain the current block."""


class EmergencyOutOfScope(ContractRevert):
    """The consumer or resource is outside the emergency's scope."""


# ---- audit anchor ------------------------------------------------------------------------------


class DocumentExists(ContractRevert):
    """A document with this id is already anchored."""


class UnknownDocument(ContractRevert, LookupError):
    """No document with this id is anchored."""


class DocumentShredded(ContractRevert):
    """The document was crypto-shredded."""


class InvalidIssuer(ContractRevert):
    """The issuer may not issue this resource to this subject."""


class InvalidCommitment(ContractRevert, ValueError):
    """A document commitment must not be zero."""


class InvalidCheckpoint(ContractRevert, ValueError):
    """A checkpoint must grow the tree and have a non-zero root."""


class RecordExists(ContractRevert):
    """A record with this id is already anchored."""


#: Solidity custom error name -> Python exception class. Every custom error declared by our
#: contracts must appear here; a test enforces it.
REVERT_CLASSES: dict[str, type[ContractRevert]] = {
    "MemberRegistryUnauthorized": NotAuthorized,
    "MemberRegistryZeroAddress": ZeroAddress,
    "MemberRegistryAlreadyMember": AlreadyMember,
    "MemberRegistryUnknownMember": UnknownMember,
    "MemberRegistryInvalidRoles": InvalidRoles,
    "MemberRegistryInvalidHpkeKey": InvalidHpkeKey,
    "MemberRegistrySuspensionUnchanged": SuspensionUnchanged,
    "MemberRegistrySelfLockout": SelfLockout,
    "MemberRegistryConflictingRoles": ConflictingRoles,
    "MemberRegistryAuditorApprovalRequired": AuditorApprovalRequired,
    "MemberRegistryWalletProofRequired": WalletProofRequired,
    "MemberRegistryInvalidWalletProof": InvalidWalletProof,
    "MemberRegistryExpiredDeadline": ExpiredDeadline,
    "MemberRegistryInvalidApproval": InvalidApproval,
    "MemberRegistryMalleableSignature": SignatureMalleable,
    "MemberRegistryNonceUsed": NonceUsed,
    "MemberRegistryTooManyAuditors": TooManyAuditors,
    "InvalidShortString": ConstructionRevert,
    "StringTooLong": ConstructionRevert,
    "DataCatalogResourceExists": ResourceExists,
    "DataCatalogUnknownResource": UnknownResource,
    "DataCatalogInvalidSensitivity": InvalidSensitivity,
    "DataCatalogInvalidProvider": InvalidProvider,
    "DataCatalogReservedId": ReservedResourceId,
    "ConsentLedgerInvalidThreshold": ConstructionRevert,
    "ConsentLedgerExpiredDeadline": ExpiredDeadline,
    "ConsentLedgerBatchTooLarge": BatchTooLarge,
    "ConsentLedgerInvalidSignature": SignatureInvalid,
    "ConsentLedgerMalleableSignature": SignatureMalleable,
    "ConsentLedgerNonceUsed": NonceUsed,
    "ConsentLedgerInactiveMember": InactiveMember,
    "ConsentLedgerInvalidResources": InvalidResources,
    "ConsentLedgerInvalidWindow": InvalidWindow,
    "ConsentLedgerUnknownGrant": UnknownGrant,
    "ConsentLedgerGrantRevoked": GrantRevoked,
    "ConsentLedgerGrantPaused": GrantPaused,
    "ConsentLedgerGrantNotYetValid": GrantNotYetValid,
    "ConsentLedgerGrantExpired": GrantExpired,
    "ConsentLedgerGrantExhausted": GrantExhausted,
    "ConsentLedgerResourceNotGranted": ResourceNotGranted,
    "ConsentLedgerNotGrantee": NotGrantee,
    "ConsentLedgerRequestUsed": RequestUsed,
    "ConsentLedgerStaleSequence": StaleSequence,
    "ConsentLedgerEmergencyCancelled": EmergencyCancelled,
    "ConsentLedgerTooManyApprovals": TooManyApprovals,
    "ConsentLedgerInsufficientGas": InsufficientGas,
    "ConsentLedgerUnknownEmergency": UnknownEmergency,
    "ConsentLedgerEmergencyExists": EmergencyExists,
    "ConsentLedgerNotApprover": NotApprover,
    "ConsentLedgerAlreadyApproved": AlreadyApproved,
    "ConsentLedgerEmergencyNotApproved": EmergencyNotApproved,
    "ConsentLedgerEmergencyOutsideWindow": EmergencyOutsideWindow,
    "ConsentLedgerEmergencyOutOfScope": EmergencyOutOfScope,
    "AuditAnchorUnauthorized": NotAuthorized,
    "AuditAnchorDocumentExists": DocumentExists,
    "AuditAnchorUnknownDocument": UnknownDocument,
    "AuditAnchorDocumentShredded": DocumentShredded,
    "AuditAnchorInvalidIssuer": InvalidIssuer,
    "AuditAnchorUnknownResource": UnknownResource,
    "AuditAnchorInvalidCommitment": InvalidCommitment,
    "AuditAnchorInvalidCheckpoint": InvalidCheckpoint,
    "AuditAnchorRecordExists": RecordExists,
}
