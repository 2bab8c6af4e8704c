// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {DataCatalog} from "./DataCatalog.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {MemberRegistry} from "./MemberRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title ConsentLedger
/// @notice See {IConsentLedger}. Also the member registry and data catalog of the deployment
/// (inherited, so the ledger's checks are storage reads, not external calls).
contract ConsentLedger is IConsentLedger, DataCatalog, EIP712 {
    /// @dev keccak256("Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)")
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
    );
    /// @dev keccak256("Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)")
    bytes32 public constant REVOKE_TYPEHASH = keccak256("Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)");
    /// @dev keccak256("SetPaused(bytes32 grantId,bool paused,uint256 nonce,uint256 deadline)")
    bytes32 public constant SET_PAUSED_TYPEHASH =
        keccak256("SetPaused(bytes32 grantId,bool paused,uint256 nonce,uint256 deadline)");
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

    /// @notice Most resources (and consumers) one grant or emergency may name; bounds every loop.
    uint256 public constant MAX_LIST = 32;
    /// @notice Most items of one grouped release (one bit each in the returned mask).
    uint256 public constant MAX_BATCH = 256;
    /// @notice Longest emergency window.
    uint64 public constant MAX_EMERGENCY_WINDOW = 72 hours;

    uint8 private immutable _emergencyThreshold;

    mapping(bytes32 grantId => GrantState) private _grants;
    mapping(address signer => mapping(uint256 word => uint256 bits)) private _nonces;
    mapping(address grantee => mapping(uint256 word => uint256 bits)) private _requests;
    mapping(bytes32 emergencyId => EmergencyState) private _emergencies;
    mapping(bytes32 emergencyId => mapping(address approver => bool)) private _approvedBy;

    /// @param admin the first ADMIN (the platform operator)
    /// @param threshold approvals that activate an emergency; at least 2 (SPEC §3)
    constructor(address admin, uint8 threshold) MemberRegistry(admin) EIP712("Quanchenglian", "1") {
        if (threshold < 2) revert ConsentLedgerInvalidThreshold(threshold);
        _emergencyThreshold = threshold;
    }

    // ---- grants ----------------------------------------------------------------------------------

    /// @inheritdoc IConsentLedger
    function recordGrant(Grant calldata grant, bytes calldata signature) external returns (bytes32 grantId) {
        if (block.timestamp > grant.deadline) revert ConsentLedgerExpiredDeadline(grant.deadline);
        grantId = _hashGrant(grant);
        _requireSignature(grant.subject, grantId, signature);
        if (_grants[grantId].subject != address(0)) revert ConsentLedgerNonceUsed(grant.subject, grant.nonce);
        _requireActive(grant.subject, Roles.SUBJECT);
        _requireActive(grant.grantee, Roles.CONSUMER);
        if (grant.validFrom >= grant.validUntil) revert ConsentLedgerInvalidWindow(grant.validFrom, grant.validUntil);
        uint256 n = grant.resources.length;
        if (n == 0 || n > MAX_LIST) revert ConsentLedgerInvalidResources(bytes32(n));
        for (uint256 i; i < n; ++i) {
            bytes32 r = grant.resources[i];
            if (r != WILDCARD && _resources[r].provider == address(0)) revert ConsentLedgerInvalidResources(r);
        }
        _grants[grantId] = GrantState({subject: grant.subject, uses: 0, revoked: false, paused: false});
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
        GrantState storage state = _grants[grantId];
        address subject = state.subject;
        if (subject == address(0)) revert ConsentLedgerUnknownGrant(grantId);
        _requireSignature(subject, _hashTypedDataV4(keccak256(abi.encode(REVOKE_TYPEHASH, grantId, nonce, deadline))), signature);
        if (state.revoked) revert ConsentLedgerGrantRevoked(grantId);
        _requireActive(subject, Roles.SUBJECT);
        state.revoked = true;
        emit GrantRevoked(grantId, subject);
    }

    /// @inheritdoc IConsentLedger
    function setPaused(bytes32 grantId, bool paused, uint256 nonce, uint256 deadline, bytes calldata signature)
        external
    {
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        GrantState storage state = _grants[grantId];
        address subject = state.subject;
        if (subject == address(0)) revert ConsentLedgerUnknownGrant(grantId);
        _requireSignature(
            subject,
            _hashTypedDataV4(keccak256(abi.encode(SET_PAUSED_TYPEHASH, grantId, paused, nonce, deadline))),
            signature
        );
        if (!_useBit(_nonces[subject], uint256(nonce))) revert ConsentLedgerNonceUsed(subject, nonce);
        if (state.revoked) revert ConsentLedgerGrantRevoked(grantId);
        if (state.paused == paused) revert ConsentLedgerPauseUnchanged(grantId);
        _requireActive(subject, Roles.SUBJECT);
        state.paused = paused;
        emit GrantPauseChanged(grantId, subject, paused, nonce);
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
            ReleaseItem calldata item = items[i];
            (bytes32 grantId, bytes4 reason, ) =
                _release(item.grant, item.resource, item.requestId, item.deadline, item.signature);
            if (reason == 0) recorded |= 1 << i;
            else emit ReleaseRejected(i, grantId, reason);
        }
    }

    /// @dev Checks one release and records it; returns the error selector and argument instead of
    /// reverting, so that grouped releases can go on past a refused item.
    function _release(
        Grant calldata grant,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline,
        bytes calldata signature
    ) private returns (bytes32 grantId, bytes4 reason, bytes32 arg) {
        grantId = _hashGrant(grant);
        if (block.timestamp > deadline) return (grantId, ConsentLedgerExpiredDeadline.selector, bytes32(deadline));
        GrantState memory state = _grants[grantId];
        if (state.subject == address(0)) return (grantId, ConsentLedgerUnknownGrant.selector, grantId);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(RELEASE_REQUEST_TYPEHASH, grantId, resource, requestId, deadline)));
        uint8 check = _verify(grant.grantee, digest, signature);
        if (check == _SIG_MALLEABLE) return (grantId, ConsentLedgerMalleableSignature.selector, 0);
        if (check != _SIG_OK) return (grantId, ConsentLedgerNotGrantee.selector, grantId);
        if (state.revoked) return (grantId, ConsentLedgerGrantRevoked.selector, grantId);
        if (block.timestamp >= grant.validUntil) return (grantId, ConsentLedgerGrantExpired.selector, grantId);
        if ((grant.maxUses != 0 && state.uses >= grant.maxUses) || state.uses == type(uint32).max) {
            return (grantId, ConsentLedgerGrantExhausted.selector, grantId);
        }
        if (state.paused) return (grantId, ConsentLedgerGrantPaused.selector, grantId);
        if (block.timestamp < grant.validFrom) return (grantId, ConsentLedgerGrantNotYetValid.selector, grantId);
        if (!_covers(grant.resources, resource)) return (grantId, ConsentLedgerResourceNotGranted.selector, grantId);
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
        emit ReleaseRecorded(grantId, grant.grantee, resource, requestId, uses);
        return (grantId, 0, 0);
    }

    function _covers(bytes32[] calldata resources, bytes32 resource) private view returns (bool) {
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
        return entry.provider != address(0) && entry.sensitivity < _NAMED_ONLY_SENSITIVITY;
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
        EmergencyState storage state = _emergencies[e.emergencyId];
        if (propose) {
            if (state.digest != 0) revert ConsentLedgerEmergencyExists(e.emergencyId);
            _checkEmergencyScope(e);
            state.digest = digest;
            state.validFrom = e.validFrom;
            state.validUntil = e.validUntil;
            emit EmergencyProposed(
                e.emergencyId, approver, e.resources, e.consumers, e.validFrom, e.validUntil, e.reason
            );
        } else if (state.digest == 0 || state.digest != digest) {
            revert ConsentLedgerUnknownEmergency(e.emergencyId);
        }
        if (_approvedBy[e.emergencyId][approver]) revert ConsentLedgerAlreadyApproved(approver);
        _approvedBy[e.emergencyId][approver] = true;
        uint8 roles = _members[approver].roles;
        if (roles & Roles.ADMIN != 0) state.adminApproved = true;
        if (roles & Roles.AUDITOR != 0) state.auditorApproved = true;
        uint8 approvals = state.approvals + 1;
        state.approvals = approvals;
        emit EmergencyApproved(e.emergencyId, approver, approvals, _emergencyActive(state));
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
        if (signature.length != 65) revert ConsentLedgerInvalidSignature(address(0));
        (bytes32 r, bytes32 s, uint8 v) = _split(signature);
        ECDSA.RecoverError err;
        (approver, err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert ConsentLedgerMalleableSignature();
        if (err != ECDSA.RecoverError.NoError) revert ConsentLedgerInvalidSignature(address(0));
        if (!isActive(approver, Roles.ADMIN) && !isActive(approver, Roles.AUDITOR)) {
            revert ConsentLedgerNotApprover(approver);
        }
    }

    function _emergencyActive(EmergencyState storage state) private view returns (bool) {
        return state.approvals >= _emergencyThreshold && state.adminApproved && state.auditorApproved;
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
        if (block.timestamp > deadline) revert ConsentLedgerExpiredDeadline(deadline);
        EmergencyState storage state = _emergencies[e.emergencyId];
        if (state.digest == 0 || state.digest != _hashEmergency(e)) revert ConsentLedgerUnknownEmergency(e.emergencyId);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(EMERGENCY_RELEASE_TYPEHASH, e.emergencyId, subject, resource, requestId, deadline))
        );
        if (signature.length != 65) revert ConsentLedgerInvalidSignature(address(0));
        (bytes32 r, bytes32 s, uint8 v) = _split(signature);
        (address consumer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert ConsentLedgerMalleableSignature();
        if (err != ECDSA.RecoverError.NoError) revert ConsentLedgerInvalidSignature(address(0));
        if (!_emergencyActive(state)) revert ConsentLedgerEmergencyNotApproved(e.emergencyId);
        if (block.timestamp < state.validFrom || block.timestamp >= state.validUntil) {
            revert ConsentLedgerEmergencyOutsideWindow(e.emergencyId);
        }
        if (!_contains(e.resources, resource) || !_containsAddress(e.consumers, consumer)) {
            revert ConsentLedgerEmergencyOutOfScope(e.emergencyId);
        }
        _requireActive(consumer, Roles.CONSUMER);
        if (_members[subject].roles & Roles.SUBJECT == 0) revert ConsentLedgerInactiveMember(subject, Roles.SUBJECT);
        if (!_useBit(_requests[consumer], uint256(requestId))) revert ConsentLedgerRequestUsed(requestId);
        emit EmergencyReleaseRecorded(e.emergencyId, consumer, subject, resource, requestId);
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
        return _nonces[signer][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IConsentLedger
    function requestUsed(address grantee, bytes32 requestId) external view returns (bool) {
        uint256 id = uint256(requestId);
        return _requests[grantee][id >> 8] & (1 << (id & 0xff)) != 0;
    }

    /// @inheritdoc IConsentLedger
    function emergencyThreshold() external view returns (uint8) {
        return _emergencyThreshold;
    }

    // ---- helpers ---------------------------------------------------------------------------------

    uint8 private constant _SIG_OK = 0;
    uint8 private constant _SIG_INVALID = 1;
    uint8 private constant _SIG_MALLEABLE = 2;

    function _hashGrant(Grant calldata g) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    GRANT_TYPEHASH,
                    g.subject,
                    g.grantee,
                    keccak256(abi.encodePacked(g.resources)),
                    g.purpose,
                    g.validFrom,
                    g.validUntil,
                    g.maxUses,
                    g.nonce,
                    g.deadline
                )
            )
        );
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

    /// @dev ECDSA first (cheap, and tells a malleable signature apart); EIP-1271 for contract wallets.
    function _verify(address signer, bytes32 digest, bytes calldata signature) private view returns (uint8) {
        if (signature.length == 65) {
            (bytes32 r, bytes32 s, uint8 v) = _split(signature);
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
            if (err == ECDSA.RecoverError.NoError && recovered == signer) return _SIG_OK;
            if (err == ECDSA.RecoverError.InvalidSignatureS) return _SIG_MALLEABLE;
        }
        if (signer.code.length != 0 && SignatureChecker.isValidERC1271SignatureNow(signer, digest, signature)) {
            return _SIG_OK;
        }
        return _SIG_INVALID;
    }

    function _requireSignature(address signer, bytes32 digest, bytes calldata signature) private view {
        uint8 check = _verify(signer, digest, signature);
        if (check == _SIG_MALLEABLE) revert ConsentLedgerMalleableSignature();
        if (check != _SIG_OK) revert ConsentLedgerInvalidSignature(signer);
    }

    function _split(bytes calldata signature) private pure returns (bytes32 r, bytes32 s, uint8 v) {
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
    }

    function _requireActive(address account, uint8 role) private view {
        if (!isActive(account, role)) revert ConsentLedgerInactiveMember(account, role);
    }

    /// @dev Sets bit `id & 0xff` of word `id >> 8`; false when it was already set.
    function _useBit(mapping(uint256 => uint256) storage bitmap, uint256 id) private returns (bool) {
        uint256 word = id >> 8;
        uint256 bit = 1 << (id & 0xff);
        uint256 bits = bitmap[word];
        if (bits & bit != 0) return false;
        bitmap[word] = bits | bit;
        return true;
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
