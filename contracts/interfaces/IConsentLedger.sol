// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian consent ledger
/// @notice Subjects' signed grants, revocations and pauses; the release receipts that prove every
/// release was covered by a grant or an approved emergency. Messages are EIP-712 typed data under
/// the domain `{name: "Quanchenglian", version: "1", chainId, verifyingContract: this}` (SPEC §3).
///
/// Storage per grant is one slot (subject, uses, revoked, paused, recordedAt) keyed by the grant
/// id, which is the EIP-712 digest of the terms and so commits to all of them; the terms themselves
/// are emitted in {GrantRecorded} and passed back as calldata with every release, where they are
/// re-hashed.
///
/// Nonces (SPEC §9.8): one nonce space per signer, shared by `Grant`, `Revoke`, `SetPaused` and
/// `AuditorEnrolment`: a nonce spent by any of them is refused for all. Release request ids are
/// recorded per grantee. Both use bitmaps (nonce >> 8 selects a word, nonce & 0xff a bit), so ids
/// that share their top 248 bits share a storage word.
///
/// @dev CHANGES (v1.1, security review):
/// - Constructor `(address admin, address[] auditors, uint8 threshold)`; threshold 2..16.
/// - `SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)`;
///   `ConsentLedgerPauseUnchanged` removed; `ConsentLedgerStaleSequence` added.
/// - Events `ReleaseRecorded` and `EmergencyReleaseRecorded` carry the request's `deadline` and
///   `signature`; `GrantPauseChanged` carries `sequence`.
/// - `GrantState` gains `recordedAt` (block number); `EmergencyState` drops adminApproved /
///   auditorApproved and gains `activatedAt` and `cancelled`.
/// - New: {revokeUnrecorded}, {cancelEmergency}, {multicall}, {pauseSequence},
///   {emergencyApprovers}, {emergencyActive}; errors `ConsentLedgerEmergencyCancelled`,
///   `ConsentLedgerTooManyApprovals`, `ConsentLedgerInsufficientGas`.
/// - The nonce of an `AuditorEnrolment` approval is refused with the registry's
///   `MemberRegistryNonceUsed(signer, nonce)` (same nonce space as `ConsentLedgerNonceUsed`).
/// - Wildcard (M2): stricter than "sensitivity <= 2 then and now": a resource lowered to <= 2
///   after the grant's block is never covered by that grant's wildcard, even if it was <= 2 at
///   grant time too (lowered from 3+ in between).
/// - In {recordReleases}, an item whose signature is not the grantee's (invalid or malleable) is
///   skipped without any event; only correctly signed items are ever named in {ReleaseRejected}.
/// - `ConsentLedgerInsufficientGas()` is raised wherever a wallet's capped EIP-1271 check runs
///   (grants, revocations, pauses, releases, and the registry's {IMemberRegistry-onboardWallet});
///   {multicall} re-raises it instead of reporting it as a {CallFailed}.
/// - Registry errors added besides those named in the review: `MemberRegistryMalleableSignature()`
///   (high-s enrolment approval), `MemberRegistryTooManyAuditors(uint256)` (more than 16 first
///   auditors); {IMemberRegistry-onboardWallet} refuses an account without code with
///   `MemberRegistryInvalidWalletProof`, and ADMIN/AUDITOR for a wallet with
///   `MemberRegistryInvalidRoles`.
/// - Bitmaps are OpenZeppelin `BitMaps.BitMap` (same word layout); they are set with one lookup
///   (test-and-set), since BitMaps' `get` then `set` would hash and read the word twice.
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

    /// @notice What the ledger stores of a grant (one slot). `recordedAt` is the block number of
    /// {recordGrant}; 0 for a grant revoked before it was recorded ({revokeUnrecorded}).
    struct GrantState {
        address subject;
        uint32 uses;
        bool revoked;
        bool paused;
        uint40 recordedAt;
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

    /// @notice What the ledger stores of an emergency. `approvals` counts the approvals recorded
    /// (see {emergencyApprovers}; whether they still count is decided at use time);
    /// `activatedAt` is the time of the approval that first made it approved (0 before).
    struct EmergencyState {
        bytes32 digest;
        uint64 validFrom;
        uint64 validUntil;
        uint64 activatedAt;
        uint8 approvals;
        bool cancelled;
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
    // A release is checked in this order (the first failing rule names the error): signature of
    // the grantee named in the terms (MalleableSignature / NotGrantee), deadline, grant known,
    // revoked, expired, exhausted, paused, not yet valid, resource covered, subject active,
    // grantee active, request id unused. {grantStatus} follows the same precedence for the
    // grant's own state.

    /// @notice A grouped release holds more than MAX_BATCH (256) items.
    error ConsentLedgerBatchTooLarge(uint256 items);
    /// @notice The emergency threshold must be 2..16 (MAX_APPROVERS).
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
    /// @notice `sequence` does not exceed the last sequence applied to the grant's pause state.
    error ConsentLedgerStaleSequence(bytes32 grantId, uint64 sequence);
    /// @notice The emergency was cancelled.
    error ConsentLedgerEmergencyCancelled(bytes32 emergencyId);
    /// @notice The emergency already holds MAX_APPROVERS (16) approvals.
    error ConsentLedgerTooManyApprovals(bytes32 emergencyId);
    /// @notice Too little gas is left to give a contract wallet's EIP-1271 check its full gas cap;
    /// the whole transaction is refused (resend it with more gas).
    error ConsentLedgerInsufficientGas();
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
    /// @notice A `SetPaused` message was applied: the grant is now paused (`paused` true) or not
    /// (emitted even when the state did not change; `sequence` is now the grant's pause sequence).
    event GrantPauseChanged(
        bytes32 indexed grantId, address indexed subject, bool paused, uint64 sequence, uint256 nonce
    );
    /// @notice A release was recorded under a grant; `uses` counts it. `deadline` and `signature`
    /// are the grantee's signed `ReleaseRequest`, so the event alone proves the request.
    event ReleaseRecorded(
        bytes32 indexed grantId,
        address indexed grantee,
        bytes32 indexed resource,
        bytes32 requestId,
        uint32 uses,
        uint256 deadline,
        bytes signature
    );
    /// @notice Item `index` of a grouped release, correctly signed by the grantee, was refused
    /// with `reason` (an error selector).
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
    /// @notice An ADMIN or AUDITOR (`by`) cancelled an emergency (final).
    event EmergencyCancelled(bytes32 indexed emergencyId, address indexed by);
    /// @notice A release was recorded under an emergency (flagged in the subject's access log);
    /// `deadline` and `signature` are the consumer's signed `EmergencyReleaseRequest`.
    event EmergencyReleaseRecorded(
        bytes32 indexed emergencyId,
        address indexed consumer,
        address indexed subject,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes signature
    );
    /// @notice Call `index` of a {multicall} reverted with `reason` (its revert data).
    event CallFailed(uint256 indexed index, bytes reason);

    // ---- operations ----------------------------------------------------------------------------

    /// @notice Records `grant`, signed by its subject; anyone may relay it. Returns the grant id.
    /// Checks: deadline (ExpiredDeadline), subject's signature (MalleableSignature /
    /// InvalidSignature), grant already stored (GrantRevoked if revoked, else NonceUsed), the
    /// subject's nonce (NonceUsed), subject active SUBJECT, grantee active CONSUMER (InactiveMember),
    /// window (InvalidWindow), resources 1–32, each in the catalog or the wildcard (InvalidResources).
    function recordGrant(Grant calldata grant, bytes calldata signature) external returns (bytes32 grantId);

    /// @notice Revokes a recorded grant with its subject's `Revoke` signature. Final. A suspended
    /// subject may revoke (withdrawal always works). Checks: deadline, grant known (UnknownGrant),
    /// subject's signature, nonce (NonceUsed), not revoked (GrantRevoked), subject holds the
    /// SUBJECT role (InactiveMember).
    function revoke(bytes32 grantId, uint256 nonce, uint256 deadline, bytes calldata signature) external;

    /// @notice Revokes `grant` given its terms, whether it was recorded or not (a lost QR code):
    /// the same `Revoke` message, signed by `grant.subject`. If the grant is recorded this is
    /// {revoke}; otherwise the grant id is stored as revoked (recordedAt 0) and can never be
    /// recorded. Checks: deadline, subject's signature, nonce, not revoked (GrantRevoked), and for a
    /// recorded grant the subject holds the SUBJECT role.
    function revokeUnrecorded(Grant calldata grant, uint256 nonce, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Applies the subject's `SetPaused` message: the grant is paused (`paused` true) or
    /// resumed, even if already in that state, provided `sequence` exceeds the last one applied.
    /// Checks: deadline, grant known (UnknownGrant), subject's signature, nonce (NonceUsed), not
    /// revoked (GrantRevoked), sequence (StaleSequence); a resume needs an active SUBJECT, a pause
    /// only the SUBJECT role (a suspended subject may pause) (InactiveMember).
    function setPaused(
        bytes32 grantId,
        bool paused,
        uint64 sequence,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Runs each of `calls` (calldata of this contract's functions) with a delegatecall
    /// on its own: a failed call emits {CallFailed} and does not undo the others. At most
    /// MAX_BATCH calls (BatchTooLarge). Bit i of `succeeded` is set when call i succeeded.
    function multicall(bytes[] calldata calls) external returns (uint256 succeeded);

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
    /// {ReleaseRejected} and does not block the others, except that an item whose signature is
    /// not the grantee's is skipped silently. Returns one bit per recorded item.
    function recordReleases(ReleaseItem[] calldata items) external returns (uint256 recorded);

    /// @notice Proposes an emergency with a signed `Emergency` of an ADMIN or AUDITOR (who also
    /// counts as its first approval).
    function proposeEmergency(Emergency calldata emergency, bytes calldata signature) external;

    /// @notice Adds another approver's signature of the same `Emergency` message. The approval
    /// that first makes the emergency approved activates it, and needs `validFrom <= now + 1 h`
    /// (MAX_EMERGENCY_DELAY; else InvalidWindow).
    function approveEmergency(Emergency calldata emergency, bytes calldata signature) external;

    /// @notice Cancels an emergency (final), given the `EmergencyCancel(bytes32 emergencyId,uint256
    /// deadline)` signature of any active ADMIN or AUDITOR; anyone relays. Checks: deadline,
    /// signature (MalleableSignature, InvalidSignature, NotApprover), known (UnknownEmergency), not
    /// cancelled (EmergencyCancelled).
    function cancelEmergency(bytes32 emergencyId, uint256 deadline, bytes calldata signature) external;

    /// @notice Records a release under an active emergency, given the consumer's signed
    /// `EmergencyReleaseRequest`. Checks: signature (MalleableSignature, InvalidSignature(0)),
    /// deadline, known with the same scope (UnknownEmergency), cancelled (EmergencyCancelled),
    /// approved now and activated (EmergencyNotApproved), window (EmergencyOutsideWindow), scope
    /// (EmergencyOutOfScope), consumer active CONSUMER, subject holds SUBJECT (InactiveMember),
    /// request id (RequestUsed).
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

    /// @notice Whether `signer` used `nonce` (Grant, Revoke, SetPaused or AuditorEnrolment).
    function nonceUsed(address signer, uint256 nonce) external view returns (bool);

    /// @notice The last `SetPaused` sequence applied to the grant (0 before any).
    function pauseSequence(bytes32 grantId) external view returns (uint64);

    /// @notice The accounts whose approvals of the emergency were recorded, in order.
    function emergencyApprovers(bytes32 emergencyId) external view returns (address[] memory);

    /// @notice Whether the emergency may be used now: approved now (by currently active approvers)
    /// and activated, not cancelled, and `validFrom <= now < validUntil`.
    function emergencyActive(bytes32 emergencyId) external view returns (bool);

    /// @notice Whether `grantee` used `requestId`.
    function requestUsed(address grantee, bytes32 requestId) external view returns (bool);

    /// @notice Approvals (2..16, one ADMIN and one AUDITOR among them) that make an emergency
    /// approved; each counts only while its approver is an unsuspended member that still holds
    /// the role (ADMIN or AUDITOR) in which it approved.
    function emergencyThreshold() external view returns (uint8);
}
