// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title MemberRegistry
/// @notice See {IMemberRegistry}. The constructor's `admin` account is the first ADMIN.
/// @dev Abstract: it is deployed as part of {ConsentLedger}, so that the ledger's checks read
/// members with plain storage reads instead of external calls.
abstract contract MemberRegistry is IMemberRegistry {
    /// @dev Length of a raw X25519 public key (DHKEM(X25519, HKDF-SHA256)).
    uint256 private constant _X25519_KEY_LENGTH = 32;
    /// @dev Length of an MLKEM768-X25519 hybrid public key (1184 + 32 bytes).
    uint256 private constant _MLKEM768_X25519_KEY_LENGTH = 1216;

    mapping(address account => Member) internal _members;
    mapping(address account => bytes) private _hpkeKeys;

    constructor(address admin) {
        if (admin == address(0)) revert MemberRegistryZeroAddress();
        _members[admin] = Member({roles: Roles.ADMIN, suspended: false, since: uint64(block.timestamp), orgId: 0});
        emit MemberOnboarded(admin, Roles.ADMIN, 0, "");
    }

    modifier onlyAdmin() {
        _checkAdmin();
        _;
    }

    function _checkAdmin() internal view {
        if (!isActive(msg.sender, Roles.ADMIN)) revert MemberRegistryUnauthorized(msg.sender);
    }

    /// @inheritdoc IMemberRegistry
    function onboard(address account, uint8 roles, bytes32 orgId, bytes calldata key) external onlyAdmin {
        if (account == address(0)) revert MemberRegistryZeroAddress();
        if (_members[account].roles != 0) revert MemberRegistryAlreadyMember(account);
        _checkRolesAndKey(roles, key);
        _members[account] = Member({roles: roles, suspended: false, since: uint64(block.timestamp), orgId: orgId});
        if (key.length != 0) _hpkeKeys[account] = key;
        emit MemberOnboarded(account, roles, orgId, key);
    }

    /// @inheritdoc IMemberRegistry
    function updateMember(address account, uint8 roles, bytes32 orgId, bytes calldata key) external onlyAdmin {
        Member storage m = _members[account];
        if (m.roles == 0) revert MemberRegistryUnknownMember(account);
        _checkRolesAndKey(roles, key);
        if (account == msg.sender && roles & Roles.ADMIN == 0) revert MemberRegistrySelfLockout(account);
        m.roles = roles;
        m.orgId = orgId;
        if (key.length != 0) _hpkeKeys[account] = key;
        else delete _hpkeKeys[account];
        emit MemberUpdated(account, roles, orgId, key);
    }

    /// @inheritdoc IMemberRegistry
    function setSuspended(address account, bool suspended) external onlyAdmin {
        Member storage m = _members[account];
        if (m.roles == 0) revert MemberRegistryUnknownMember(account);
        if (account == msg.sender) revert MemberRegistrySelfLockout(account);
        if (m.suspended == suspended) revert MemberRegistrySuspensionUnchanged(account, suspended);
        m.suspended = suspended;
        emit MemberSuspensionChanged(account, suspended, msg.sender);
    }

    /// @inheritdoc IMemberRegistry
    function member(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @inheritdoc IMemberRegistry
    function hpkeKey(address account) external view returns (bytes memory) {
        return _hpkeKeys[account];
    }

    /// @inheritdoc IMemberRegistry
    function isActive(address account, uint8 roles) public view returns (bool) {
        Member storage m = _members[account];
        return m.roles != 0 && !m.suspended && m.roles & roles == roles;
    }

    function _checkRolesAndKey(uint8 roles, bytes calldata key) private pure {
        if (roles == 0 || roles & ~Roles.ALL != 0) revert MemberRegistryInvalidRoles(roles);
        bool consumer = roles & Roles.CONSUMER != 0;
        bool knownLength = key.length == _X25519_KEY_LENGTH || key.length == _MLKEM768_X25519_KEY_LENGTH;
        if (consumer ? !knownLength : key.length != 0) revert MemberRegistryInvalidHpkeKey(key.length);
    }
}
