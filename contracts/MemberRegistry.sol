// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {BitMaps} from "@openzeppelin/contracts/utils/structs/BitMaps.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title MemberRegistry
/// @notice See {IMemberRegistry}. The constructor's `admin` account is the first ADMIN, its
/// `auditors` the first AUDITORs.
/// @dev Abstract: it is deployed as part of {ConsentLedger}, so that the ledger's checks read
/// members with plain storage reads instead of external calls. It also holds what the registry
/// and the ledger share: the EIP-712 domain `{name "Quanchenglian", version "1"}` (the ledger's),
/// the per-signer nonce bitmaps, and the signature helpers (ECDSA, and the gas-capped EIP-1271 call).
abstract contract MemberRegistry is IMemberRegistry, EIP712 {
    using BitMaps for BitMaps.BitMap;

    /// @dev keccak256("AuditorEnrolment(address account,uint256 nonce,uint256 deadline)")
    bytes32 public constant AUDITOR_ENROLMENT_TYPEHASH =
        keccak256("AuditorEnrolment(address account,uint256 nonce,uint256 deadline)");
    /// @dev keccak256("WalletOnboarding(address account,uint8 roles,bytes32 orgId,uint256 deadline)")
    bytes32 public constant WALLET_ONBOARDING_TYPEHASH =
        keccak256("WalletOnboarding(address account,uint8 roles,bytes32 orgId,uint256 deadline)");

    /// @notice Gas given to a wallet's `isValidSignature` (EIP-1271); it reads at most 32 bytes back.
    uint256 public constant ERC1271_GAS = 100_000;
    /// @notice Most auditors a deployment names.
    uint256 public constant MAX_INITIAL_AUDITORS = 16;

    /// @dev Length of a raw X25519 public key (DHKEM(X25519, HKDF-SHA256)).
    uint256 private constant _X25519_KEY_LENGTH = 32;
    /// @dev Length of an MLKEM768-X25519 hybrid public key (1184 + 32 bytes).
    uint256 private constant _MLKEM768_X25519_KEY_LENGTH = 1216;
    /// @dev Gas kept back before a wallet call: with 64/63 of the cap plus this, the callee always
    /// gets the full cap, so a relayer cannot make a wallet's check fail by short-changing gas.
    uint256 private constant _ERC1271_RESERVE = 5_000;

    uint8 internal constant _SIG_OK = 0;
    uint8 internal constant _SIG_INVALID = 1;
    uint8 internal constant _SIG_MALLEABLE = 2;

    mapping(address account => Member) internal _members;
    mapping(address account => bytes) private _hpkeKeys;
    /// @dev One nonce space per signer across Grant, Revoke, SetPaused and AuditorEnrolment:
    /// bit `nonce & 0xff` of word `nonce >> 8` (the layout of {BitMaps.BitMap}).
    mapping(address signer => BitMaps.BitMap) internal _nonces;

    /// @param admin the first ADMIN (the platform operator)
    /// @param auditors the first AUDITORs (enrolled without approval; may be empty; EOAs)
    constructor(address admin, address[] memory auditors) EIP712("Quanchenglian", "1") {
        if (admin == address(0)) revert MemberRegistryZeroAddress();
        _members[admin] =
            Member({roles: Roles.ADMIN, suspended: false, wallet: false, since: uint64(block.timestamp), orgId: 0});
        emit MemberOnboarded(admin, Roles.ADMIN, 0, "");
        uint256 n = auditors.length;
        if (n > MAX_INITIAL_AUDITORS) revert MemberRegistryTooManyAuditors(n);
        for (uint256 i; i < n; ++i) {
            address auditor = auditors[i];
            if (auditor == address(0)) revert MemberRegistryZeroAddress();
            if (auditor == admin) revert MemberRegistryConflictingRoles(Roles.ADMIN | Roles.AUDITOR);
            if (_members[auditor].roles != 0) revert MemberRegistryAlreadyMember(auditor);
            if (auditor.code.length != 0) revert MemberRegistryWalletProofRequired(auditor);
            _members[auditor] = Member({
                roles: Roles.AUDITOR,
                suspended: false,
                wallet: false,
                since: uint64(block.timestamp),
                orgId: 0
            });
            emit MemberOnboarded(auditor, Roles.AUDITOR, 0, "");
        }
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
        _checkNew(account);
        _checkRolesAndKey(roles, key);
        if (roles & Roles.AUDITOR != 0) revert MemberRegistryAuditorApprovalRequired(account);
        if (account.code.length != 0) revert MemberRegistryWalletProofRequired(account);
        _add(account, roles, orgId, key, false);
    }

    /// @inheritdoc IMemberRegistry
    function onboardWallet(
        address account,
        uint8 roles,
        bytes32 orgId,
        bytes calldata key,
        uint256 deadline,
        bytes calldata proof
    ) external onlyAdmin {
        _checkNew(account);
        _checkRolesAndKey(roles, key);
        if (roles & (Roles.ADMIN | Roles.AUDITOR) != 0) revert MemberRegistryInvalidRoles(roles);
        if (block.timestamp > deadline) revert MemberRegistryExpiredDeadline(deadline);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(WALLET_ONBOARDING_TYPEHASH, account, roles, orgId, deadline)));
        if (account.code.length == 0 || !_isValidWalletSignature(account, digest, proof)) {
            revert MemberRegistryInvalidWalletProof(account);
        }
        _add(account, roles, orgId, key, true);
    }

    /// @inheritdoc IMemberRegistry
    function updateMember(address account, uint8 roles, bytes32 orgId, bytes calldata key) external onlyAdmin {
        Member storage m = _members[account];
        uint8 current = m.roles;
        if (current == 0) revert MemberRegistryUnknownMember(account);
        _checkRolesAndKey(roles, key);
        if (m.wallet && roles & (Roles.ADMIN | Roles.AUDITOR) != 0) revert MemberRegistryInvalidRoles(roles);
        if (roles & Roles.AUDITOR != 0 && current & Roles.AUDITOR == 0) {
            revert MemberRegistryAuditorApprovalRequired(account);
        }
        _update(m, account, roles, orgId, key);
    }

    /// @inheritdoc IMemberRegistry
    function enrolAuditor(
        address account,
        uint8 roles,
        bytes32 orgId,
        bytes calldata key,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external onlyAdmin {
        if (account == address(0)) revert MemberRegistryZeroAddress();
        if (account == msg.sender) revert MemberRegistrySelfLockout(account); // an ADMIN, never an AUDITOR
        if (roles & Roles.AUDITOR == 0) revert MemberRegistryInvalidRoles(roles);
        _checkRolesAndKey(roles, key);
        Member storage m = _members[account];
        if (m.wallet || account.code.length != 0) revert MemberRegistryWalletProofRequired(account);
        if (block.timestamp > deadline) revert MemberRegistryExpiredDeadline(deadline);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(AUDITOR_ENROLMENT_TYPEHASH, account, nonce, deadline)));
        (address approver, uint8 check) = _recover(digest, signature);
        if (check == _SIG_MALLEABLE) revert MemberRegistryMalleableSignature();
        if (check != _SIG_OK || approver == account || !isActive(approver, Roles.AUDITOR)) {
            revert MemberRegistryInvalidApproval(approver);
        }
        if (!_useNonce(approver, nonce)) revert MemberRegistryNonceUsed(approver, nonce);
        if (m.roles == 0) _add(account, roles, orgId, key, false);
        else _update(m, account, roles, orgId, key);
        emit AuditorEnrolled(account, approver);
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

    // ---- registry helpers ------------------------------------------------------------------------

    function _checkNew(address account) private view {
        if (account == address(0)) revert MemberRegistryZeroAddress();
        if (_members[account].roles != 0) revert MemberRegistryAlreadyMember(account);
    }

    function _add(address account, uint8 roles, bytes32 orgId, bytes calldata key, bool wallet) private {
        _members[account] =
            Member({roles: roles, suspended: false, wallet: wallet, since: uint64(block.timestamp), orgId: orgId});
        if (key.length != 0) _hpkeKeys[account] = key;
        emit MemberOnboarded(account, roles, orgId, key);
    }

    function _update(Member storage m, address account, uint8 roles, bytes32 orgId, bytes calldata key) private {
        if (account == msg.sender && roles & Roles.ADMIN == 0) revert MemberRegistrySelfLockout(account);
        m.roles = roles;
        m.orgId = orgId;
        if (key.length != 0) _hpkeKeys[account] = key;
        else delete _hpkeKeys[account];
        emit MemberUpdated(account, roles, orgId, key);
    }

    function _checkRolesAndKey(uint8 roles, bytes calldata key) private pure {
        if (roles == 0 || roles & ~Roles.ALL != 0) revert MemberRegistryInvalidRoles(roles);
        if (roles & Roles.ADMIN != 0 && roles & Roles.AUDITOR != 0) revert MemberRegistryConflictingRoles(roles);
        bool consumer = roles & Roles.CONSUMER != 0;
        bool knownLength = key.length == _X25519_KEY_LENGTH || key.length == _MLKEM768_X25519_KEY_LENGTH;
        if (consumer ? !knownLength : key.length != 0) revert MemberRegistryInvalidHpkeKey(key.length);
    }

    // ---- shared: nonces and signatures ----------------------------------------------------------

    /// @dev Spends `nonce` of `signer`; false when it was already spent. One storage lookup
    /// (BitMaps' get + set would hash and read the word twice).
    function _useNonce(address signer, uint256 nonce) internal returns (bool) {
        return _useBit(_nonces[signer], nonce);
    }

    /// @dev Sets bit `id & 0xff` of word `id >> 8`; false when it was already set.
    function _useBit(BitMaps.BitMap storage bitmap, uint256 id) internal returns (bool) {
        uint256 word = id >> 8;
        uint256 bit = 1 << (id & 0xff);
        uint256 bits = bitmap._data[word];
        if (bits & bit != 0) return false;
        bitmap._data[word] = bits | bit;
        return true;
    }

    /// @dev ECDSA recovery of a 65-byte signature: (signer, _SIG_OK), or _SIG_MALLEABLE for an
    /// upper-half `s`, or _SIG_INVALID (signer zero).
    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address signer, uint8) {
        if (signature.length != 65) return (address(0), _SIG_INVALID);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err == ECDSA.RecoverError.NoError) return (signer, _SIG_OK);
        if (err == ECDSA.RecoverError.InvalidSignatureS) return (address(0), _SIG_MALLEABLE);
        return (address(0), _SIG_INVALID);
    }

    /// @dev `signer`'s signature of `digest`: ECDSA first (cheap, and tells a malleable signature
    /// apart); EIP-1271 only for members onboarded as wallets, through the capped call.
    function _verify(address signer, bytes32 digest, bytes calldata signature) internal view returns (uint8) {
        (address recovered, uint8 check) = _recover(digest, signature);
        if (check == _SIG_OK && recovered == signer) return _SIG_OK;
        if (check == _SIG_MALLEABLE) return _SIG_MALLEABLE;
        if (_members[signer].wallet && _isValidWalletSignature(signer, digest, signature)) return _SIG_OK;
        return _SIG_INVALID;
    }

    /// @dev `wallet.isValidSignature(digest, signature)` with ERC1271_GAS gas, reading at most 32
    /// bytes of return data. Reverts the whole transaction (ConsentLedgerInsufficientGas) when
    /// too little gas is left to give the wallet its full cap, so that an item is refused only
    /// because of the wallet itself, never because of the gas the relayer chose.
    function _isValidWalletSignature(address wallet, bytes32 digest, bytes calldata signature)
        internal
        view
        returns (bool valid)
    {
        bytes memory data = abi.encodeCall(IERC1271.isValidSignature, (digest, signature));
        if (gasleft() < (ERC1271_GAS * 64) / 63 + _ERC1271_RESERVE) {
            revert IConsentLedger.ConsentLedgerInsufficientGas();
        }
        uint256 gasCap = ERC1271_GAS;
        bytes32 magic = bytes32(IERC1271.isValidSignature.selector);
        assembly ("memory-safe") {
            let ok := staticcall(gasCap, wallet, add(data, 32), mload(data), 0, 32)
            valid := and(and(ok, gt(returndatasize(), 31)), eq(mload(0), magic))
        }
    }
}
