// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {DataCatalog} from "./DataCatalog.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {MemberRegistry} from "./MemberRegistry.sol";
import {Roles} from "./Roles.sol";
import {BitMaps} from "@openzeppelin/contracts/utils/structs/BitMaps.sol";

/// @title ConsentLedger
/// @notice See {IConsentLedger}. Also the member registry and data catalog of the deployment
/// (inherited, so the ledger's checks are storage reads, not external calls).
/// The EIP-712 domain, the per-signer nonce bitmaps and the signature helpers live in
/// {MemberRegistry}, which the registry's own signed operations (auditor enrolment, wallet
/// onboarding) share.
contract ConsentLedger is IConsentLedger, DataCatalog {
    /// @dev keccak256("Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)")
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
    );
    /// @dev keccak256("Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)")
    bytes32 public constant REVOKE_TYPEHASH = keccak256("Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)");
    /// @dev keccak256("SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)")
    bytes32 public constant SET_PAUSED_TYPEHASH =
        keccak256("SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)");
    /// @dev keccak256("ReleaseRequest(bytes32 grantId,bytes32 resource,bytes32 requestId,uint256 deadline)")
    bytes32 public constant RELEASE_REQUEST_TYPEHASH =
        keccak256("ReleaseRequest(bytes32 grantId,bytes32 resource,bytes32 requestId,uint256 deadline)");
    /// @dev keccak256("Emergency(bytes32 emergencyId,bytes32[] resources,address[] consumers,uint64 validFrom,uint64 validUntil,bytes32 reason,uint256 deadline)")
    bytes32 public constant EMERGENCY_TYPEHASH = keccak256(
        "Emergency(bytes32 emergencyId,bytes32[] resources,address[] consumers,uint64 validFrom,uint64 validUntil,bytes32 reason,uint256 deadline)"
    );
    /// @dev keccak256("EmergencyReleaseRequest(bytes32 emergencyId,address subject,bytes32 resource,bytes32 requestId,uint256 deadline)")
    bytes32 public constant EMERGENCY_RELEASE_TYPEHASH = keccak256(
        "EmergencyReleaseRequest(bytes32 emergencyId,address subject,bytes32 resource,bytes32 requestId,uint256 deadline)"
    );

    /// @dev keccak256("EmergencyCancel(bytes32 emergencyId,uint256 deadline)")
    bytes32 public constant EMERGENCY_CANCEL_TYPEHASH = keccak256("EmergencyCancel(bytes32 emergencyId,uint256 deadline)");

    /// @notice Most resources (and consumers) one grant or emergency may name; bounds every loop.
    uint256 public constant MAX_LIST = 32;
    /// @notice Most items of one grouped release (one bit each in the returned mask).
    uint256 public constant MAX_BATCH = 256;
    /// @notice Longest emergency window.
    uint64 public constant MAX_EMERGENCY_WINDOW = 72 hours;
    /// @notice Latest start of an emergency's window after the approval that activates it.
    uint64 public constant MAX_EMERGENCY_DELAY = 1 hours;
    /// @notice Most approvals one emergency records (and the largest threshold); bounds its loops.
    uint256 public constant MAX_APPROVERS = 16;

    uint8 private immutable _emergencyThreshold;

    mapping(bytes32 grantId => GrantState) private _grants;
    mapping(bytes32 grantId => uint64) private _pauseSequence;
    mapping(address grantee => BitMaps.BitMap) private _requests;
    mapping(bytes32 emergencyId => EmergencyState) private _emergencies;
    mapping(bytes32 emergencyId => address[]) private _approvers;
    /// @dev The role (ADMIN or AUDITOR) in which each approver approved; 0 if it did not.
    mapping(bytes32 emergencyId => mapping(address approver => uint8 role)) private _approvedAs;

    /// @param admin the first ADMIN (the platform operator)
    /// @param auditors the first AUDITORs, named by the deployment (may be empty)
    /// @param threshold approvals that make an emergency approved; 2..16 (SPEC §3)
    constructor(address admin, address[] memory auditors, uint8 threshold) MemberRegistry(admin, auditors) {
        if (threshold < 2 || threshold > MAX_APPROVERS) revert ConsentLedgerInvalidThreshold(threshold);
        _emergencyThreshold = threshold;
    }

    // ---- grants ----------------------------------------------------------------------------------

    /// @inheritdoc IConsentLedger
    function recordGrant(Grant calldata grant, bytes calldata signature) external returns (bytes32 grantId) {
        if (block.timestamp > grant.deadline) revert ConsentLedgerExpiredDeadline(grant.deadline);
        grantId = _hashGrant(grant);
        _requireSignature(grant.subject, grantId, signature);
        GrantState storage state = _grants[grantId];
        if (state.subject != address(0)) {
            if (state.revoked) revert ConsentLedgerGrantRevoked(grantId);
            revert ConsentLedgerNonceUsed(grant.subject, grant.nonce);
        }
        if (!_useNonce(grant.subject, grant.nonce)) revert ConsentLedgerNonceUsed(grant.subject, grant.nonce);
        _requireActive(grant.subject, Roles.SUBJECT);
        _requireActive(grant.grantee, Roles.CONSUMER);
        if (grant.validFrom >= grant.validUntil) revert ConsentLedgerInvalidWindow(grant.validFrom, grant.validUntil);
        uint256 n = grant.resources.length;
        if (n == 0 || n > MAX_LIST) revert ConsentLedgerInvalidResources(bytes32(n));
        for (uint256 i; i < n; ++i) {
            bytes32 r = grant.resources[i];
            if (r != WILDCARD && _resources[r].provider == address(0)) revert ConsentLedgerInvalidResources(r);
        }
        _grants[grantId] = GrantState({
            subject: grant.subject,
            uses: 0,
            revoked: false,
            paused: false,
            recordedAt: uint40(block.number)
        });
        emit GrantRecorded(
            grantId,
            grant.subject,
            grant.grantee,
            grant.resources,
            grant.purpose,
            grant.validFrom,
            grant.validUntil,
            grant.maxUses,
            grant.nonce,
            grant.deadline
        );
    }

    /// @inheritdoc IConsentLedger
    function revoke(bytes32 grantId, uint256 nonce, uint256 deadline, bytes calldata signature) external {
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        address subject = _grants[grantId].subject;
        if (subject == address(0)) revert ConsentLedgerUnknownGrant(grantId);
        _revoke(grantId, subject, nonce, deadline, signature);
    }

    /// @inheritdoc IConsentLedger
    function revokeUnrecorded(Grant calldata grant, uint256 nonce, uint256 deadline, bytes calldata signature)
        external
    {
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        _revoke(_hashGrant(grant), grant.subject, nonce, deadline, signature);
    }

    /// @dev The subject's signature, its nonce, then: a recorded grant is revoked if its subject
    /// still holds the SUBJECT role (suspension does not block a withdrawal); an unrecorded one is
    /// stored as revoked, so that it can never be recorded.
    function _revoke(bytes32 grantId, address subject, uint256 nonce, uint256 deadline, bytes calldata signature)
        private
    {
        _requireSignature(
            subject, _hashTypedDataV4(keccak256(abi.encode(REVOKE_TYPEHASH, grantId, nonce, deadline))), signature
        );
        if (!_useNonce(subject, nonce)) revert ConsentLedgerNonceUsed(subject, nonce);
        GrantState storage state = _grants[grantId];
        if (state.subject == address(0)) {
            _grants[grantId] = GrantState({subject: subject, uses: 0, revoked: true, paused: false, recordedAt: 0});
        } else {
            if (state.revoked) revert ConsentLedgerGrantRevoked(grantId);
            _requireRole(subject, Roles.SUBJECT);
            state.revoked = true;
        }
        emit GrantRevoked(grantId, subject);
    }

    /// @inheritdoc IConsentLedger
    function setPaused(
        bytes32 grantId,
        bool paused,
        uint64 sequence,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        GrantState storage state = _grants[grantId];
        address subject = state.subject;
        if (subject == address(0)) revert ConsentLedgerUnknownGrant(grantId);
        _requireSignature(
            subject,
            _hashTypedDataV4(keccak256(abi.encode(SET_PAUSED_TYPEHASH, grantId, paused, sequence, nonce, deadline))),
            signature
        );
        if (!_useNonce(subject, nonce)) revert ConsentLedgerNonceUsed(subject, nonce);
        if (state.revoked) revert ConsentLedgerGrantRevoked(grantId);
        if (sequence <= _pauseSequence[grantId]) revert ConsentLedgerStaleSequence(grantId, sequence);
        if (paused) _requireRole(subject, Roles.SUBJECT); // withdrawal always works
        else _requireActive(subject, Roles.SUBJECT);
        state.paused = paused;
        _pauseSequence[grantId] = sequence;
        emit GrantPauseChanged(grantId, subject, paused, sequence, nonce);
    }

    /// @inheritdoc IConsentLedger
    function multicall(bytes[] calldata calls) external returns (uint256 succeeded) {
        uint256 n = calls.length;
        if (n > MAX_BATCH) revert ConsentLedgerBatchTooLarge(n);
        for (uint256 i; i < n; ++i) {
            (bool ok, bytes memory reason) = address(this).delegatecall(calls[i]);
            if (ok) {
                succeeded |= 1 << i;
            } else {
                // Too little gas for a wallet's capped check fails the whole call, as it would alone.
                if (reason.length == 4 && bytes4(reason) == ConsentLedgerInsufficientGas.selector) {
                    revert ConsentLedgerInsufficientGas();
                }
                emit CallFailed(i, reason);
            }
        }
    }

    // ---- releases --------------------------------------------------------------------------------

    /// @inheritdoc IConsentLedger
    function recordRelease(
        Grant calldata grant,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 grantId) {
        bytes4 reason;
        bytes32 arg;
        (grantId, reason, arg) = _release(grant, resource, requestId, deadline, signature);
        if (reason != 0) _revertWith(reason, arg);
    }

    /// @inheritdoc IConsentLedger
    function recordReleases(ReleaseItem[] calldata items) external returns (uint256 recorded) {
        uint256 n = items.length;
        if (n > MAX_BATCH) revert ConsentLedgerBatchTooLarge(n);
        for (uint256 i; i < n; ++i) {
            // Each item's scratch memory is released after it, so that a batch costs no more
            // per item at its end than at its start (memory cost grows quadratically).
            uint256 freeMemory;
            assembly ("memory-safe") {
                freeMemory := mload(0x40)
            }
            ReleaseItem calldata item = items[i];
            (bytes32 grantId, bytes4 reason,) =
                _release(item.grant, item.resource, item.requestId, item.deadline, item.signature);
            if (reason == 0) {
                recorded |= 1 << i;
            } else if (reason != ConsentLedgerNotGrantee.selector && reason != ConsentLedgerMalleableSignature.selector) {
                // Only a request the grantee signed may name its grant in a rejection.
                emit ReleaseRejected(i, grantId, reason);
            }
            assembly ("memory-safe") {
                mstore(0x40, freeMemory)
            }
        }
    }

    /// @dev Checks one release and records it; returns the error selector and argument instead of
    /// reverting, so that grouped releases can go on past a refused item. The grantee's signature
    /// comes first: nothing about a grant is looked at (or reported) for a request its grantee did
    /// not sign.
    function _release(
        Grant calldata grant,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) private returns (bytes32 grantId, bytes4 reason, bytes32 arg) {
        grantId = _hashGrant(grant);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(RELEASE_REQUEST_TYPEHASH, grantId, resource, requestId, deadline)));
        uint8 check = _verify(grant.grantee, digest, signature);
        if (check == _SIG_MALLEABLE) return (grantId, ConsentLedgerMalleableSignature.selector, 0);
        if (check != _SIG_OK) return (grantId, ConsentLedgerNotGrantee.selector, grantId);
        if (block.timestamp > deadline) return (grantId, ConsentLedgerExpiredDeadline.selector, bytes32(deadline));
        GrantState memory state = _grants[grantId];
        if (state.subject == address(0)) return (grantId, ConsentLedgerUnknownGrant.selector, grantId);
        if (state.revoked) return (grantId, ConsentLedgerGrantRevoked.selector, grantId);
        if (block.timestamp >= grant.validUntil) return (grantId, ConsentLedgerGrantExpired.selector, grantId);
        if ((grant.maxUses != 0 && state.uses >= grant.maxUses) || state.uses == type(uint32).max) {
            return (grantId, ConsentLedgerGrantExhausted.selector, grantId);
        }
        if (state.paused) return (grantId, ConsentLedgerGrantPaused.selector, grantId);
        if (block.timestamp < grant.validFrom) return (grantId, ConsentLedgerGrantNotYetValid.selector, grantId);
        if (!_covers(grant.resources, resource, state.recordedAt)) {
            return (grantId, ConsentLedgerResourceNotGranted.selector, grantId);
        }
        if (!isActive(state.subject, Roles.SUBJECT)) {
            return (grantId, ConsentLedgerInactiveMember.selector, _memberArg(state.subject, Roles.SUBJECT));
        }
        if (!isActive(grant.grantee, Roles.CONSUMER)) {
            return (grantId, ConsentLedgerInactiveMember.selector, _memberArg(grant.grantee, Roles.CONSUMER));
        }
        if (!_useBit(_requests[grant.grantee], uint256(requestId))) {
            return (grantId, ConsentLedgerRequestUsed.selector, requestId);
        }
        uint32 uses = state.uses + 1;
        _grants[grantId].uses = uses;
        emit ReleaseRecorded(grantId, grant.grantee, resource, requestId, uses, deadline, signature);
        return (grantId, 0, 0);
    }

    /// @dev A named resource is covered as listed. The wildcard covers a catalog resource of
    /// sensitivity 1–2 that was registered, and last lowered from 3+ to 1–2, at or before the
    /// grant's block: a wildcard's scope is fixed when the grant is recorded (SPEC §9.8).
    function _covers(bytes32[] calldata resources, bytes32 resource, uint40 recordedAt) private view returns (bool) {
        if (resource == WILDCARD) return false; // the wildcard names no resource of its own
        bool wildcard;
        uint256 n = resources.length;
        for (uint256 i; i < n; ++i) {
            bytes32 r = resources[i];
            if (r == resource) return true;
            if (r == WILDCARD) wildcard = true;
        }
        if (!wildcard) return false;
        Resource storage entry = _resources[resource];
        return entry.provider != address(0) && entry.sensitivity < _NAMED_ONLY_SENSITIVITY
            && entry.registeredAt <= recordedAt && entry.loweredAt <= recordedAt;
    }

    // ---- emergencies -----------------------------------------------------------------------------

    /// @inheritdoc IConsentLedger
    function proposeEmergency(Emergency calldata emergency, bytes calldata signature) external {
        _proposeOrApprove(emergency, signature, true);
    }

    /// @inheritdoc IConsentLedger
    function approveEmergency(Emergency calldata emergency, bytes calldata signature) external {
        _proposeOrApprove(emergency, signature, false);
    }

    function _proposeOrApprove(Emergency calldata e, bytes calldata signature, bool propose) private {
        if (block.timestamp > e.deadline) revert ConsentLedgerExpiredDeadline(e.deadline);
        bytes32 digest = _hashEmergency(e);
        address approver = _recoverApprover(digest, signature);
        bytes32 id = e.emergencyId;
        EmergencyState storage state = _emergencies[id];
        if (propose) {
            if (state.digest != 0) revert ConsentLedgerEmergencyExists(id);
            _checkEmergencyScope(e);
            state.digest = digest;
            state.validFrom = e.validFrom;
            state.validUntil = e.validUntil;
            emit EmergencyProposed(id, approver, e.resources, e.consumers, e.validFrom, e.validUntil, e.reason);
        } else {
            if (state.digest == 0 || state.digest != digest) revert ConsentLedgerUnknownEmergency(id);
            if (state.cancelled) revert ConsentLedgerEmergencyCancelled(id);
        }
        if (_approvedAs[id][approver] != 0) revert ConsentLedgerAlreadyApproved(approver);
        address[] storage approvers = _approvers[id];
        uint256 n = approvers.length;
        if (n >= MAX_APPROVERS) revert ConsentLedgerTooManyApprovals(id);
        _approvedAs[id][approver] = isActive(approver, Roles.ADMIN) ? Roles.ADMIN : Roles.AUDITOR;
        approvers.push(approver);
        uint8 approvals = uint8(n + 1);
        state.approvals = approvals;
        bool approved = _approvedNow(id);
        if (approved && state.activatedAt == 0) {
            // The approval that activates it: the window must start within the hour.
            if (state.validFrom > block.timestamp + MAX_EMERGENCY_DELAY) {
                revert ConsentLedgerInvalidWindow(state.validFrom, state.validUntil);
            }
            state.activatedAt = uint64(block.timestamp);
        }
        emit EmergencyApproved(id, approver, approvals, approved);
    }

    /// @inheritdoc IConsentLedger
    function cancelEmergency(bytes32 emergencyId, uint256 deadline, bytes calldata signature) external {
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        address by = _recoverApprover(
            _hashTypedDataV4(keccak256(abi.encode(EMERGENCY_CANCEL_TYPEHASH, emergencyId, deadline))), signature
        );
        EmergencyState storage state = _emergencies[emergencyId];
        if (state.digest == 0) revert ConsentLedgerUnknownEmergency(emergencyId);
        if (state.cancelled) revert ConsentLedgerEmergencyCancelled(emergencyId);
        state.cancelled = true;
        emit EmergencyCancelled(emergencyId, by);
    }

    function _checkEmergencyScope(Emergency calldata e) private view {
        if (e.validFrom >= e.validUntil || e.validUntil - e.validFrom > MAX_EMERGENCY_WINDOW) {
            revert ConsentLedgerInvalidWindow(e.validFrom, e.validUntil);
        }
        uint256 n = e.resources.length;
        if (n == 0 || n > MAX_LIST) revert ConsentLedgerInvalidResources(bytes32(n));
        for (uint256 i; i < n; ++i) {
            if (_resources[e.resources[i]].provider == address(0)) revert ConsentLedgerInvalidResources(e.resources[i]);
        }
        n = e.consumers.length;
        if (n == 0 || n > MAX_LIST) revert ConsentLedgerInvalidResources(bytes32(n));
        for (uint256 i; i < n; ++i) {
            _requireActive(e.consumers[i], Roles.CONSUMER);
        }
    }

    /// @dev Approvers sign with their own keys (ECDSA); the signer must be an active ADMIN or AUDITOR.
    function _recoverApprover(bytes32 digest, bytes calldata signature) private view returns (address approver) {
        uint8 check;
        (approver, check) = _recover(digest, signature);
        if (check == _SIG_MALLEABLE) revert ConsentLedgerMalleableSignature();
        if (check != _SIG_OK) revert ConsentLedgerInvalidSignature(address(0));
        if (!isActive(approver, Roles.ADMIN) && !isActive(approver, Roles.AUDITOR)) {
            revert ConsentLedgerNotApprover(approver);
        }
    }

    /// @dev Approved now: of the recorded approvers, those that are still unsuspended members
    /// holding the role in which they approved (ADMIN or AUDITOR) reach the threshold, with at
    /// least one of each role. At most MAX_APPROVERS iterations.
    function _approvedNow(bytes32 emergencyId) private view returns (bool) {
        address[] storage approvers = _approvers[emergencyId];
        mapping(address approver => uint8 role) storage approvedAs = _approvedAs[emergencyId];
        uint256 n = approvers.length;
        uint256 count;
        bool admin;
        bool auditor;
        for (uint256 i; i < n; ++i) {
            address approver = approvers[i];
            uint8 role = approvedAs[approver];
            if (!isActive(approver, role)) continue;
            ++count;
            if (role == Roles.ADMIN) admin = true;
            else auditor = true;
        }
        return admin && auditor && count >= _emergencyThreshold;
    }

    /// @inheritdoc IConsentLedger
    function recordEmergencyRelease(
        Emergency calldata e,
        address subject,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 id = e.emergencyId;
        (address consumer, uint8 check) = _recover(
            _hashTypedDataV4(
                keccak256(abi.encode(EMERGENCY_RELEASE_TYPEHASH, id, subject, resource, requestId, deadline))
            ),
            signature
        );
        if (check == _SIG_MALLEABLE) revert ConsentLedgerMalleableSignature();
        if (check != _SIG_OK) revert ConsentLedgerInvalidSignature(address(0));
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        EmergencyState storage state = _emergencies[id];
        if (state.digest == 0 || state.digest != _hashEmergency(e)) revert ConsentLedgerUnknownEmergency(id);
        if (state.cancelled) revert ConsentLedgerEmergencyCancelled(id);
        if (state.activatedAt == 0 || !_approvedNow(id)) revert ConsentLedgerEmergencyNotApproved(id);
        if (block.timestamp < state.validFrom || block.timestamp >= state.validUntil) {
            revert ConsentLedgerEmergencyOutsideWindow(id);
        }
        if (!_contains(e.resources, resource) || !_containsAddress(e.consumers, consumer)) {
            revert ConsentLedgerEmergencyOutOfScope(id);
        }
        _requireActive(consumer, Roles.CONSUMER);
        _requireRole(subject, Roles.SUBJECT);
        if (!_useBit(_requests[consumer], uint256(requestId))) revert ConsentLedgerRequestUsed(requestId);
        emit EmergencyReleaseRecorded(id, consumer, subject, resource, requestId, deadline, signature);
    }

    // ---- views -----------------------------------------------------------------------------------

    /// @inheritdoc IConsentLedger
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IConsentLedger
    function hashGrant(Grant calldata grant) external view returns (bytes32) {
        return _hashGrant(grant);
    }

    /// @inheritdoc IConsentLedger
    function grantState(bytes32 grantId) external view returns (GrantState memory) {
        return _grants[grantId];
    }

    /// @inheritdoc IConsentLedger
    function grantStatus(Grant calldata grant) external view returns (Status) {
        GrantState memory state = _grants[_hashGrant(grant)];
        if (state.subject == address(0)) return Status.Unknown;
        if (state.revoked) return Status.Revoked;
        if (block.timestamp >= grant.validUntil) return Status.Expired;
        if (grant.maxUses != 0 && state.uses >= grant.maxUses) return Status.Exhausted;
        if (state.paused) return Status.Paused;
        if (block.timestamp < grant.validFrom) return Status.NotYetValid;
        return Status.Active;
    }

    /// @inheritdoc IConsentLedger
    function emergencyState(bytes32 emergencyId) external view returns (EmergencyState memory) {
        return _emergencies[emergencyId];
    }

    /// @inheritdoc IConsentLedger
    function nonceUsed(address signer, uint256 nonce) external view returns (bool) {
        return BitMaps.get(_nonces[signer], nonce);
    }

    /// @inheritdoc IConsentLedger
    function requestUsed(address grantee, bytes32 requestId) external view returns (bool) {
        return BitMaps.get(_requests[grantee], uint256(requestId));
    }

    /// @inheritdoc IConsentLedger
    function pauseSequence(bytes32 grantId) external view returns (uint64) {
        return _pauseSequence[grantId];
    }

    /// @inheritdoc IConsentLedger
    function emergencyApprovers(bytes32 emergencyId) external view returns (address[] memory) {
        return _approvers[emergencyId];
    }

    /// @inheritdoc IConsentLedger
    function emergencyActive(bytes32 emergencyId) external view returns (bool) {
        EmergencyState storage state = _emergencies[emergencyId];
        return state.digest != 0 && !state.cancelled && state.activatedAt != 0 && state.validFrom <= block.timestamp
            && block.timestamp < state.validUntil && _approvedNow(emergencyId);
    }

    /// @inheritdoc IConsentLedger
    function emergencyThreshold() external view returns (uint8) {
        return _emergencyThreshold;
    }

    // ---- helpers ---------------------------------------------------------------------------------

    /// @dev EIP-712 digest of `g`: the struct hash is the 9 head words of the calldata tuple behind
    /// the type hash, with the `resources` offset word replaced by the hash of the packed array
    /// (hashed in scratch memory, nothing allocated). Head words with dirty high bits would give
    /// another digest, which no subject signed (and Solidity's own reads of them revert).
    function _hashGrant(Grant calldata g) private view returns (bytes32) {
        bytes32[] calldata resources = g.resources;
        bytes32 typeHash = GRANT_TYPEHASH;
        bytes32 structHash;
        assembly ("memory-safe") {
            let m := mload(0x40)
            let size := shl(5, resources.length)
            calldatacopy(m, resources.offset, size)
            let resourcesHash := keccak256(m, size)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), g, 0x120)
            mstore(add(m, 0x60), resourcesHash)
            structHash := keccak256(m, 0x140)
        }
        return _hashTypedDataV4(structHash);
    }

    function _hashEmergency(Emergency calldata e) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    EMERGENCY_TYPEHASH,
                    e.emergencyId,
                    keccak256(abi.encodePacked(e.resources)),
                    keccak256(abi.encodePacked(e.consumers)),
                    e.validFrom,
                    e.validUntil,
                    e.reason,
                    e.deadline
                )
            )
        );
    }

    function _requireSignature(address signer, bytes32 digest, bytes calldata signature) private view {
        uint8 check = _verify(signer, digest, signature);
        if (check == _SIG_MALLEABLE) revert ConsentLedgerMalleableSignature();
        if (check != _SIG_OK) revert ConsentLedgerInvalidSignature(signer);
    }

    function _requireActive(address account, uint8 role) private view {
        if (!isActive(account, role)) revert ConsentLedgerInactiveMember(account, role);
    }

    /// @dev Holds the role, suspended or not (withdrawals, and an emergency release's subject).
    function _requireRole(address account, uint8 role) private view {
        if (_members[account].roles & role == 0) revert ConsentLedgerInactiveMember(account, role);
    }

    /// @dev Packs an account and a role into the one-word argument of a refused release.
    function _memberArg(address account, uint8 role) private pure returns (bytes32) {
        return bytes32((uint256(role) << 160) | uint256(uint160(account)));
    }

    function _contains(bytes32[] calldata list, bytes32 value) private pure returns (bool) {
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == value) return true;
        }
        return false;
    }

    function _containsAddress(address[] calldata list, address value) private pure returns (bool) {
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == value) return true;
        }
        return false;
    }

    /// @dev Reverts with `reason(arg)`, or `reason()` for the argument-less malleability error.
    function _revertWith(bytes4 reason, bytes32 arg) private pure {
        if (reason == ConsentLedgerMalleableSignature.selector) revert ConsentLedgerMalleableSignature();
        if (reason == ConsentLedgerInactiveMember.selector) {
            revert ConsentLedgerInactiveMember(address(uint160(uint256(arg))), uint8(uint256(arg) >> 160));
        }
        assembly ("memory-safe") {
            mstore(0, reason)
            mstore(4, arg)
            revert(0, 36)
        }
    }
}
