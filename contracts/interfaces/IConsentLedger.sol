// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian consent ledger
/// @notice Subjects' signed grants, revocations and pauses; the release receipts that prove every
/// release was covered by a grant or an approved emergency. Messages are EIP-712 typed data under
/// the domain `{name: "Quanchenglian", version: "1", chainId, verifyingContract: this}` (SPEC §3).
///
/// Storage per grant is one slot (subject, uses, revoked, paused) keyed by the grant id, which is
/// the EIP-712 digest of the terms and so commits to all of them; the terms themselves are emitted
/// in {GrantRecorded} and passed back as calldata with every release, where they are re-hashed.
///
/// Nonces: a `Grant` is single-use through its grant id (the digest includes the nonce) and a
/// `Revoke` through the grant's final revoked state; `SetPaused`, which can be repeated, records its
/// nonce. Release request ids are recorded per grantee. Both use bitmaps (nonce >> 8 selects a
/// word, nonce & 0xff a bit), so ids that share their top 248 bits share a storage word.
interface IConsentLedger {
    /// @notice The terms a subject signs (SPEC §3 `Grant`).
    struct Grant {
        address subject;
        address grantee;
        bytes32[] resources;
        bytes32 purpose;
        uint64 validFrom;
        uint64 validUntil;
        uint32 maxUses;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What the ledger stores of a grant (one slot).
    struct GrantState {
        address subject;
        uint32 uses;
        bool revoked;
        bool paused;
    }

    /// @notice One release of a grouped {recordReleases} call.
    struct ReleaseItem {
        Grant grant;
        bytes32 resource;
        bytes32 requestId;
        uint256 deadline;
        bytes signature;
    }

    /// @notice An emergency scope (SPEC §3 `Emergency`).
    struct Emergency {
        bytes32 emergencyId;
        bytes32[] resources;
        address[] consumers;
        uint64 validFrom;
        uint64 validUntil;
        bytes32 reason;
        uint256 deadline;
    }

    /// @notice What the ledger stores of an emergency.
    struct EmergencyState {
        bytes32 digest;
        uint64 validFrom;
        uint64 validUntil;
        uint8 approvals;
        bool adminApproved;
        bool auditorApproved;
    }

    /// @notice Status of a grant as seen at the current block.
    enum Status {
        Unknown,
        Active,
        Paused,
        Revoked,
        NotYetValid,
        Expired,
        Exhausted
    }

    // ---- errors ----------------------------------------------------------------------------------
    //
    // A release is checked in this order (the first failing rule names the error): deadline,
    // grant known, signature (MalleableSignature / NotGrantee), revoked, expired, exhausted,
    // paused, not yet valid, resource covered, subject active, grantee active, request id unused.
    // {grantStatus} follows the same precedence for the grant's own state.

    /// @notice A grouped release holds more than MAX_BATCH (256) items.
    error ConsentLedgerBatchTooLarge(uint256 items);
    /// @notice The emergency threshold must be at least 2 (one ADMIN and one AUDITOR).
    error ConsentLedgerInvalidThreshold(uint8 threshold);
    /// @notice The message's `deadline` has passed.
    error ConsentLedgerExpiredDeadline(uint256 deadline);
    /// @notice The signature is not the expected signer's (or not a valid 65-byte signature).
    error ConsentLedgerInvalidSignature(address expectedSigner);
    /// @notice The signature's `s` is in the upper half of the curve order (malleable form).
    error ConsentLedgerMalleableSignature();
    /// @notice The signer already used this nonce (or this exact grant was already recorded).
    error ConsentLedgerNonceUsed(address signer, uint256 nonce);
    /// @notice `account` is not an active member holding `role`.
    error ConsentLedgerInactiveMember(address account, uint8 role);
    /// @notice A grant must name 1–32 resources, each in the catalog (or the wildcard).
    error ConsentLedgerInvalidResources(bytes32 resource);
    /// @notice `validFrom` must be before `validUntil` (and an emergency window at most 72 h).
    error ConsentLedgerInvalidWindow(uint64 validFrom, uint64 validUntil);
    /// @notice No grant has this id.
    error ConsentLedgerUnknownGrant(bytes32 grantId);
    /// @notice The grant was revoked.
    error ConsentLedgerGrantRevoked(bytes32 grantId);
    /// @notice The grant is paused.
    error ConsentLedgerGrantPaused(bytes32 grantId);
    /// @notice The grant's window has not started.
    error ConsentLedgerGrantNotYetValid(bytes32 grantId);
    /// @notice The grant's window has ended.
    error ConsentLedgerGrantExpired(bytes32 grantId);
    /// @notice The grant reached `maxUses`.
    error ConsentLedgerGrantExhausted(bytes32 grantId);
    /// @notice The grant does not cover the requested resource.
    error ConsentLedgerResourceNotGranted(bytes32 grantId);
    /// @notice The release request was not signed by the grantee (or consumer).
    error ConsentLedgerNotGrantee(bytes32 grantId);
    /// @notice The grantee already used this request id.
    error ConsentLedgerRequestUsed(bytes32 requestId);
    /// @notice The grant is already in the requested pause state.
    error ConsentLedgerPauseUnchanged(bytes32 grantId);
    /// @notice No emergency has this id (or its scope differs from the one proposed).
    error ConsentLedgerUnknownEmergency(bytes32 emergencyId);
    /// @notice An emergency with this id already exists.
    error ConsentLedgerEmergencyExists(bytes32 emergencyId);
    /// @notice The signer is not an active ADMIN or AUDITOR.
    error ConsentLedgerNotApprover(address signer);
    /// @notice The signer already approved this emergency.
    error ConsentLedgerAlreadyApproved(address signer);
    /// @notice The emergency lacks the approvals that make it active.
    error ConsentLedgerEmergencyNotApproved(bytes32 emergencyId);
    /// @notice The emergency's window does not contain the current block.
    error ConsentLedgerEmergencyOutsideWindow(bytes32 emergencyId);
    /// @notice The consumer or resource is not in the emergency's scope.
    error ConsentLedgerEmergencyOutOfScope(bytes32 emergencyId);

    // ---- events --------------------------------------------------------------------------------

    /// @notice A grant was recorded; the full terms, so that indexers and auditors need no calldata.
    event GrantRecorded(
        bytes32 indexed grantId,
        address indexed subject,
        address indexed grantee,
        bytes32[] resources,
        bytes32 purpose,
        uint64 validFrom,
        uint64 validUntil,
        uint32 maxUses,
        uint256 nonce,
        uint256 deadline
    );
    /// @notice A grant was revoked (final).
    event GrantRevoked(bytes32 indexed grantId, address indexed subject);
    /// @notice A grant was paused (`paused` true) or resumed.
    event GrantPauseChanged(bytes32 indexed grantId, address indexed subject, bool paused, uint256 nonce);
    /// @notice A release was recorded under a grant; `uses` counts it.
    event ReleaseRecorded(
        bytes32 indexed grantId,
        address indexed grantee,
        bytes32 indexed resource,
        bytes32 requestId,
        uint32 uses
    );
    /// @notice Item `index` of a grouped release was refused with `reason` (an error selector).
    event ReleaseRejected(uint256 indexed index, bytes32 indexed grantId, bytes4 reason);
    /// @notice An emergency was proposed by `proposer`.
    event EmergencyProposed(
        bytes32 indexed emergencyId,
        address indexed proposer,
        bytes32[] resources,
        address[] consumers,
        uint64 validFrom,
        uint64 validUntil,
        bytes32 reason
    );
    /// @notice `approver` approved an emergency; `active` tells whether it now may be used.
    event EmergencyApproved(bytes32 indexed emergencyId, address indexed approver, uint8 approvals, bool active);
    /// @notice A release was recorded under an emergency (flagged in the subject's access log).
    event EmergencyReleaseRecorded(
        bytes32 indexed emergencyId,
        address indexed consumer,
        address indexed subject,
        bytes32 resource,
        bytes32 requestId
    );

    // ---- operations ----------------------------------------------------------------------------

    /// @notice Records `grant`, signed by its subject; anyone may relay it. Returns the grant id.
    function recordGrant(Grant calldata grant, bytes calldata signature) external returns (bytes32 grantId);

    /// @notice Revokes a grant with its subject's `Revoke` signature. Final.
    function revoke(bytes32 grantId, uint256 nonce, uint256 deadline, bytes calldata signature) external;

    /// @notice Pauses or resumes a grant with its subject's `SetPaused` signature.
    function setPaused(bytes32 grantId, bool paused, uint256 nonce, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Records one release under `grant`, given the grantee's `ReleaseRequest` signature;
    /// reverts unless every rule holds at this point of this block. While the subject or the
    /// grantee is suspended, nothing is released under the grant (a suspension freezes it).
    function recordRelease(
        Grant calldata grant,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 grantId);

    /// @notice Records many releases, each checked on its own: a refused item emits
    /// {ReleaseRejected} and does not block the others. Returns one bit per recorded item.
    function recordReleases(ReleaseItem[] calldata items) external returns (uint256 recorded);

    /// @notice Proposes an emergency with a signed `Emergency` of an ADMIN or AUDITOR (who also
    /// counts as its first approval).
    function proposeEmergency(Emergency calldata emergency, bytes calldata signature) external;

    /// @notice Adds another approver's signature of the same `Emergency` message.
    function approveEmergency(Emergency calldata emergency, bytes calldata signature) external;

    /// @notice Records a release under an active emergency, given the consumer's signed
    /// `EmergencyReleaseRequest`.
    function recordEmergencyRelease(
        Emergency calldata emergency,
        address subject,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) external;

    // ---- views ---------------------------------------------------------------------------------

    /// @notice The EIP-712 domain separator of this ledger.
    function domainSeparator() external view returns (bytes32);

    /// @notice The EIP-712 digest of `grant`, which is also its grant id.
    function hashGrant(Grant calldata grant) external view returns (bytes32);

    /// @notice What is stored of a grant (all zero when unknown).
    function grantState(bytes32 grantId) external view returns (GrantState memory);

    /// @notice The status of `grant` at the current block.
    function grantStatus(Grant calldata grant) external view returns (Status);

    /// @notice What is stored of an emergency.
    function emergencyState(bytes32 emergencyId) external view returns (EmergencyState memory);

    /// @notice Whether `signer` used `nonce` in a `SetPaused` message.
    function nonceUsed(address signer, uint256 nonce) external view returns (bool);

    /// @notice Whether `grantee` used `requestId`.
    function requestUsed(address grantee, bytes32 requestId) external view returns (bool);

    /// @notice Approvals (at least 2, one ADMIN and one AUDITOR among them) that make an emergency active.
    function emergencyThreshold() external view returns (uint8);
}
