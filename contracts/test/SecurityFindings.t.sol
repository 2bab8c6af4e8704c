// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsentLedger} from "../interfaces/IConsentLedger.sol";
import {Roles} from "../Roles.sol";
import {GasBurnerWallet} from "../mocks/GasBurnerWallet.sol";
import {LedgerFixture} from "./LedgerFixture.sol";
import {Vm} from "./Vm.sol";

/// @dev Reproductions of the security review's findings (H1, M1–M4, L1, L2): each test is the
/// exploit, and passes only once the ledger refuses it.
contract SecurityFindingsTest is LedgerFixture {
    // ---- H1 separation of duties ----------------------------------------------------------------

    function test_H1_adminAloneCannotEnrolAuditor() public {
        vm.expectRevert();
        vm.prank(ADMIN);
        ledger.onboard(OUTSIDER, Roles.AUDITOR, 0, "");
    }

    function test_H1_noAccountHoldsAdminAndAuditor() public {
        vm.expectRevert();
        vm.prank(ADMIN);
        ledger.updateMember(ADMIN2, Roles.ADMIN | Roles.AUDITOR, 0, "");
    }

    function test_H1_suspendedApproverNoLongerCounts() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        vm.prank(ADMIN);
        ledger.setSuspended(AUDITOR, true);
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyNotApproved.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    // ---- M1 emergencies -------------------------------------------------------------------------

    function test_M1_activationNeedsValidFromWithinOneHour() public {
        IConsentLedger.Emergency memory e = _emergency();
        e.validFrom = T0 + 30 days;
        e.validUntil = T0 + 30 days + 24 hours;
        _propose(e, ADMIN_KEY);
        bytes memory sig = _emergencySig(AUDITOR_KEY, e);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidWindow.selector, e.validFrom, e.validUntil)
        );
        ledger.approveEmergency(e, sig);
    }

    // ---- M2 wildcard ----------------------------------------------------------------------------

    function test_M2_wildcardDoesNotCoverResourceRegisteredLater() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        vm.roll(block.number + 1);
        vm.prank(ADMIN);
        ledger.registerResource("res.later", "Registered after the grant", PROVIDER, 1);
        bytes32 later = keccak256("res.later");
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, later, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, later, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function test_M2_wildcardDoesNotCoverResourceLoweredLater() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        vm.roll(block.number + 1);
        vm.prank(ADMIN);
        ledger.updateResource(R_SENSITIVE, PROVIDER, 2);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_SENSITIVE, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_SENSITIVE, bytes32(uint256(1)), type(uint256).max, sig);
    }

    // ---- M3 ordered pause and resume (v1 interface: the exploit) --------------------------------

    function test_M3_earlierPauseCannotUndoLaterResume() public {
        bytes32 grantId = _record(_grant());
        _setPaused(grantId, true, 100);
        // The subject signs a pause (nonce 101), then changes its mind and signs a resume (102).
        bytes memory pause = _pauseSig(SUBJECT_KEY, grantId, true, 101, T0 + 1 hours);
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 102, T0 + 1 hours);
        // The relayer delivers them out of order: the earlier pause must not undo the later resume.
        ledger.setPaused(grantId, false, 102, T0 + 1 hours, resume);
        vm.expectRevert();
        ledger.setPaused(grantId, true, 101, T0 + 1 hours, pause);
    }

    // ---- L1 nonces, withdrawal ------------------------------------------------------------------

    function test_L1_grantNonceCannotBeReusedByPause() public {
        IConsentLedger.Grant memory g = _grant();
        g.nonce = 77;
        bytes32 grantId = _record(g);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, true, 77, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(77)));
        ledger.setPaused(grantId, true, 77, T0 + 1 hours, sig);
    }

    function test_L1_suspendedSubjectCanStillRevoke() public {
        bytes32 grantId = _record(_grant());
        vm.prank(ADMIN);
        ledger.setSuspended(SUBJECT, true);
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, 500, T0 + 1 hours);
        ledger.revoke(grantId, 500, T0 + 1 hours, sig);
        require(ledger.grantState(grantId).revoked, "revoked while suspended");
    }

    // ---- L2 rejections only for correctly signed requests ---------------------------------------

    function test_L2_nonGranteeCannotTriggerRejection() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        _revoke(grantId);
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](2);
        items[0] = _item(g, OTHER_CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        items[1] = _item(g, OTHER_CONSUMER_KEY, R_PUBLIC, bytes32(uint256(2)), T0 - 1);
        vm.recordLogs();
        uint256 recorded = ledger.recordReleases(items);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(recorded == 0, "nothing recorded");
        require(logs.length == 0, "no event names the grant");
    }

    // ---- M4 capped wallet calls -----------------------------------------------------------------

    function test_M4_gasBurnerWalletOnlyFailsItsOwnItem() public {
        GasBurnerWallet burner = new GasBurnerWallet(OUTSIDER);
        _onboardBurner(burner);
        IConsentLedger.Grant memory bad = _grant();
        bad.grantee = address(burner);
        bad.nonce = 900;
        _record(bad);
        vm.prank(OUTSIDER);
        burner.setMode(GasBurnerWallet.Mode.Burn);

        IConsentLedger.Grant memory g = _grant();
        _record(g);
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](21);
        items[0] = _item(bad, OUTSIDER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        for (uint256 i = 1; i < 21; ++i) {
            items[i] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(i), type(uint256).max);
        }
        try ledger.recordReleases{gas: 3_000_000}(items) returns (uint256 recorded) {
            require(recorded == ((1 << 21) - 1) & ~uint256(1), "the other 20 recorded");
        } catch {
            revert("a wallet sank the grouped release");
        }
    }

    function _onboardBurner(GasBurnerWallet burner) internal virtual {
        vm.prank(ADMIN);
        ledger.onboard(address(burner), Roles.CONSUMER, 0, HPKE_KEY);
    }
}
