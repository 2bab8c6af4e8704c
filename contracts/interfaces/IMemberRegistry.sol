// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian member registry
/// @notice The permissioned ledger's list of parties. Every party is an account; the registry
/// gives it roles (a bit mask), an optional organisation identifier (a 32-byte hash, never the
/// code itself) and, for consumers, the HPKE public key that releases are sealed to.
/// Only an active ADMIN changes the registry. A suspended member can do nothing anywhere.
interface IMemberRegistry {
    /// @notice What the registry keeps for one account.
    /// @param roles bit mask of ROLE_* constants; zero means "not a member"
    /// @param suspended true while the member is suspended
    /// @param since block timestamp of onboarding
    /// @param orgId keccak256 of the organisation code, or zero for natural persons
    struct Member {
        uint8 roles;
        bool suspended;
        uint64 since;
        bytes32 orgId;
    }

    /// @notice The caller is not an active ADMIN.
    error MemberRegistryUnauthorized(address caller);
    /// @notice The account is the zero address.
    error MemberRegistryZeroAddress();
    /// @notice The account is already a member (use updateMember).
    error MemberRegistryAlreadyMember(address account);
    /// @notice The account is not a member.
    error MemberRegistryUnknownMember(address account);
    /// @notice The role mask is empty or names an unknown role.
    error MemberRegistryInvalidRoles(uint8 roles);
    /// @notice A CONSUMER needs an HPKE key of a known length (32 or 1216 bytes); other members
    /// may register none.
    error MemberRegistryInvalidHpkeKey(uint256 length);
    /// @notice The member is already in the requested suspension state.
    error MemberRegistrySuspensionUnchanged(address account, bool suspended);
    /// @notice An ADMIN may not suspend itself or drop its own ADMIN role (the registry would be
    /// left without anyone able to undo it).
    error MemberRegistrySelfLockout(address account);

    /// @notice A new member was onboarded.
    event MemberOnboarded(address indexed account, uint8 roles, bytes32 orgId, bytes hpkeKey);
    /// @notice A member's roles, organisation id or HPKE key changed.
    event MemberUpdated(address indexed account, uint8 roles, bytes32 orgId, bytes hpkeKey);
    /// @notice A member was suspended (`suspended` true) or reinstated (false).
    event MemberSuspensionChanged(address indexed account, bool suspended, address indexed by);

    /// @notice Onboards `account` with `roles`. ADMIN only.
    function onboard(address account, uint8 roles, bytes32 orgId, bytes calldata hpkeKey) external;

    /// @notice Replaces the roles, organisation id and HPKE key of a member. ADMIN only.
    function updateMember(address account, uint8 roles, bytes32 orgId, bytes calldata hpkeKey) external;

    /// @notice Suspends (`suspended` true) or reinstates a member. ADMIN only.
    function setSuspended(address account, bool suspended) external;

    /// @notice The stored record of `account` (all zero for non-members).
    function member(address account) external view returns (Member memory);

    /// @notice The HPKE public key of `account` (empty when none).
    function hpkeKey(address account) external view returns (bytes memory);

    /// @notice True when `account` is a member, not suspended, and holds every role in `roles`.
    function isActive(address account, uint8 roles) external view returns (bool);
}
