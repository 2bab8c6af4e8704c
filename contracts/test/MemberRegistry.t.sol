// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IMemberRegistry} from "../interfaces/IMemberRegistry.sol";
import {ConsentLedger} from "../ConsentLedger.sol";
import {Roles} from "../Roles.sol";
import {CheatCodes} from "./Vm.sol";

contract MemberRegistryTest is CheatCodes {
    ConsentLedger internal registry;
    address internal constant ADMIN = address(0xA11CE);
    address internal constant DEPT = address(0xD0D0);
    address internal constant CITIZEN = address(0xC171);
    bytes internal constant KEY = hex"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

    event MemberOnboarded(address indexed account, uint8 roles, bytes32 orgId, bytes hpkeKey);

    function setUp() public {
        registry = new ConsentLedger(ADMIN, new address[](0), 2);
    }

    function testDeployerAdmin() public view {
        require(registry.isActive(ADMIN, Roles.ADMIN), "admin active");
        require(!registry.isActive(DEPT, 0), "non-member inactive");
    }

    function testOnboardConsumerEmits() public {
        vm.expectEmit(true, false, false, true);
        emit MemberOnboarded(DEPT, Roles.CONSUMER, keccak256("org"), KEY);
        vm.prank(ADMIN);
        registry.onboard(DEPT, Roles.CONSUMER, keccak256("org"), KEY);
        require(registry.isActive(DEPT, Roles.CONSUMER), "consumer active");
        require(keccak256(registry.hpkeKey(DEPT)) == keccak256(KEY), "key stored");
    }

    function testOutsiderCannotOnboard() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnauthorized.selector, CITIZEN));
        vm.prank(CITIZEN);
        registry.onboard(DEPT, Roles.SUBJECT, 0, "");
    }

    function testSuspendedMemberIsInactiveAndSuspendedAdminPowerless() public {
        vm.startPrank(ADMIN);
        registry.onboard(DEPT, Roles.ADMIN, 0, "");
        registry.setSuspended(DEPT, true);
        vm.stopPrank();
        require(!registry.isActive(DEPT, Roles.ADMIN), "suspended is inactive");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnauthorized.selector, DEPT));
        vm.prank(DEPT);
        registry.onboard(CITIZEN, Roles.SUBJECT, 0, "");
    }

    function testAdminCannotSuspendItself() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistrySelfLockout.selector, ADMIN));
        vm.prank(ADMIN);
        registry.setSuspended(ADMIN, true);
    }

    /// Fuzz: any role mask with an undefined bit, or none, is refused.
    function testFuzzInvalidRoleMasks(uint8 roles) public {
        vm.assume(roles == 0 || roles & ~Roles.ALL != 0);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidRoles.selector, roles));
        vm.prank(ADMIN);
        registry.onboard(DEPT, roles, 0, "");
    }

    /// Fuzz: a consumer's HPKE key must be 32 or 1216 bytes; other lengths are refused.
    function testFuzzConsumerKeyLength(uint16 length) public {
        length = uint16(bound(length, 0, 2000));
        bytes memory key = new bytes(length);
        bool ok = length == 32 || length == 1216;
        if (!ok) vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidHpkeKey.selector, uint256(length)));
        vm.prank(ADMIN);
        registry.onboard(DEPT, Roles.CONSUMER, 0, key);
        if (ok) require(registry.hpkeKey(DEPT).length == length, "key length");
    }

    function testDeploymentNamesTheFirstAuditors() public {
        address[] memory auditors = new address[](2);
        auditors[0] = DEPT;
        auditors[1] = CITIZEN;
        vm.expectEmit(true, false, false, true);
        emit MemberOnboarded(ADMIN, Roles.ADMIN, 0, "");
        vm.expectEmit(true, false, false, true);
        emit MemberOnboarded(DEPT, Roles.AUDITOR, 0, "");
        vm.expectEmit(true, false, false, true);
        emit MemberOnboarded(CITIZEN, Roles.AUDITOR, 0, "");
        ConsentLedger l = new ConsentLedger(ADMIN, auditors, 2);
        require(l.isActive(DEPT, Roles.AUDITOR) && l.isActive(CITIZEN, Roles.AUDITOR), "auditors");

        auditors[1] = DEPT;
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadyMember.selector, DEPT));
        new ConsentLedger(ADMIN, auditors, 2);
        auditors[1] = address(0);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryZeroAddress.selector));
        new ConsentLedger(ADMIN, auditors, 2);
        auditors[1] = address(registry); // has code
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWalletProofRequired.selector, address(registry))
        );
        new ConsentLedger(ADMIN, auditors, 2);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryTooManyAuditors.selector, uint256(17)));
        new ConsentLedger(ADMIN, new address[](17), 2);
    }

    function testOnboardRefusesAccountsWithCode() public {
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWalletProofRequired.selector, address(registry))
        );
        vm.prank(ADMIN);
        registry.onboard(address(registry), Roles.SUBJECT, 0, "");
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + (x % (hi - lo + 1));
    }
}
