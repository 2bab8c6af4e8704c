// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian member registry
/// @notice The permissioned ledger's list of parties. Every party is an account; the registry
/// gives it roles (a bit mask), an optional organisation identifier (a 32-byte hash, never the
/// code itself) and, for consumers, the HPKE public key that releases are sealed to.
/// Only an active ADMIN changes the registry. A suspended member can do nothing anywhere, except
/// withdraw consent (revoke, pause).
///
/// Separation of duties (SPEC §9.8): no account holds both ADMIN and AUDITOR, and an AUDITOR is
/// enrolled only with the EIP-712 `AuditorEnrolment` signature of another active AUDITOR (the
/// deployment names the first ones). A contract wallet (EIP-1271) is onboarded only with its own
/// proof of control, a signed `WalletOnboarding`; only such members' `isValidSignature` is ever
/// consulted, with a gas cap.
interface IMemberRegistry {
    /// @notice What the registry keeps for one account.
    /// @param roles bit mask of ROLE_* constants; zero means "not a member"
    /// @param suspended true while the member is suspended
    /// @param wallet true when onboarded as an EIP-1271 contract wallet ({onboardWallet})
    /// @param since block timestamp of onboarding
    /// @param orgId keccak256 of the organisation code, or zero for natural persons
    struct Member {
        uint8 roles;
        bool suspended;
        bool wallet;
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

    /// @notice The mask holds both ADMIN and AUDITOR (separation of duties).
    error MemberRegistryConflictingRoles(uint8 roles);
    /// @notice Giving AUDITOR needs another auditor's approval: use {enrolAuditor}.
    error MemberRegistryAuditorApprovalRequired(address account);
    /// @notice The account has code: a contract wallet is onboarded with {onboardWallet} (and
    /// can hold neither ADMIN nor AUDITOR).
    error MemberRegistryWalletProofRequired(address account);
    /// @notice The wallet has no code, or its `isValidSignature` did not accept the onboarding proof.
    error MemberRegistryInvalidWalletProof(address account);
    /// @notice The message's `deadline` has passed.
    error MemberRegistryExpiredDeadline(uint256 deadline);
    /// @notice The enrolment approval is not a valid signature of an active AUDITOR other than the
    /// enrolled account (`signer` is zero when no signer could be recovered).
    error MemberRegistryInvalidApproval(address signer);
    /// @notice The approval signature's `s` is in the upper half of the curve order.
    error MemberRegistryMalleableSignature();
    /// @notice The signer already used this nonce (the ledger's one nonce space per signer).
    error MemberRegistryNonceUsed(address signer, uint256 nonce);
    /// @notice The deployment names at most 16 first auditors.
    error MemberRegistryTooManyAuditors(uint256 count);

    /// @notice A new member was onboarded.
    event MemberOnboarded(address indexed account, uint8 roles, bytes32 orgId, bytes hpkeKey);
    /// @notice A member's roles, organisation id or HPKE key changed.
    event MemberUpdated(address indexed account, uint8 roles, bytes32 orgId, bytes hpkeKey);
    /// @notice A member was suspended (`suspended` true) or reinstated (false).
    event MemberSuspensionChanged(address indexed account, bool suspended, address indexed by);
    /// @notice `account` received the AUDITOR role with the signed approval of `approver` (emitted
    /// after its {MemberOnboarded} or {MemberUpdated}).
    event AuditorEnrolled(address indexed account, address indexed approver);

    /// @notice Onboards the account (an EOA) `account` with `roles`. ADMIN only. Refuses AUDITOR
    /// (use {enrolAuditor}), ADMIN together with AUDITOR, and accounts with code (use {onboardWallet}).
    /// Checks: zero address, already member, roles (InvalidRoles, ConflictingRoles), HPKE key,
    /// AUDITOR in the mask (AuditorApprovalRequired), code (WalletProofRequired).
    function onboard(address account, uint8 roles, bytes32 orgId, bytes calldata hpkeKey) external;

    /// @notice Onboards the EIP-1271 contract wallet `account`, given `proof`, which its
    /// `isValidSignature` must accept for the EIP-712 digest of
    /// `WalletOnboarding(address account,uint8 roles,bytes32 orgId,uint256 deadline)`. ADMIN only.
    /// The wallet may hold neither ADMIN nor AUDITOR. Checks: zero address, already member, roles
    /// (InvalidRoles, also for ADMIN or AUDITOR), HPKE key, deadline (ExpiredDeadline), code and
    /// proof (InvalidWalletProof).
    function onboardWallet(
        address account,
        uint8 roles,
        bytes32 orgId,
        bytes calldata hpkeKey,
        uint256 deadline,
        bytes calldata proof
    ) external;

    /// @notice Replaces the roles, organisation id and HPKE key of a member. ADMIN only. Refuses
    /// to add AUDITOR (use {enrolAuditor}; removing it is allowed), ADMIN together with AUDITOR,
    /// and ADMIN or AUDITOR for a wallet. Checks: unknown member, roles (InvalidRoles,
    /// ConflictingRoles), HPKE key, wallet with ADMIN/AUDITOR (InvalidRoles), AUDITOR added
    /// (AuditorApprovalRequired), self lockout.
    function updateMember(address account, uint8 roles, bytes32 orgId, bytes calldata hpkeKey) external;

    /// @notice Gives `account` (new, or an existing member) `roles`, which must include AUDITOR,
    /// with the EIP-712 `AuditorEnrolment(address account,uint256 nonce,uint256 deadline)`
    /// signature of an active AUDITOR other than `account`. ADMIN only. The approver's `nonce` is
    /// spent in the ledger's per-signer nonce space (shared with Grant, Revoke and SetPaused).
    /// Checks: zero address, the caller itself (SelfLockout), roles (InvalidRoles if AUDITOR is
    /// missing, ConflictingRoles), HPKE key, account with code or a wallet member
    /// (WalletProofRequired), deadline (ExpiredDeadline), signature (MalleableSignature,
    /// InvalidApproval), nonce (NonceUsed).
    function enrolAuditor(
        address account,
        uint8 roles,
        bytes32 orgId,
        bytes calldata hpkeKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Suspends (`suspended` true) or reinstates a member. ADMIN only.
    function setSuspended(address account, bool suspended) external;

    /// @notice The stored record of `account` (all zero for non-members).
    function member(address account) external view returns (Member memory);

    /// @notice The HPKE public key of `account` (empty when none).
    function hpkeKey(address account) external view returns (bytes memory);

    /// @notice True when `account` is a member, not suspended, and holds every role in `roles`.
    function isActive(address account, uint8 roles) external view returns (bool);
}
