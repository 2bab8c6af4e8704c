// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsentLedger} from "../interfaces/IConsentLedger.sol";
import {ConsentLedger} from "../ConsentLedger.sol";
import {Roles} from "../Roles.sol";
import {CheatCodes} from "./Vm.sol";

/// @dev A deployed ledger with one member of each role, four catalog resources (one per
/// sensitivity) and helpers that build and sign the ledger's EIP-712 messages.
abstract contract LedgerFixture is CheatCodes {
    ConsentLedger internal ledger;

    // ---- keys and members ------------------------------------------------------------------------

    uint256 internal constant ADMIN_KEY = 0xA11CE;
    uint256 internal constant SUBJECT_KEY = 0x5B1EC7;
    uint256 internal constant CONSUMER_KEY = 0xC0115;
    uint256 internal constant PROVIDER_KEY = 0x9120;
    uint256 internal constant AUDITOR_KEY = 0xA0D1;
    /// @dev A second, active CONSUMER (not the grantee of the default grant).
    uint256 internal constant OTHER_CONSUMER_KEY = 0x07E1;
    /// @dev A second, active ADMIN.
    uint256 internal constant ADMIN2_KEY = 0xA2;
    /// @dev Not a member.
    uint256 internal constant OUTSIDER_KEY = 0xBAD;

    address internal ADMIN;
    address internal SUBJECT;
    address internal CONSUMER;
    address internal PROVIDER;
    address internal AUDITOR;
    address internal OTHER_CONSUMER;
    address internal ADMIN2;
    address internal OUTSIDER;
    address internal constant RELAYER = address(0x4E1A7);

    bytes internal constant HPKE_KEY = hex"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

    /// @dev secp256k1 group order and half of it (the largest non-malleable `s`).
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ---- catalog ---------------------------------------------------------------------------------

    bytes32 internal R_PUBLIC; // sensitivity 1
    bytes32 internal R_INTERNAL; // sensitivity 2
    bytes32 internal R_SENSITIVE; // sensitivity 3
    bytes32 internal R_HIGHLY; // sensitivity 4
    bytes32 internal WILDCARD;
    bytes32 internal constant R_UNKNOWN = keccak256("not-in-catalog");

    /// @dev Start of time for every test.
    uint64 internal constant T0 = 1_700_000_000;
    bytes32 internal constant PURPOSE = keccak256("purpose:social-benefits");

    /// @dev Cached, so that building and signing messages never makes an external call (which would
    /// consume a pending expectRevert).
    bytes32 internal DOMAIN;
    /// @dev Kept in storage: the optimizer may re-read `block.chainid` instead of a local copy,
    /// which would be wrong after `vm.chainId`.
    uint256 internal CHAIN_ID;
    bytes32 internal GRANT_TYPEHASH;
    bytes32 internal REVOKE_TYPEHASH;
    bytes32 internal SET_PAUSED_TYPEHASH;
    bytes32 internal RELEASE_REQUEST_TYPEHASH;
    bytes32 internal EMERGENCY_TYPEHASH;
    bytes32 internal EMERGENCY_RELEASE_TYPEHASH;
    bytes32 internal EMERGENCY_CANCEL_TYPEHASH;
    bytes32 internal AUDITOR_ENROLMENT_TYPEHASH;
    bytes32 internal WALLET_ONBOARDING_TYPEHASH;

    function setUp() public virtual {
        vm.warp(T0);
        ADMIN = vm.addr(ADMIN_KEY);
        SUBJECT = vm.addr(SUBJECT_KEY);
        CONSUMER = vm.addr(CONSUMER_KEY);
        PROVIDER = vm.addr(PROVIDER_KEY);
        AUDITOR = vm.addr(AUDITOR_KEY);
        OTHER_CONSUMER = vm.addr(OTHER_CONSUMER_KEY);
        ADMIN2 = vm.addr(ADMIN2_KEY);
        OUTSIDER = vm.addr(OUTSIDER_KEY);

        ledger = new ConsentLedger(ADMIN, _oneAddr(AUDITOR), 2);

        vm.startPrank(ADMIN);
        ledger.onboard(SUBJECT, Roles.SUBJECT, 0, "");
        ledger.onboard(CONSUMER, Roles.CONSUMER, keccak256("org:consumer"), HPKE_KEY);
        ledger.onboard(OTHER_CONSUMER, Roles.CONSUMER, keccak256("org:other"), HPKE_KEY);
        ledger.onboard(PROVIDER, Roles.PROVIDER, keccak256("org:provider"), "");
        ledger.onboard(ADMIN2, Roles.ADMIN, 0, "");
        ledger.registerResource("res.public", "Public record", PROVIDER, 1);
        ledger.registerResource("res.internal", "Internal record", PROVIDER, 2);
        ledger.registerResource("res.sensitive", "Sensitive record", PROVIDER, 3);
        ledger.registerResource("res.highly", "Highly sensitive record", PROVIDER, 4);
        vm.stopPrank();

        R_PUBLIC = keccak256(bytes("res.public"));
        R_INTERNAL = keccak256(bytes("res.internal"));
        R_SENSITIVE = keccak256(bytes("res.sensitive"));
        R_HIGHLY = keccak256(bytes("res.highly"));
        WILDCARD = ledger.WILDCARD();
        DOMAIN = ledger.domainSeparator();
        CHAIN_ID = block.chainid;
        GRANT_TYPEHASH = ledger.GRANT_TYPEHASH();
        REVOKE_TYPEHASH = ledger.REVOKE_TYPEHASH();
        SET_PAUSED_TYPEHASH = ledger.SET_PAUSED_TYPEHASH();
        RELEASE_REQUEST_TYPEHASH = ledger.RELEASE_REQUEST_TYPEHASH();
        EMERGENCY_TYPEHASH = ledger.EMERGENCY_TYPEHASH();
        EMERGENCY_RELEASE_TYPEHASH = ledger.EMERGENCY_RELEASE_TYPEHASH();
        EMERGENCY_CANCEL_TYPEHASH = ledger.EMERGENCY_CANCEL_TYPEHASH();
        AUDITOR_ENROLMENT_TYPEHASH = ledger.AUDITOR_ENROLMENT_TYPEHASH();
        WALLET_ONBOARDING_TYPEHASH = ledger.WALLET_ONBOARDING_TYPEHASH();
    }

    // ---- generic helpers -------------------------------------------------------------------------

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (lo == 0 && hi == type(uint256).max) return x;
        return lo + (x % (hi - lo + 1));
    }

    function _one(bytes32 r) internal pure returns (bytes32[] memory list) {
        list = new bytes32[](1);
        list[0] = r;
    }

    function _two(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory list) {
        list = new bytes32[](2);
        list[0] = a;
        list[1] = b;
    }

    function _oneAddr(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    function _err(bytes4 selector, bytes32 arg) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, arg);
    }

    function _err(bytes4 selector, uint256 arg) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, arg);
    }

    function _err(bytes4 selector, address arg) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, arg);
    }

    // ---- EIP-712 ---------------------------------------------------------------------------------

    function _domain(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Quanchenglian"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
    }

    function _digest(bytes32 domain, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return _digest(DOMAIN, structHash);
    }

    function _sign(uint256 key, bytes32 digest) internal returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The same signature in its malleable form: s' = n - s, v flipped.
    function _highS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = _splitSig(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function _splitSig(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        require(sig.length == 65, "sig length");
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
    }

    // ---- grants ----------------------------------------------------------------------------------

    /// @dev SUBJECT -> CONSUMER for R_PUBLIC, valid [T0, T0 + 30 days), unlimited uses.
    function _grant() internal view returns (IConsentLedger.Grant memory g) {
        g = IConsentLedger.Grant({
            subject: SUBJECT,
            grantee: CONSUMER,
            resources: _one(R_PUBLIC),
            purpose: PURPOSE,
            validFrom: T0,
            validUntil: T0 + 30 days,
            maxUses: 0,
            nonce: 1,
            deadline: T0 + 1 days
        });
    }

    function _grantFor(bytes32[] memory resources) internal view returns (IConsentLedger.Grant memory g) {
        g = _grant();
        g.resources = resources;
    }

    function _grantStructHash(IConsentLedger.Grant memory g) internal view returns (bytes32) {
        return keccak256(
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
        );
    }

    function _grantId(IConsentLedger.Grant memory g) internal view returns (bytes32) {
        return _digest(_grantStructHash(g));
    }

    function _signGrant(uint256 key, IConsentLedger.Grant memory g) internal returns (bytes memory) {
        return _sign(key, _grantId(g));
    }

    /// @dev Records `g` signed by the subject, relayed by RELAYER.
    function _record(IConsentLedger.Grant memory g) internal returns (bytes32 grantId) {
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.prank(RELAYER);
        grantId = ledger.recordGrant(g, sig);
    }

    // ---- releases --------------------------------------------------------------------------------

    function _releaseSig(uint256 key, bytes32 grantId, bytes32 resource, bytes32 requestId, uint256 deadline)
        internal
        returns (bytes memory)
    {
        return _sign(
            key,
            _digest(keccak256(abi.encode(RELEASE_REQUEST_TYPEHASH, grantId, resource, requestId, deadline)))
        );
    }

    /// @dev A release of `resource` under `g`, signed by the grantee, deadline far ahead.
    function _release(IConsentLedger.Grant memory g, bytes32 resource, bytes32 requestId) internal returns (bytes32) {
        bytes memory sig = _releaseSig(CONSUMER_KEY, _grantId(g), resource, requestId, type(uint256).max);
        vm.prank(RELAYER);
        return ledger.recordRelease(g, resource, requestId, type(uint256).max, sig);
    }

    function _item(IConsentLedger.Grant memory g, uint256 key, bytes32 resource, bytes32 requestId, uint256 deadline)
        internal
        returns (IConsentLedger.ReleaseItem memory)
    {
        return IConsentLedger.ReleaseItem({
            grant: g,
            resource: resource,
            requestId: requestId,
            deadline: deadline,
            signature: _releaseSig(key, _grantId(g), resource, requestId, deadline)
        });
    }

    // ---- revoke / pause --------------------------------------------------------------------------

    function _revokeSig(uint256 key, bytes32 grantId, uint256 nonce, uint256 deadline)
        internal
        returns (bytes memory)
    {
        return _sign(key, _digest(keccak256(abi.encode(REVOKE_TYPEHASH, grantId, nonce, deadline))));
    }

    function _pauseSig(uint256 key, bytes32 grantId, bool paused, uint64 sequence, uint256 nonce, uint256 deadline)
        internal
        returns (bytes memory)
    {
        return _sign(
            key, _digest(keccak256(abi.encode(SET_PAUSED_TYPEHASH, grantId, paused, sequence, nonce, deadline)))
        );
    }

    /// @dev A nonce of the subject's that no grant of the tests uses (nonces are shared by all
    /// of a signer's messages).
    function _freshNonce(string memory kind, bytes32 grantId, uint256 n) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(kind, grantId, n)));
    }

    function _revoke(bytes32 grantId) internal {
        uint256 nonce = _freshNonce("revoke", grantId, 0);
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, nonce, T0 + 365 days);
        ledger.revoke(grantId, nonce, T0 + 365 days, sig);
    }

    /// @dev Applies the subject's SetPaused with `sequence` (and a fresh nonce).
    function _setPaused(bytes32 grantId, bool paused, uint64 sequence) internal {
        uint256 nonce = _freshNonce("pause", grantId, sequence);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, paused, sequence, nonce, T0 + 365 days);
        ledger.setPaused(grantId, paused, sequence, nonce, T0 + 365 days, sig);
    }

    function _noAuditors() internal pure returns (address[] memory) {
        return new address[](0);
    }

    // ---- emergencies -----------------------------------------------------------------------------

    /// @dev CONSUMER may read R_SENSITIVE of any subject during [T0, T0 + 24 h).
    function _emergency() internal view returns (IConsentLedger.Emergency memory e) {
        e = IConsentLedger.Emergency({
            emergencyId: keccak256("emergency:flood-2024"),
            resources: _one(R_SENSITIVE),
            consumers: _oneAddr(CONSUMER),
            validFrom: T0,
            validUntil: T0 + 24 hours,
            reason: keccak256("reason:flood"),
            deadline: T0 + 1 hours
        });
    }

    function _emergencyStructHash(IConsentLedger.Emergency memory e) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                EMERGENCY_TYPEHASH,
                e.emergencyId,
                keccak256(abi.encodePacked(e.resources)),
                // EIP-712 address[]: each address padded to a word (encodePacked of address[] pads).
                keccak256(abi.encodePacked(e.consumers)),
                e.validFrom,
                e.validUntil,
                e.reason,
                e.deadline
            )
        );
    }

    function _emergencySig(uint256 key, IConsentLedger.Emergency memory e) internal returns (bytes memory) {
        return _sign(key, _digest(_emergencyStructHash(e)));
    }

    function _propose(IConsentLedger.Emergency memory e, uint256 key) internal {
        bytes memory sig = _emergencySig(key, e);
        vm.prank(RELAYER);
        ledger.proposeEmergency(e, sig);
    }

    function _approve(IConsentLedger.Emergency memory e, uint256 key) internal {
        bytes memory sig = _emergencySig(key, e);
        vm.prank(RELAYER);
        ledger.approveEmergency(e, sig);
    }

    /// @dev Proposed by ADMIN, approved by AUDITOR: active.
    function _activate(IConsentLedger.Emergency memory e) internal {
        _propose(e, ADMIN_KEY);
        _approve(e, AUDITOR_KEY);
    }

    function _emergencyReleaseSig(
        uint256 key,
        bytes32 emergencyId,
        address subject,
        bytes32 resource,
        bytes32 requestId,
        uint256 deadline
    ) internal returns (bytes memory) {
        return _sign(
            key,
            _digest(
                keccak256(
                    abi.encode(
                        EMERGENCY_RELEASE_TYPEHASH, emergencyId, subject, resource, requestId, deadline
                    )
                )
            )
        );
    }

    /// @dev The signed EmergencyReleaseRequest of `key` under `e`, deadline T0 + 1 h.
    function _erSig(
        uint256 key,
        IConsentLedger.Emergency memory e,
        address subject,
        bytes32 resource,
        bytes32 requestId
    ) internal returns (bytes memory) {
        return _emergencyReleaseSig(key, e.emergencyId, subject, resource, requestId, T0 + 1 hours);
    }
}
