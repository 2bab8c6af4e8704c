// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAuditAnchor} from "../interfaces/IAuditAnchor.sol";
import {IConsentLedger} from "../interfaces/IConsentLedger.sol";
import {IMemberRegistry} from "../interfaces/IMemberRegistry.sol";
import {AuditAnchor} from "../AuditAnchor.sol";
import {ConsentLedger} from "../ConsentLedger.sol";
import {Roles} from "../Roles.sol";
import {GasBurnerWallet} from "../mocks/GasBurnerWallet.sol";
import {MinimalWallet} from "../mocks/MinimalWallet.sol";
import {ReleaseForwarder} from "../mocks/ReleaseForwarder.sol";
import {LedgerFixture} from "./LedgerFixture.sol";
import {Vm} from "./Vm.sol";

/// @dev Reproductions of the security review's findings (H1, M1–M4, L1, L2): each test is the
/// exploit, and passes only once the ledger refuses it.
contract SecurityFindingsTest is LedgerFixture {
    // ---- H1 separation of duties ----------------------------------------------------------------

    function test_H1_adminAloneCannotEnrolAuditor() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryAuditorApprovalRequired.selector, OUTSIDER));
        vm.prank(ADMIN);
        ledger.onboard(OUTSIDER, Roles.AUDITOR, 0, "");
        // Nor by adding the role to an existing member.
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryAuditorApprovalRequired.selector, SUBJECT));
        vm.prank(ADMIN);
        ledger.updateMember(SUBJECT, Roles.SUBJECT | Roles.AUDITOR, 0, "");
    }

    function test_H1_noAccountHoldsAdminAndAuditor() public {
        uint8 both = Roles.ADMIN | Roles.AUDITOR;
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryConflictingRoles.selector, both));
        vm.prank(ADMIN);
        ledger.updateMember(ADMIN2, both, 0, "");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryConflictingRoles.selector, both));
        vm.prank(ADMIN);
        ledger.onboard(OUTSIDER, both, 0, "");
        bytes memory approval = _enrolSig(AUDITOR_KEY, OUTSIDER, 1, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryConflictingRoles.selector, both));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, both, 0, "", 1, T0 + 1 hours, approval);
        // The deployment cannot name its admin as an auditor either.
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryConflictingRoles.selector, both));
        new ConsentLedger(ADMIN, _oneAddr(ADMIN), 2);
    }

    function test_H1_enrolAuditorWithAnotherAuditorsApproval() public {
        bytes memory approval = _enrolSig(AUDITOR_KEY, OUTSIDER, 7, T0 + 1 hours);
        vm.expectEmit(true, false, false, true, address(ledger));
        emit IMemberRegistry.MemberOnboarded(OUTSIDER, Roles.AUDITOR, keccak256("org:audit2"), "");
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IMemberRegistry.AuditorEnrolled(OUTSIDER, AUDITOR);
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, keccak256("org:audit2"), "", 7, T0 + 1 hours, approval);
        require(ledger.isActive(OUTSIDER, Roles.AUDITOR), "enrolled");
        require(ledger.nonceUsed(AUDITOR, 7), "approver's nonce spent");

        // The same approval cannot be used twice (for anyone).
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNonceUsed.selector, AUDITOR, uint256(7)));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 7, T0 + 1 hours, approval);

        // An existing member is updated (MemberUpdated), approved by the new auditor.
        approval = _enrolSig(OUTSIDER_KEY, SUBJECT, 1, T0 + 1 hours);
        vm.expectEmit(true, false, false, true, address(ledger));
        emit IMemberRegistry.MemberUpdated(SUBJECT, Roles.SUBJECT | Roles.AUDITOR, 0, "");
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IMemberRegistry.AuditorEnrolled(SUBJECT, OUTSIDER);
        vm.prank(ADMIN);
        ledger.enrolAuditor(SUBJECT, Roles.SUBJECT | Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
        require(ledger.isActive(SUBJECT, Roles.AUDITOR | Roles.SUBJECT), "updated");

        // Removing AUDITOR needs no approval.
        vm.prank(ADMIN);
        ledger.updateMember(SUBJECT, Roles.SUBJECT, 0, "");
        require(!ledger.isActive(SUBJECT, Roles.AUDITOR), "removed");
    }

    function test_H1_enrolAuditorRefusesBadApprovals() public {
        // Not an auditor's signature (an admin's).
        bytes memory approval = _enrolSig(ADMIN2_KEY, OUTSIDER, 1, T0 + 1 hours);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidApproval.selector, ADMIN2));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
        // Self-approval.
        approval = _enrolSig(AUDITOR_KEY, AUDITOR, 1, T0 + 1 hours);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidApproval.selector, AUDITOR));
        vm.prank(ADMIN);
        ledger.enrolAuditor(AUDITOR, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
        // Malleable.
        approval = _highS(_enrolSig(AUDITOR_KEY, OUTSIDER, 1, T0 + 1 hours));
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryMalleableSignature.selector));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
        // Expired.
        approval = _enrolSig(AUDITOR_KEY, OUTSIDER, 1, T0 - 1);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryExpiredDeadline.selector, uint256(T0 - 1)));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 - 1, approval);
        // A suspended auditor cannot approve.
        vm.prank(ADMIN);
        ledger.setSuspended(AUDITOR, true);
        approval = _enrolSig(AUDITOR_KEY, OUTSIDER, 1, T0 + 1 hours);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidApproval.selector, AUDITOR));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
        // Roles without AUDITOR.
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidRoles.selector, Roles.SUBJECT));
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.SUBJECT, 0, "", 1, T0 + 1 hours, approval);
        // Only an admin submits it.
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryUnauthorized.selector, RELAYER));
        vm.prank(RELAYER);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
    }

    function test_H1_approvalOfAnotherLedgerIsRefused() public {
        ConsentLedger other = new ConsentLedger(ADMIN, _oneAddr(AUDITOR), 2);
        bytes memory approval = _sign(
            AUDITOR_KEY,
            _digest(
                other.domainSeparator(),
                keccak256(abi.encode(AUDITOR_ENROLMENT_TYPEHASH, OUTSIDER, uint256(1), uint256(T0 + 1 hours)))
            )
        );
        vm.expectRevert(); // recovers some other address
        vm.prank(ADMIN);
        ledger.enrolAuditor(OUTSIDER, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, approval);
    }

    function test_H1_approvalsCountOnlyFromActiveDistinctApprovers() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        // The admin again: refused.
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerAlreadyApproved.selector, ADMIN));
        ledger.approveEmergency(e, sig);
        _approve(e, AUDITOR_KEY);
        require(ledger.emergencyActive(e.emergencyId), "active");
        // The admin loses its role: its approval no longer counts.
        vm.prank(ADMIN2);
        ledger.updateMember(ADMIN, Roles.PROVIDER, 0, "");
        require(!ledger.emergencyActive(e.emergencyId), "admin approval gone");
        bytes memory rsig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyNotApproved.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, rsig);
        // Another active admin restores it.
        _approve(e, ADMIN2_KEY);
        require(ledger.emergencyActive(e.emergencyId), "active again");
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, rsig);
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

    function test_M1_cancelStopsAnActiveEmergency() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory cancel = _cancelSig(AUDITOR_KEY, e.emergencyId, T0 + 1 hours);
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.EmergencyCancelled(e.emergencyId, AUDITOR);
        vm.prank(RELAYER);
        ledger.cancelEmergency(e.emergencyId, T0 + 1 hours, cancel);
        require(ledger.emergencyState(e.emergencyId).cancelled && !ledger.emergencyActive(e.emergencyId), "cancelled");

        bytes memory rsig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyCancelled.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, rsig);
        bytes memory sig = _emergencySig(ADMIN2_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyCancelled.selector, e.emergencyId));
        ledger.approveEmergency(e, sig);
        cancel = _cancelSig(ADMIN_KEY, e.emergencyId, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyCancelled.selector, e.emergencyId));
        ledger.cancelEmergency(e.emergencyId, T0 + 1 hours, cancel);
    }

    function test_M1_cancelRefusals() public {
        bytes32 unknown = keccak256("no such emergency");
        bytes memory cancel = _cancelSig(ADMIN_KEY, unknown, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownEmergency.selector, unknown));
        ledger.cancelEmergency(unknown, T0 + 1 hours, cancel);
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        cancel = _cancelSig(CONSUMER_KEY, e.emergencyId, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotApprover.selector, CONSUMER));
        ledger.cancelEmergency(e.emergencyId, T0 + 1 hours, cancel);
        cancel = _highS(_cancelSig(ADMIN_KEY, e.emergencyId, T0 + 1 hours));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.cancelEmergency(e.emergencyId, T0 + 1 hours, cancel);
        cancel = _cancelSig(ADMIN_KEY, e.emergencyId, T0 - 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, uint256(T0 - 1)));
        ledger.cancelEmergency(e.emergencyId, T0 - 1, cancel);
    }

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
        // Exactly one hour ahead is accepted, and the release waits for validFrom.
        e.emergencyId = keccak256("emergency:soon");
        e.validFrom = T0 + 1 hours;
        e.validUntil = T0 + 2 hours;
        e.deadline = T0 + 1 hours;
        _activate(e);
        require(ledger.emergencyState(e.emergencyId).activatedAt == T0, "activated");
        require(!ledger.emergencyActive(e.emergencyId), "not yet in window");
        vm.warp(T0 + 1 hours);
        require(ledger.emergencyActive(e.emergencyId), "in window");
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

    function test_M2_wildcardCoversResourceRegisteredInTheGrantsBlockOrBefore() public {
        vm.prank(ADMIN);
        ledger.registerResource("res.same", "Same block", PROVIDER, 1);
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        vm.roll(block.number + 5);
        _release(g, keccak256("res.same"), bytes32(uint256(1)));
        require(ledger.grantState(grantId).recordedAt == block.number - 5, "recordedAt");
        require(ledger.resourceInfo(keccak256("res.same")).registeredAt == block.number - 5, "registeredAt");
    }

    // ---- M3 ordered pause and resume ------------------------------------------------------------

    function test_M3_earlierPauseCannotUndoLaterResume() public {
        bytes32 grantId = _record(_grant());
        _setPaused(grantId, true, 1);
        // The subject signs a pause (sequence 2), then changes its mind and signs a resume (3).
        bytes memory pause = _pauseSig(SUBJECT_KEY, grantId, true, 2, 101, T0 + 1 hours);
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 3, 102, T0 + 1 hours);
        // The relayer delivers them out of order: the earlier pause must not undo the later resume.
        ledger.setPaused(grantId, false, 3, 102, T0 + 1 hours, resume);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerStaleSequence.selector, grantId, uint64(2)));
        ledger.setPaused(grantId, true, 2, 101, T0 + 1 hours, pause);
        require(!ledger.grantState(grantId).paused, "the later resume stands");
    }

    function test_M3_suspendedSubjectCanPauseButNotResume() public {
        bytes32 grantId = _record(_grant());
        vm.prank(ADMIN);
        ledger.setSuspended(SUBJECT, true);
        _setPaused(grantId, true, 1);
        require(ledger.grantState(grantId).paused, "paused while suspended");
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 2, 102, T0 + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, SUBJECT, Roles.SUBJECT)
        );
        ledger.setPaused(grantId, false, 2, 102, T0 + 1 hours, resume);
    }

    // ---- L1 nonces, withdrawal ------------------------------------------------------------------

    function test_L1_grantNonceCannotBeReusedByPause() public {
        IConsentLedger.Grant memory g = _grant();
        g.nonce = 77;
        bytes32 grantId = _record(g);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, true, 1, 77, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(77)));
        ledger.setPaused(grantId, true, 1, 77, T0 + 1 hours, sig);
        sig = _revokeSig(SUBJECT_KEY, grantId, 77, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(77)));
        ledger.revoke(grantId, 77, T0 + 1 hours, sig);
        // And a revoke's nonce cannot serve a later grant.
        sig = _revokeSig(SUBJECT_KEY, grantId, 78, T0 + 1 hours);
        ledger.revoke(grantId, 78, T0 + 1 hours, sig);
        IConsentLedger.Grant memory g2 = _grant();
        g2.nonce = 78;
        sig = _signGrant(SUBJECT_KEY, g2);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(78)));
        ledger.recordGrant(g2, sig);
    }

    function test_L1_revokeUnrecordedGrantBlocksItForever() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _grantId(g);
        bytes memory grantSig = _signGrant(SUBJECT_KEY, g); // the lost QR code
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, 500, T0 + 1 hours);
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.GrantRevoked(grantId, SUBJECT);
        vm.prank(RELAYER);
        ledger.revokeUnrecorded(g, 500, T0 + 1 hours, sig);
        IConsentLedger.GrantState memory st = ledger.grantState(grantId);
        require(st.subject == SUBJECT && st.revoked && st.recordedAt == 0, "stored revoked");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Revoked, "status revoked");

        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.recordGrant(g, grantSig);
        bytes memory rsig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, rsig);
        sig = _revokeSig(SUBJECT_KEY, grantId, 501, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.revoke(grantId, 501, T0 + 1 hours, sig);
    }

    function test_L1_onlyTheRealSubjectRevokesUnrecorded() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _grantId(g);
        bytes memory sig = _revokeSig(CONSUMER_KEY, grantId, 500, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.revokeUnrecorded(g, 500, T0 + 1 hours, sig);
        // Claiming to be the subject changes the terms, hence the grant id.
        g.subject = CONSUMER;
        sig = _revokeSig(CONSUMER_KEY, grantId, 500, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, CONSUMER));
        ledger.revokeUnrecorded(g, 500, T0 + 1 hours, sig);
        require(ledger.grantState(grantId).subject == address(0), "untouched");
    }

    function test_L1_revokeUnrecordedOfARecordedGrantIsRevoke() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, 500, T0 + 1 hours);
        ledger.revokeUnrecorded(g, 500, T0 + 1 hours, sig);
        IConsentLedger.GrantState memory st = ledger.grantState(grantId);
        require(st.revoked && st.recordedAt == block.number, "revoked, still recorded");
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

    function test_M4_hugeReturnDataWalletOnlyFailsItsOwnItem() public {
        GasBurnerWallet burner = new GasBurnerWallet(OUTSIDER);
        _onboardBurner(burner);
        IConsentLedger.Grant memory bad = _grant();
        bad.grantee = address(burner);
        bad.nonce = 900;
        _record(bad);
        vm.prank(OUTSIDER);
        burner.setMode(GasBurnerWallet.Mode.HugeReturn);
        IConsentLedger.Grant memory g = _grant();
        _record(g);
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](3);
        items[0] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        items[1] = _item(bad, OUTSIDER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        items[2] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(2)), type(uint256).max);
        // The blob exceeds the 100,000 gas cap: the wallet's item fails, the others pass.
        uint256 recorded = ledger.recordReleases{gas: 2_000_000}(items);
        require(recorded == 5, "items 0 and 2");
    }

    function test_M4_tooLittleGasRevertsTheWholeCall() public {
        GasBurnerWallet burner = new GasBurnerWallet(OUTSIDER);
        _onboardBurner(burner);
        IConsentLedger.Grant memory w = _grant();
        w.grantee = address(burner);
        w.nonce = 900;
        _record(w);
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](1);
        items[0] = _item(w, OUTSIDER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        // The honest wallet's signature is valid (the owner's key).
        require(ledger.recordReleases{gas: 1_000_000}(items) == 1, "wallet release recorded");
        items[0] = _item(w, OUTSIDER_KEY, R_PUBLIC, bytes32(uint256(2)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInsufficientGas.selector));
        ledger.recordReleases{gas: 90_000}(items);
    }

    function test_M4_tooLittleGasRevertsAWholeMulticall() public {
        GasBurnerWallet burner = new GasBurnerWallet(OUTSIDER);
        _onboardBurner(burner);
        IConsentLedger.Grant memory w = _grant();
        w.grantee = address(burner);
        w.nonce = 900;
        bytes32 grantId = _record(w);
        bytes[] memory calls = new bytes[](1);
        calls[0] = abi.encodeCall(
            ledger.recordRelease,
            (w, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours, _releaseSig(OUTSIDER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours))
        );
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInsufficientGas.selector));
        ledger.multicall{gas: 90_000}(calls);
        require(ledger.multicall{gas: 1_000_000}(calls) == 1, "recorded with enough gas");
    }

    function test_M4_walletOnboardingNeedsItsOwnProof() public {
        MinimalWallet wallet = new MinimalWallet(OUTSIDER);
        // A plain onboard of an account with code is refused.
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryWalletProofRequired.selector, address(wallet)));
        vm.prank(ADMIN);
        ledger.onboard(address(wallet), Roles.SUBJECT, 0, "");
        // A proof by someone else than the wallet's owner is refused.
        bytes memory proof = _walletProof(SUBJECT_KEY, address(wallet), Roles.SUBJECT, 0, T0 + 1 hours);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidWalletProof.selector, address(wallet)));
        vm.prank(ADMIN);
        ledger.onboardWallet(address(wallet), Roles.SUBJECT, 0, "", T0 + 1 hours, proof);
        // An EOA has no wallet proof.
        proof = _walletProof(OUTSIDER_KEY, OUTSIDER, Roles.SUBJECT, 0, T0 + 1 hours);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidWalletProof.selector, OUTSIDER));
        vm.prank(ADMIN);
        ledger.onboardWallet(OUTSIDER, Roles.SUBJECT, 0, "", T0 + 1 hours, proof);
        // ADMIN or AUDITOR is refused for a wallet.
        proof = _walletProof(OUTSIDER_KEY, address(wallet), Roles.ADMIN, 0, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidRoles.selector, Roles.ADMIN));
        vm.prank(ADMIN);
        ledger.onboardWallet(address(wallet), Roles.ADMIN, 0, "", T0 + 1 hours, proof);
        // The owner's proof is accepted: the wallet is a subject and signs grants through EIP-1271.
        proof = _walletProof(OUTSIDER_KEY, address(wallet), Roles.SUBJECT, keccak256("org:ent"), T0 + 1 hours);
        vm.prank(ADMIN);
        ledger.onboardWallet(address(wallet), Roles.SUBJECT, keccak256("org:ent"), "", T0 + 1 hours, proof);
        require(ledger.member(address(wallet)).wallet, "wallet flag");
        IConsentLedger.Grant memory g = _grant();
        g.subject = address(wallet);
        bytes32 grantId = ledger.recordGrant(g, _signGrant(OUTSIDER_KEY, g));
        require(ledger.grantState(grantId).subject == address(wallet), "wallet grant");
        // No cross-wallet replay: the same owner's signature for another wallet's terms fails.
        MinimalWallet wallet2 = new MinimalWallet(OUTSIDER);
        g.subject = address(wallet2);
        bytes memory sig = _signGrant(OUTSIDER_KEY, g);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, address(wallet2)));
        ledger.recordGrant(g, sig); // wallet2 is not onboarded as a wallet: EIP-1271 is not consulted
    }

    // ---- L2 the chain alone proves a release ----------------------------------------------------

    function test_L2_releaseThroughAnotherContractIsFullyInItsEvent() public {
        ReleaseForwarder forwarder = new ReleaseForwarder();
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes32 req = keccak256("fwd");
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, req, T0 + 1 hours);
        vm.recordLogs();
        forwarder.forward(
            address(ledger), abi.encodeCall(ledger.recordRelease, (g, R_PUBLIC, req, T0 + 1 hours, sig))
        );
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(logs.length == 1 && logs[0].emitter == address(ledger), "one event");
        require(logs[0].topics[0] == IConsentLedger.ReleaseRecorded.selector, "ReleaseRecorded");
        (bytes32 requestId,, uint256 deadline, bytes memory signature) =
            abi.decode(logs[0].data, (bytes32, uint32, uint256, bytes));
        // The event alone lets anyone re-verify the grantee's request.
        bytes32 digest =
            _digest(keccak256(abi.encode(RELEASE_REQUEST_TYPEHASH, logs[0].topics[1], logs[0].topics[3], requestId, deadline)));
        (bytes32 r, bytes32 s, uint8 v) = _splitSig(signature);
        require(ecrecover(digest, v, r, s) == address(uint160(uint256(logs[0].topics[2]))), "grantee signed it");
        require(address(uint160(uint256(logs[0].topics[2]))) == CONSUMER, "the grantee");
    }

    function test_L2_signatureIsCheckedBeforeAnythingElse() public {
        IConsentLedger.Grant memory g = _grant(); // never recorded
        bytes32 grantId = _grantId(g);
        // Not the grantee's signature, expired deadline, unknown grant: NotGrantee wins.
        bytes memory sig = _releaseSig(OTHER_CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 - 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotGrantee.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), T0 - 1, sig);
        // The grantee's signature, expired deadline, unknown grant: the deadline comes next.
        sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 - 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, uint256(T0 - 1)));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), T0 - 1, sig);
        // Emergency release: the consumer's signature comes first too.
        IConsentLedger.Emergency memory e = _emergency(); // never proposed
        sig = _highS(_emergencyReleaseSig(CONSUMER_KEY, e.emergencyId, SUBJECT, R_SENSITIVE, bytes32(0), T0 - 1));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(0), T0 - 1, sig);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, address(0)));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(0), T0 - 1, new bytes(64));
        sig = _emergencyReleaseSig(CONSUMER_KEY, e.emergencyId, SUBJECT, R_SENSITIVE, bytes32(0), T0 - 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, uint256(T0 - 1)));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(0), T0 - 1, sig);
    }

    function test_L1_revokeNeedsTheSubjectRole() public {
        bytes32 grantId = _record(_grant());
        vm.prank(ADMIN);
        ledger.updateMember(SUBJECT, Roles.PROVIDER, 0, "");
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, 500, T0 + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, SUBJECT, Roles.SUBJECT)
        );
        ledger.revoke(grantId, 500, T0 + 1 hours, sig);
    }

    function test_H1_anApprovalCountsOnlyInTheRoleItWasGivenIn() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN2_KEY); // as ADMIN
        // ADMIN2 becomes an auditor (with AUDITOR's approval), then ADMIN approves: the two
        // current roles are there, but ADMIN2 approved as an admin, and no auditor approved.
        vm.startPrank(ADMIN);
        ledger.updateMember(ADMIN2, Roles.PROVIDER, 0, "");
        ledger.enrolAuditor(ADMIN2, Roles.AUDITOR, 0, "", 1, T0 + 1 hours, _enrolSig(AUDITOR_KEY, ADMIN2, 1, T0 + 1 hours));
        vm.stopPrank();
        _approve(e, ADMIN_KEY);
        require(!ledger.emergencyActive(e.emergencyId), "no approval given as auditor");
        _approve(e, AUDITOR_KEY);
        require(ledger.emergencyActive(e.emergencyId), "admin + auditor");
    }

    function test_H1_approvalsAreCappedAtSixteen() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        for (uint256 k = 1; k <= 15; ++k) {
            vm.prank(ADMIN);
            ledger.onboard(vm.addr(0x1000 + k), Roles.ADMIN, 0, "");
            _approve(e, 0x1000 + k);
        }
        require(ledger.emergencyApprovers(e.emergencyId).length == 16, "16 approvers");
        require(!ledger.emergencyActive(e.emergencyId), "no auditor among them");
        bytes memory sig = _emergencySig(AUDITOR_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerTooManyApprovals.selector, e.emergencyId));
        ledger.approveEmergency(e, sig);
    }

    // ---- grouping: multicall ---------------------------------------------------------------------

    function test_multicallGrantsWithOneBadSignature() public {
        bytes[] memory calls = new bytes[](3);
        IConsentLedger.Grant[] memory gs = new IConsentLedger.Grant[](3);
        for (uint256 i; i < 3; ++i) {
            gs[i] = _grant();
            gs[i].nonce = 300 + i;
            bytes memory sig = _signGrant(i == 1 ? CONSUMER_KEY : SUBJECT_KEY, gs[i]);
            calls[i] = abi.encodeCall(ledger.recordGrant, (gs[i], sig));
        }
        vm.expectEmit(true, false, false, true, address(ledger));
        emit IConsentLedger.CallFailed(1, _err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        vm.prank(RELAYER);
        uint256 ok = ledger.multicall(calls);
        require(ok == 5, "calls 0 and 2");
        require(ledger.grantState(_grantId(gs[0])).subject == SUBJECT, "first recorded");
        require(ledger.grantState(_grantId(gs[1])).subject == address(0), "second not");
        require(ledger.grantState(_grantId(gs[2])).subject == SUBJECT, "third recorded");
        require(!ledger.nonceUsed(SUBJECT, 301), "failed call left no trace");
    }

    function test_multicallRevokeAppliesToLaterItemsAndBatchLimit() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes[] memory calls = new bytes[](3);
        calls[0] = abi.encodeCall(
            ledger.recordRelease,
            (g, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours, _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours))
        );
        calls[1] = abi.encodeCall(ledger.revoke, (grantId, 600, T0 + 1 hours, _revokeSig(SUBJECT_KEY, grantId, 600, T0 + 1 hours)));
        calls[2] = abi.encodeCall(
            ledger.recordRelease,
            (g, R_PUBLIC, bytes32(uint256(2)), T0 + 1 hours, _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(2)), T0 + 1 hours))
        );
        require(ledger.multicall(calls) == 3, "release, revoke; the release after is refused");
        require(ledger.grantState(grantId).uses == 1, "one use");
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerBatchTooLarge.selector, uint256(257)));
        ledger.multicall(new bytes[](257));
    }

    // ---- AuditAnchor records ---------------------------------------------------------------------

    function test_auditAnchorRecord() public {
        AuditAnchor anchor = new AuditAnchor(address(ledger));
        bytes32 id = keccak256("correction:1");
        bytes32 kind = keccak256("correction");
        vm.expectEmit(true, true, false, true, address(anchor));
        emit IAuditAnchor.RecordAnchored(id, kind, keccak256("c"));
        vm.prank(ADMIN);
        anchor.anchorRecord(id, kind, keccak256("c"));
        (bytes32 k, bytes32 c, uint64 at) = anchor.record(id);
        require(k == kind && c == keccak256("c") && at == T0, "stored");
        vm.expectRevert(_err(IAuditAnchor.AuditAnchorRecordExists.selector, id));
        vm.prank(ADMIN);
        anchor.anchorRecord(id, kind, keccak256("d"));
        vm.expectRevert(_err(IAuditAnchor.AuditAnchorInvalidCommitment.selector, keccak256("other")));
        vm.prank(ADMIN);
        anchor.anchorRecord(keccak256("other"), kind, 0);
        vm.expectRevert(_err(IAuditAnchor.AuditAnchorUnauthorized.selector, AUDITOR));
        vm.prank(AUDITOR);
        anchor.anchorRecord(keccak256("other"), kind, keccak256("c"));
    }

    // ---- helpers ---------------------------------------------------------------------------------

    function _onboardBurner(GasBurnerWallet burner) internal {
        bytes memory proof = _walletProof(OUTSIDER_KEY, address(burner), Roles.CONSUMER, 0, T0 + 1 hours);
        vm.prank(ADMIN);
        ledger.onboardWallet(address(burner), Roles.CONSUMER, 0, HPKE_KEY, T0 + 1 hours, proof);
    }

    function _walletProof(uint256 key, address account, uint8 roles, bytes32 orgId, uint256 deadline)
        internal
        returns (bytes memory)
    {
        return _sign(key, _digest(keccak256(abi.encode(WALLET_ONBOARDING_TYPEHASH, account, roles, orgId, deadline))));
    }

    function _enrolSig(uint256 key, address account, uint256 nonce, uint256 deadline) internal returns (bytes memory) {
        return _sign(key, _digest(keccak256(abi.encode(AUDITOR_ENROLMENT_TYPEHASH, account, nonce, deadline))));
    }

    function _cancelSig(uint256 key, bytes32 emergencyId, uint256 deadline) internal returns (bytes memory) {
        return _sign(key, _digest(keccak256(abi.encode(EMERGENCY_CANCEL_TYPEHASH, emergencyId, deadline))));
    }
}
