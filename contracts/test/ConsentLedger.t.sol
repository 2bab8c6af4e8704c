// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsentLedger} from "../interfaces/IConsentLedger.sol";
import {ConsentLedger} from "../ConsentLedger.sol";
import {Roles} from "../Roles.sol";
import {LedgerFixture} from "./LedgerFixture.sol";

/// @dev Unit and fuzz tests of the consent ledger: grants, releases, revoke/pause, grouped
/// releases, emergencies. See LedgerFixture for the members, catalog and signing helpers.
contract ConsentLedgerTest is LedgerFixture {
    // =============================================================================================
    // EIP-712 domain and type hashes
    // =============================================================================================

    function testTypeHashesMatchSpec() public view {
        require(
            GRANT_TYPEHASH
                == keccak256(
                    "Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
                ),
            "Grant typehash"
        );
        require(REVOKE_TYPEHASH == keccak256("Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)"), "Revoke");
        require(
            SET_PAUSED_TYPEHASH
                == keccak256("SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)"),
            "SetPaused"
        );
        require(
            RELEASE_REQUEST_TYPEHASH
                == keccak256("ReleaseRequest(bytes32 grantId,bytes32 resource,bytes32 requestId,uint256 deadline)"),
            "ReleaseRequest"
        );
        require(
            EMERGENCY_TYPEHASH
                == keccak256(
                    "Emergency(bytes32 emergencyId,bytes32[] resources,address[] consumers,uint64 validFrom,uint64 validUntil,bytes32 reason,uint256 deadline)"
                ),
            "Emergency"
        );
        require(
            EMERGENCY_RELEASE_TYPEHASH
                == keccak256(
                    "EmergencyReleaseRequest(bytes32 emergencyId,address subject,bytes32 resource,bytes32 requestId,uint256 deadline)"
                ),
            "EmergencyReleaseRequest"
        );
        require(
            EMERGENCY_CANCEL_TYPEHASH == keccak256("EmergencyCancel(bytes32 emergencyId,uint256 deadline)"),
            "EmergencyCancel"
        );
        require(
            AUDITOR_ENROLMENT_TYPEHASH == keccak256("AuditorEnrolment(address account,uint256 nonce,uint256 deadline)"),
            "AuditorEnrolment"
        );
        require(
            WALLET_ONBOARDING_TYPEHASH
                == keccak256("WalletOnboarding(address account,uint8 roles,bytes32 orgId,uint256 deadline)"),
            "WalletOnboarding"
        );
        require(WILDCARD == keccak256("*"), "wildcard");
    }

    function testDomainSeparatorIsQuanchenglianV1OnThisChainAndContract() public view {
        require(DOMAIN == _domain(block.chainid, address(ledger)), "domain separator");
        require(ledger.emergencyThreshold() == 2, "threshold");
    }

    function testConstructorRejectsThresholdBelowTwo() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidThreshold.selector, uint8(1)));
        new ConsentLedger(ADMIN, _noAuditors(), 1);
    }

    function testConstructorRejectsThresholdAboveSixteen() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidThreshold.selector, uint8(17)));
        new ConsentLedger(ADMIN, _noAuditors(), 17);
        require(address(new ConsentLedger(ADMIN, _noAuditors(), 16)) != address(0), "16 accepted");
    }

    // =============================================================================================
    // 1. Grants
    // =============================================================================================

    function testRecordGrantRelayedByAnyone() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        bytes32 expectedId = _grantId(g);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Unknown, "unknown before");

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.GrantRecorded(
            expectedId, SUBJECT, CONSUMER, g.resources, PURPOSE, g.validFrom, g.validUntil, 0, 1, g.deadline
        );
        vm.prank(RELAYER); // neither subject nor grantee
        bytes32 grantId = ledger.recordGrant(g, sig);

        require(grantId == expectedId, "grant id is the EIP-712 digest");
        require(grantId == ledger.hashGrant(g), "grant id == hashGrant");
        IConsentLedger.GrantState memory st = ledger.grantState(grantId);
        require(st.subject == SUBJECT && st.uses == 0 && !st.revoked && !st.paused, "state");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Active, "active");
    }

    function testRecordGrantReplayRevertsNonceUsed() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        ledger.recordGrant(g, sig);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(1)));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantExpiredDeadline() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.warp(g.deadline + 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, g.deadline));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantAtDeadlinePasses() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.warp(g.deadline);
        require(ledger.recordGrant(g, sig) == _grantId(g), "recorded at deadline");
    }

    function testRecordGrantWrongSigner() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(CONSUMER_KEY, g); // the grantee, not the subject
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantTamperedTermsInvalidSignature() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        g.maxUses = 1000; // terms changed after signing
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantBadSignatureLength() public {
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        bytes memory shortSig = new bytes(64);
        for (uint256 i; i < 64; ++i) shortSig[i] = sig[i];
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, shortSig);
    }

    function testRecordGrantHighSRevertsMalleable() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 digest = _grantId(g);
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        bytes memory high = _highS(sig);
        // The flipped signature is a genuine signature of the subject (ecrecover accepts it)...
        (bytes32 r, bytes32 s, uint8 v) = _splitSig(high);
        require(uint256(s) > HALF_N, "upper half");
        require(ecrecover(digest, v, r, s) == SUBJECT, "same signer");
        // ...but the ledger refuses the malleable form.
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordGrant(g, high);
    }

    function testRecordGrantSignatureForOtherChainId() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 otherChain = _domain(CHAIN_ID + 1, address(ledger));
        bytes memory sig = _sign(SUBJECT_KEY, _digest(otherChain, _grantStructHash(g)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantSignatureFromForkedChainRejectedAfterChainIdChange() public {
        IConsentLedger.Grant memory g = _grant();
        // Sign on "another chain": the ledger rebuilds its domain separator for the new chain id.
        vm.chainId(CHAIN_ID + 7);
        bytes32 otherDomain = ledger.domainSeparator();
        require(otherDomain == _domain(CHAIN_ID + 7, address(ledger)) && otherDomain != DOMAIN, "domain follows chain");
        bytes memory sig = _sign(SUBJECT_KEY, _digest(otherDomain, _grantStructHash(g)));
        vm.chainId(CHAIN_ID);
        require(ledger.domainSeparator() == DOMAIN, "domain restored");
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantSignatureForOtherContract() public {
        ConsentLedger other = new ConsentLedger(ADMIN, _noAuditors(), 2);
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _sign(SUBJECT_KEY, _digest(other.domainSeparator(), _grantStructHash(g)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantSuspendedSubject() public {
        vm.prank(ADMIN);
        ledger.setSuspended(SUBJECT, true);
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, SUBJECT, Roles.SUBJECT)
        );
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantSubjectNotAMember() public {
        IConsentLedger.Grant memory g = _grant();
        g.subject = OUTSIDER;
        bytes memory sig = _signGrant(OUTSIDER_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, OUTSIDER, Roles.SUBJECT)
        );
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantSuspendedGrantee() public {
        vm.prank(ADMIN);
        ledger.setSuspended(CONSUMER, true);
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, CONSUMER, Roles.CONSUMER)
        );
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantGranteeWithoutConsumerRole() public {
        IConsentLedger.Grant memory g = _grant();
        g.grantee = PROVIDER;
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, PROVIDER, Roles.CONSUMER)
        );
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantEmptyResources() public {
        IConsentLedger.Grant memory g = _grantFor(new bytes32[](0));
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidResources.selector, bytes32(0)));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantUnknownResource() public {
        IConsentLedger.Grant memory g = _grantFor(_two(R_PUBLIC, R_UNKNOWN));
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidResources.selector, R_UNKNOWN));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantTooManyResources() public {
        bytes32[] memory list = new bytes32[](33);
        for (uint256 i; i < 33; ++i) list[i] = R_PUBLIC;
        IConsentLedger.Grant memory g = _grantFor(list);
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidResources.selector, bytes32(uint256(33))));
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantThirtyTwoResourcesAndWildcardAccepted() public {
        bytes32[] memory list = new bytes32[](32);
        for (uint256 i; i < 32; ++i) list[i] = i % 2 == 0 ? R_HIGHLY : WILDCARD;
        IConsentLedger.Grant memory g = _grantFor(list);
        bytes32 grantId = _record(g);
        require(ledger.grantState(grantId).subject == SUBJECT, "recorded");
    }

    function testRecordGrantEmptyWindow() public {
        IConsentLedger.Grant memory g = _grant();
        g.validUntil = g.validFrom;
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidWindow.selector, g.validFrom, g.validUntil)
        );
        ledger.recordGrant(g, sig);
    }

    function testRecordGrantInvertedWindow() public {
        IConsentLedger.Grant memory g = _grant();
        g.validFrom = g.validUntil + 1;
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidWindow.selector, g.validFrom, g.validUntil)
        );
        ledger.recordGrant(g, sig);
    }

    function testSameTermsWithOtherNonceAreAnotherGrant() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 first = _record(g);
        g.nonce = 2;
        bytes32 second = _record(g);
        require(first != second, "distinct ids");
        require(ledger.grantState(second).subject == SUBJECT, "second recorded");
    }

    // =============================================================================================
    // 2. Releases
    // =============================================================================================

    function testRecordReleaseIncrementsUsesAndEmits() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours);

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(grantId, CONSUMER, R_PUBLIC, bytes32(uint256(1)), 1, T0 + 1 hours, sig);
        vm.prank(RELAYER);
        require(ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours, sig) == grantId, "returns id");
        require(ledger.grantState(grantId).uses == 1, "uses 1");
        require(ledger.requestUsed(CONSUMER, bytes32(uint256(1))), "request used");
        require(!ledger.requestUsed(OTHER_CONSUMER, bytes32(uint256(1))), "per grantee");

        sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(2)), type(uint256).max);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(
            grantId, CONSUMER, R_PUBLIC, bytes32(uint256(2)), 2, type(uint256).max, sig
        );
        _release(g, R_PUBLIC, bytes32(uint256(2)));
        require(ledger.grantState(grantId).uses == 2, "uses 2");
    }

    function testRecordReleaseUnknownGrant() public {
        IConsentLedger.Grant memory g = _grant(); // never recorded
        bytes32 grantId = _grantId(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownGrant.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testRecordReleaseExpiredDeadline() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours);
        vm.warp(T0 + 1 hours + 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, uint256(T0 + 1 hours)));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testRecordReleaseWindowBoundaries() public {
        IConsentLedger.Grant memory g = _grant();
        g.validFrom = T0 + 10 days;
        g.validUntil = T0 + 20 days;
        bytes32 grantId = _record(g);

        vm.warp(g.validFrom - 1);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantNotYetValid.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);

        vm.warp(g.validFrom);
        _release(g, R_PUBLIC, bytes32(uint256(1)));
        require(ledger.grantState(grantId).uses == 1, "at validFrom");

        vm.warp(g.validUntil - 1);
        _release(g, R_PUBLIC, bytes32(uint256(2)));
        require(ledger.grantState(grantId).uses == 2, "at validUntil - 1");

        vm.warp(g.validUntil);
        sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(3)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantExpired.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(3)), type(uint256).max, sig);
        require(ledger.grantState(grantId).uses == 2, "unchanged");
    }

    function testRecordReleaseMaxUsesReached() public {
        IConsentLedger.Grant memory g = _grant();
        g.maxUses = 2;
        bytes32 grantId = _record(g);
        _release(g, R_PUBLIC, bytes32(uint256(1)));
        _release(g, R_PUBLIC, bytes32(uint256(2)));
        require(ledger.grantStatus(g) == IConsentLedger.Status.Exhausted, "exhausted status");
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(3)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantExhausted.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(3)), type(uint256).max, sig);
        require(!ledger.requestUsed(CONSUMER, bytes32(uint256(3))), "refused request id not consumed");
    }

    function testRecordReleaseMaxUsesZeroIsUnlimited() public {
        IConsentLedger.Grant memory g = _grant();
        require(g.maxUses == 0, "unlimited");
        bytes32 grantId = _record(g);
        for (uint256 i = 1; i <= 40; ++i) _release(g, R_PUBLIC, bytes32(i));
        require(ledger.grantState(grantId).uses == 40, "40 uses");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Active, "still active");
    }

    function testRecordReleaseRequestIdReuse() public {
        IConsentLedger.Grant memory g = _grant();
        _record(g);
        _release(g, R_PUBLIC, keccak256("req"));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerRequestUsed.selector, keccak256("req")));
        _release(g, R_PUBLIC, keccak256("req"));
    }

    function testRequestIdReuseAcrossGrantsOfSameGrantee() public {
        IConsentLedger.Grant memory g1 = _grant();
        IConsentLedger.Grant memory g2 = _grant();
        g2.nonce = 2;
        _record(g1);
        _record(g2);
        _release(g1, R_PUBLIC, keccak256("req"));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerRequestUsed.selector, keccak256("req")));
        _release(g2, R_PUBLIC, keccak256("req"));
    }

    function testRequestIdsSharingABitmapWordAreIndependent() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        // Same word (id >> 8), adjacent bits, plus the two extreme bits of another word.
        _release(g, R_PUBLIC, bytes32(uint256(0x100)));
        _release(g, R_PUBLIC, bytes32(uint256(0x101)));
        _release(g, R_PUBLIC, bytes32(uint256(0x2ff)));
        _release(g, R_PUBLIC, bytes32(uint256(0x200)));
        require(ledger.grantState(grantId).uses == 4, "four distinct ids");
        require(!ledger.requestUsed(CONSUMER, bytes32(uint256(0x102))), "neighbour unused");
    }

    function testRecordReleaseSignedByOtherThanGrantee() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(OTHER_CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotGrantee.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);

        // Nor may the subject sign the grantee's release request.
        sig = _releaseSig(SUBJECT_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotGrantee.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function testRecordReleaseSignatureForOtherResourceRejected() public {
        IConsentLedger.Grant memory g = _grantFor(_two(R_PUBLIC, R_INTERNAL));
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotGrantee.selector, grantId));
        ledger.recordRelease(g, R_INTERNAL, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function testRecordReleaseHighSRevertsMalleable() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        bytes memory high = _highS(sig);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, high);
    }

    function testRecordReleaseRevoked() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        _revoke(grantId);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function testRecordReleasePausedThenResumed() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        _setPaused(grantId, true, 1);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantPaused.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);

        _setPaused(grantId, false, 2);
        // The very request refused while paused now passes (its id was not consumed).
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
        require(ledger.grantState(grantId).uses == 1, "released after resume");
    }

    function testRecordReleaseResourceNotListed() public {
        IConsentLedger.Grant memory g = _grant(); // R_PUBLIC only
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_INTERNAL, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_INTERNAL, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function testWildcardCoversSensitivityOneAndTwo() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        _release(g, R_PUBLIC, bytes32(uint256(1)));
        _release(g, R_INTERNAL, bytes32(uint256(2)));
        require(ledger.grantState(grantId).uses == 2, "two releases");
    }

    function testWildcardDoesNotCoverSensitivityThreeOrFour() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_SENSITIVE, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_SENSITIVE, bytes32(uint256(1)), type(uint256).max, sig);

        sig = _releaseSig(CONSUMER_KEY, grantId, R_HIGHLY, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_HIGHLY, bytes32(uint256(1)), type(uint256).max, sig);

        sig = _releaseSig(CONSUMER_KEY, grantId, R_UNKNOWN, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_UNKNOWN, bytes32(uint256(1)), type(uint256).max, sig);
    }

    function testNamedSensitiveResourcesAreCovered() public {
        IConsentLedger.Grant memory g = _grantFor(_two(R_SENSITIVE, R_HIGHLY));
        bytes32 grantId = _record(g);
        _release(g, R_SENSITIVE, bytes32(uint256(1)));
        _release(g, R_HIGHLY, bytes32(uint256(2)));
        require(ledger.grantState(grantId).uses == 2, "named sensitive resources released");
    }

    function testWildcardFollowsCurrentSensitivity() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        _release(g, R_INTERNAL, bytes32(uint256(1)));
        vm.prank(ADMIN);
        ledger.updateResource(R_INTERNAL, PROVIDER, 3); // now sensitive personal information
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_INTERNAL, bytes32(uint256(2)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, R_INTERNAL, bytes32(uint256(2)), type(uint256).max, sig);
    }

    function testRecordReleaseSuspendedGrantee() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        vm.prank(ADMIN);
        ledger.setSuspended(CONSUMER, true);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, CONSUMER, Roles.CONSUMER)
        );
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);

        vm.prank(ADMIN);
        ledger.setSuspended(CONSUMER, false);
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
        require(ledger.grantState(grantId).uses == 1, "released after reinstatement");
    }

    function testRecordReleaseSuspendedSubjectFreezesTheGrant() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        vm.prank(ADMIN);
        ledger.setSuspended(SUBJECT, true);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, SUBJECT, Roles.SUBJECT)
        );
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
        vm.prank(ADMIN);
        ledger.setSuspended(SUBJECT, false);
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
        require(ledger.grantState(grantId).uses == 1, "released after reinstatement");
    }

    function testWildcardIsNotItselfAResource() public {
        IConsentLedger.Grant memory g = _grantFor(_one(WILDCARD));
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, WILDCARD, bytes32(uint256(1)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerResourceNotGranted.selector, grantId));
        ledger.recordRelease(g, WILDCARD, bytes32(uint256(1)), type(uint256).max, sig);
    }

    // =============================================================================================
    // 3. Revoke and SetPaused
    // =============================================================================================

    function testRevokeBySubjectSignatureIsFinal() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _revokeSig(SUBJECT_KEY, grantId, 7, T0 + 1 hours);

        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.GrantRevoked(grantId, SUBJECT);
        vm.prank(RELAYER);
        ledger.revoke(grantId, 7, T0 + 1 hours, sig);
        require(ledger.grantState(grantId).revoked, "revoked");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Revoked, "status revoked");

        // A second revoke is refused: the same message (its nonce is spent) or a fresh one.
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(7)));
        ledger.revoke(grantId, 7, T0 + 1 hours, sig);
        bytes memory sig2 = _revokeSig(SUBJECT_KEY, grantId, 8, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.revoke(grantId, 8, T0 + 1 hours, sig2);

        // Neither pause nor resume can bring it back.
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 1, 9, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.setPaused(grantId, false, 1, 9, T0 + 1 hours, resume);
        bytes memory pause = _pauseSig(SUBJECT_KEY, grantId, true, 2, 10, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.setPaused(grantId, true, 2, 10, T0 + 1 hours, pause);
    }

    function testRevokeWhilePausedStaysRevoked() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        _setPaused(grantId, true, 1);
        _revoke(grantId);
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 2, 202, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantRevoked.selector, grantId));
        ledger.setPaused(grantId, false, 2, 202, T0 + 1 hours, resume);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Revoked, "revoked");
    }

    function testRevokeNotSignedBySubject() public {
        bytes32 grantId = _record(_grant());
        bytes memory sig = _revokeSig(CONSUMER_KEY, grantId, 1, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.revoke(grantId, 1, T0 + 1 hours, sig);
        sig = _revokeSig(ADMIN_KEY, grantId, 1, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.revoke(grantId, 1, T0 + 1 hours, sig);
        require(!ledger.grantState(grantId).revoked, "not revoked");
    }

    function testRevokeUnknownGrantAndExpiredDeadline() public {
        bytes32 unknown = keccak256("no such grant");
        bytes memory sig = _revokeSig(SUBJECT_KEY, unknown, 1, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownGrant.selector, unknown));
        ledger.revoke(unknown, 1, T0 + 1 hours, sig);

        bytes32 grantId = _record(_grant());
        sig = _revokeSig(SUBJECT_KEY, grantId, 1, T0 + 1 hours);
        vm.warp(T0 + 1 hours + 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, uint256(T0 + 1 hours)));
        ledger.revoke(grantId, 1, T0 + 1 hours, sig);
    }

    function testRevokeHighSRevertsMalleable() public {
        bytes32 grantId = _record(_grant());
        bytes memory sig = _highS(_revokeSig(SUBJECT_KEY, grantId, 1, T0 + 1 hours));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.revoke(grantId, 1, T0 + 1 hours, sig);
    }

    function testSetPausedEmitsAndRecordsNonceAndSequence() public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, true, 1, 42, T0 + 1 hours);
        require(!ledger.nonceUsed(SUBJECT, 42), "fresh nonce");
        require(ledger.pauseSequence(grantId) == 0, "no sequence yet");

        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.GrantPauseChanged(grantId, SUBJECT, true, 1, 42);
        vm.prank(RELAYER);
        ledger.setPaused(grantId, true, 1, 42, T0 + 1 hours, sig);

        require(ledger.nonceUsed(SUBJECT, 42), "nonce recorded");
        require(!ledger.nonceUsed(SUBJECT, 43), "neighbour nonce free");
        require(ledger.pauseSequence(grantId) == 1, "sequence recorded");
        require(ledger.grantState(grantId).paused, "paused");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Paused, "status paused");

        sig = _pauseSig(SUBJECT_KEY, grantId, false, 5, 43, T0 + 1 hours);
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.GrantPauseChanged(grantId, SUBJECT, false, 5, 43);
        ledger.setPaused(grantId, false, 5, 43, T0 + 1 hours, sig);
        require(ledger.pauseSequence(grantId) == 5, "sequence 5");
        require(ledger.grantStatus(g) == IConsentLedger.Status.Active, "status active");
    }

    function testSetPausedNonceReplay() public {
        bytes32 grantId = _record(_grant());
        bytes memory pause = _pauseSig(SUBJECT_KEY, grantId, true, 1, 101, T0 + 1 hours);
        ledger.setPaused(grantId, true, 1, 101, T0 + 1 hours, pause);
        _setPaused(grantId, false, 2);
        // Replaying the old pause message (its nonce is spent) is refused.
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(101)));
        ledger.setPaused(grantId, true, 1, 101, T0 + 1 hours, pause);
        require(!ledger.grantState(grantId).paused, "still resumed");
    }

    function testSetPausedNonceIsPerSubjectAcrossGrants() public {
        IConsentLedger.Grant memory g2 = _grant();
        g2.nonce = 2;
        bytes32 grantA = _record(_grant());
        bytes32 grantB = _record(g2);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantA, true, 1, 105, T0 + 365 days);
        ledger.setPaused(grantA, true, 1, 105, T0 + 365 days, sig);
        sig = _pauseSig(SUBJECT_KEY, grantB, true, 1, 105, T0 + 365 days);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, uint256(105)));
        ledger.setPaused(grantB, true, 1, 105, T0 + 365 days, sig);
    }

    /// The same state again is applied (the message's sequence is what counts), and emitted.
    function testSetPausedSameStateIsAppliedWithItsSequence() public {
        bytes32 grantId = _record(_grant());
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 3, 101, T0 + 1 hours);
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.GrantPauseChanged(grantId, SUBJECT, false, 3, 101);
        ledger.setPaused(grantId, false, 3, 101, T0 + 1 hours, resume);
        require(ledger.pauseSequence(grantId) == 3 && !ledger.grantState(grantId).paused, "applied");
    }

    function testSetPausedStaleSequence() public {
        bytes32 grantId = _record(_grant());
        _setPaused(grantId, true, 10);
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, false, 10, 101, T0 + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerStaleSequence.selector, grantId, uint64(10))
        );
        ledger.setPaused(grantId, false, 10, 101, T0 + 1 hours, sig);
        sig = _pauseSig(SUBJECT_KEY, grantId, false, 9, 102, T0 + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerStaleSequence.selector, grantId, uint64(9)));
        ledger.setPaused(grantId, false, 9, 102, T0 + 1 hours, sig);
        require(ledger.grantState(grantId).paused, "still paused");
    }

    function testSetPausedNotSignedBySubject() public {
        bytes32 grantId = _record(_grant());
        bytes memory sig = _pauseSig(CONSUMER_KEY, grantId, true, 1, 101, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.setPaused(grantId, true, 1, 101, T0 + 1 hours, sig);
    }

    function testSetPausedSignatureForOtherStateOrSequenceRejected() public {
        bytes32 grantId = _record(_grant());
        bytes memory resume = _pauseSig(SUBJECT_KEY, grantId, false, 1, 101, T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.setPaused(grantId, true, 1, 101, T0 + 1 hours, resume); // "paused" flipped by the relayer
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.setPaused(grantId, false, 2, 101, T0 + 1 hours, resume); // sequence changed by the relayer
    }

    function testGrantStatusInEachState() public {
        // Unknown
        IConsentLedger.Grant memory g = _grant();
        g.validFrom = T0 + 1 days;
        g.validUntil = T0 + 2 days;
        g.maxUses = 1;
        require(ledger.grantStatus(g) == IConsentLedger.Status.Unknown, "unknown");
        bytes32 grantId = _record(g);
        // NotYetValid
        require(ledger.grantStatus(g) == IConsentLedger.Status.NotYetValid, "not yet valid");
        // Active
        vm.warp(g.validFrom);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Active, "active");
        // Paused
        _setPaused(grantId, true, 1);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Paused, "paused");
        _setPaused(grantId, false, 2);
        // Exhausted
        _release(g, R_PUBLIC, bytes32(uint256(1)));
        require(ledger.grantStatus(g) == IConsentLedger.Status.Exhausted, "exhausted");
        // Expired
        vm.warp(g.validUntil);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Expired, "expired");
        // Revoked
        _revoke(grantId);
        require(ledger.grantStatus(g) == IConsentLedger.Status.Revoked, "revoked");
        // Other terms are another (unknown) grant.
        g.maxUses = 2;
        require(ledger.grantStatus(g) == IConsentLedger.Status.Unknown, "other terms unknown");
    }

    // =============================================================================================
    // 4. Grouped releases
    // =============================================================================================

    function testRecordReleasesMixedBatch() public {
        IConsentLedger.Grant memory g = _grantFor(_two(R_PUBLIC, WILDCARD));
        IConsentLedger.Grant memory limited = _grant();
        limited.nonce = 2;
        limited.maxUses = 1;
        IConsentLedger.Grant memory unknown = _grant();
        unknown.nonce = 3; // never recorded
        IConsentLedger.Grant memory paused = _grant();
        paused.nonce = 4;
        bytes32 gid = _record(g);
        bytes32 limitedId = _record(limited);
        bytes32 unknownId = _grantId(unknown);
        bytes32 pausedId = _record(paused);
        _setPaused(pausedId, true, 1);

        uint256 far = type(uint256).max;
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](11);
        items[0] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), far); // ok
        items[1] = _item(g, CONSUMER_KEY, R_INTERNAL, bytes32(uint256(1)), far); // request id of item 0
        items[2] = _item(g, OTHER_CONSUMER_KEY, R_PUBLIC, bytes32(uint256(2)), far); // not the grantee
        items[3] = _item(g, CONSUMER_KEY, R_SENSITIVE, bytes32(uint256(3)), far); // wildcard never covers it
        items[4] = _item(g, CONSUMER_KEY, R_INTERNAL, bytes32(uint256(4)), far); // ok (wildcard)
        items[5] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(5)), T0 - 1); // deadline passed
        items[6] = _item(unknown, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(6)), far); // unknown grant
        items[7] = _item(limited, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(7)), far); // ok, uses 1/1
        items[8] = _item(limited, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(8)), far); // exhausted by item 7
        items[9] = _item(paused, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(9)), far); // paused
        items[10] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(10)), far);
        items[10].signature = _highS(items[10].signature); // malleable

        // Items 2 (not the grantee's signature) and 10 (malleable) are skipped without an event.
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(gid, CONSUMER, R_PUBLIC, bytes32(uint256(1)), 1, far, items[0].signature);
        _expectRejected(1, gid, IConsentLedger.ConsentLedgerRequestUsed.selector);
        _expectRejected(3, gid, IConsentLedger.ConsentLedgerResourceNotGranted.selector);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(gid, CONSUMER, R_INTERNAL, bytes32(uint256(4)), 2, far, items[4].signature);
        _expectRejected(5, gid, IConsentLedger.ConsentLedgerExpiredDeadline.selector);
        _expectRejected(6, unknownId, IConsentLedger.ConsentLedgerUnknownGrant.selector);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(
            limitedId, CONSUMER, R_PUBLIC, bytes32(uint256(7)), 1, far, items[7].signature
        );
        _expectRejected(8, limitedId, IConsentLedger.ConsentLedgerGrantExhausted.selector);
        _expectRejected(9, pausedId, IConsentLedger.ConsentLedgerGrantPaused.selector);

        vm.recordLogs();
        vm.prank(RELAYER);
        uint256 recorded = ledger.recordReleases(items);
        require(vm.getRecordedLogs().length == 9, "3 recorded + 6 rejected, nothing for items 2 and 10");

        require(recorded == (1 << 0) | (1 << 4) | (1 << 7), "bitmask of recorded items");
        require(ledger.grantState(gid).uses == 2, "g used twice");
        require(ledger.grantState(limitedId).uses == 1, "limited used once");
        require(ledger.grantState(pausedId).uses == 0, "paused unused");
        require(!ledger.requestUsed(CONSUMER, bytes32(uint256(3))), "refused request id not spent");
    }

    function testRecordReleasesRejectsSuspendedGranteeAndRevokedGrant() public {
        IConsentLedger.Grant memory g = _grant();
        IConsentLedger.Grant memory r = _grant();
        r.nonce = 2;
        IConsentLedger.Grant memory other = _grant();
        other.grantee = OTHER_CONSUMER;
        other.nonce = 3;
        bytes32 gid = _record(g);
        bytes32 rid = _record(r);
        bytes32 oid = _record(other);
        _revoke(rid);
        vm.prank(ADMIN);
        ledger.setSuspended(OTHER_CONSUMER, true);

        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](3);
        items[0] = _item(other, OTHER_CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        items[1] = _item(r, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);
        items[2] = _item(g, CONSUMER_KEY, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);

        _expectRejected(0, oid, IConsentLedger.ConsentLedgerInactiveMember.selector);
        _expectRejected(1, rid, IConsentLedger.ConsentLedgerGrantRevoked.selector);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.ReleaseRecorded(
            gid, CONSUMER, R_PUBLIC, bytes32(uint256(1)), 1, type(uint256).max, items[2].signature
        );
        uint256 recorded = ledger.recordReleases(items);
        require(recorded == 1 << 2, "only the last item");
    }

    function testRecordReleasesEmptyAndOversizedBatch() public {
        require(ledger.recordReleases(new IConsentLedger.ReleaseItem[](0)) == 0, "empty batch");
        IConsentLedger.ReleaseItem[] memory items = new IConsentLedger.ReleaseItem[](257);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerBatchTooLarge.selector, uint256(257)));
        ledger.recordReleases(items);
    }

    function _expectRejected(uint256 index, bytes32 grantId, bytes4 reason) internal {
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.ReleaseRejected(index, grantId, reason);
    }

    // =============================================================================================
    // 5. Emergencies
    // =============================================================================================

    function testEmergencyProposeApproveAndRelease() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory adminSig = _emergencySig(ADMIN_KEY, e);
        bytes memory auditorSig = _emergencySig(AUDITOR_KEY, e);

        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.EmergencyProposed(
            e.emergencyId, ADMIN, e.resources, e.consumers, e.validFrom, e.validUntil, e.reason
        );
        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.EmergencyApproved(e.emergencyId, ADMIN, 1, false);
        vm.prank(RELAYER);
        ledger.proposeEmergency(e, adminSig);

        IConsentLedger.EmergencyState memory st = ledger.emergencyState(e.emergencyId);
        require(st.digest == _digest(_emergencyStructHash(e)), "digest stored");
        require(st.approvals == 1 && st.activatedAt == 0 && !st.cancelled, "one approval");
        require(ledger.emergencyApprovers(e.emergencyId).length == 1, "one approver");
        require(!ledger.emergencyActive(e.emergencyId), "not active");
        require(st.validFrom == e.validFrom && st.validUntil == e.validUntil, "window stored");

        vm.expectEmit(true, true, false, true, address(ledger));
        emit IConsentLedger.EmergencyApproved(e.emergencyId, AUDITOR, 2, true);
        vm.prank(RELAYER);
        ledger.approveEmergency(e, auditorSig);
        st = ledger.emergencyState(e.emergencyId);
        require(st.approvals == 2 && st.activatedAt == T0, "activated");
        require(ledger.emergencyActive(e.emergencyId), "active");
        address[] memory approvers = ledger.emergencyApprovers(e.emergencyId);
        require(approvers.length == 2 && approvers[0] == ADMIN && approvers[1] == AUDITOR, "approvers");

        bytes32 req = keccak256("emergency-req-1");
        bytes memory sig = _emergencyReleaseSig(CONSUMER_KEY, e.emergencyId, SUBJECT, R_SENSITIVE, req, T0 + 1 hours);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IConsentLedger.EmergencyReleaseRecorded(
            e.emergencyId, CONSUMER, SUBJECT, R_SENSITIVE, req, T0 + 1 hours, sig
        );
        vm.prank(RELAYER);
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, req, T0 + 1 hours, sig);
        require(ledger.requestUsed(CONSUMER, req), "request id spent");

        vm.expectRevert(_err(IConsentLedger.ConsentLedgerRequestUsed.selector, req));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, req, T0 + 1 hours, sig);
    }

    function testEmergencyProposedByAuditorApprovedByAdmin() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, AUDITOR_KEY);
        _approve(e, ADMIN_KEY);
        IConsentLedger.EmergencyState memory st = ledger.emergencyState(e.emergencyId);
        require(st.approvals == 2 && st.activatedAt == T0, "active");
    }

    function testEmergencyReleaseBeforeApproval() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyNotApproved.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyTwoAdminsAreNotEnough() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        _approve(e, ADMIN2_KEY);
        IConsentLedger.EmergencyState memory st = ledger.emergencyState(e.emergencyId);
        require(st.approvals == 2 && st.activatedAt == 0, "two approvals, no auditor");
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyNotApproved.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencySameApproverTwice() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        ledger.proposeEmergency(e, sig);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerAlreadyApproved.selector, ADMIN));
        ledger.approveEmergency(e, sig);
    }

    function testEmergencyProposedTwice() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        bytes memory sig = _emergencySig(AUDITOR_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyExists.selector, e.emergencyId));
        ledger.proposeEmergency(e, sig);
    }

    function testEmergencyNonApproverSigner() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory sig = _emergencySig(CONSUMER_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotApprover.selector, CONSUMER));
        ledger.proposeEmergency(e, sig);

        _propose(e, ADMIN_KEY);
        sig = _emergencySig(OUTSIDER_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotApprover.selector, OUTSIDER));
        ledger.approveEmergency(e, sig);

        vm.prank(ADMIN);
        ledger.setSuspended(AUDITOR, true);
        sig = _emergencySig(AUDITOR_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotApprover.selector, AUDITOR));
        ledger.approveEmergency(e, sig);
    }

    function testEmergencyWindowLongerThan72Hours() public {
        IConsentLedger.Emergency memory e = _emergency();
        e.validUntil = e.validFrom + 72 hours + 1;
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidWindow.selector, e.validFrom, e.validUntil)
        );
        ledger.proposeEmergency(e, sig);

        e.validUntil = e.validFrom + 72 hours; // exactly 72 h is allowed
        _propose(e, ADMIN_KEY);
        require(ledger.emergencyState(e.emergencyId).validUntil == e.validFrom + 72 hours, "72 h accepted");
    }

    function testEmergencyEmptyWindow() public {
        IConsentLedger.Emergency memory e = _emergency();
        e.validUntil = e.validFrom;
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInvalidWindow.selector, e.validFrom, e.validUntil)
        );
        ledger.proposeEmergency(e, sig);
    }

    function testEmergencyScopeChecksOnPropose() public {
        IConsentLedger.Emergency memory e = _emergency();
        e.resources = _one(R_UNKNOWN);
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidResources.selector, R_UNKNOWN));
        ledger.proposeEmergency(e, sig);

        e = _emergency();
        e.consumers = new address[](0);
        sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidResources.selector, bytes32(0)));
        ledger.proposeEmergency(e, sig);

        e = _emergency();
        e.consumers = _oneAddr(PROVIDER);
        sig = _emergencySig(ADMIN_KEY, e);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, PROVIDER, Roles.CONSUMER)
        );
        ledger.proposeEmergency(e, sig);
    }

    function testEmergencyExpiredDeadline() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory sig = _emergencySig(ADMIN_KEY, e);
        vm.warp(e.deadline + 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, e.deadline));
        ledger.proposeEmergency(e, sig);
    }

    function testEmergencyOutsideWindow() public {
        IConsentLedger.Emergency memory e = _emergency();
        e.validFrom = T0 + 1 hours;
        e.validUntil = T0 + 5 hours;
        _activate(e);
        bytes32 req = bytes32(uint256(1));
        bytes memory sig =
            _emergencyReleaseSig(CONSUMER_KEY, e.emergencyId, SUBJECT, R_SENSITIVE, req, type(uint256).max);

        vm.warp(e.validFrom - 1);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyOutsideWindow.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, req, type(uint256).max, sig);

        vm.warp(e.validUntil);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyOutsideWindow.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, req, type(uint256).max, sig);

        vm.warp(e.validUntil - 1);
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, req, type(uint256).max, sig);
        require(ledger.requestUsed(CONSUMER, req), "released inside window");
    }

    function testEmergencyUnlistedConsumer() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory sig = _erSig(OTHER_CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyOutOfScope.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyUnlistedResource() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_HIGHLY, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerEmergencyOutOfScope.selector, e.emergencyId));
        ledger.recordEmergencyRelease(e, SUBJECT, R_HIGHLY, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyApproveWithDifferentScope() public {
        IConsentLedger.Emergency memory e = _emergency();
        _propose(e, ADMIN_KEY);
        IConsentLedger.Emergency memory wider = _emergency();
        address[] memory consumers = new address[](2);
        consumers[0] = CONSUMER;
        consumers[1] = OTHER_CONSUMER;
        wider.consumers = consumers;
        bytes memory sig = _emergencySig(AUDITOR_KEY, wider);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownEmergency.selector, e.emergencyId));
        ledger.approveEmergency(wider, sig);

        IConsentLedger.Emergency memory longer = _emergency();
        longer.validUntil += 1;
        sig = _emergencySig(AUDITOR_KEY, longer);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownEmergency.selector, e.emergencyId));
        ledger.approveEmergency(longer, sig);

        require(ledger.emergencyState(e.emergencyId).approvals == 1, "still one approval");
    }

    function testEmergencyConsumersHashedAsEip712AddressArray() public {
        IConsentLedger.Emergency memory e = _emergency();
        // A signature over the non-EIP-712 form (abi.encode: offset and length words) does not
        // recover to the admin: the ledger recovers some other address and refuses it.
        bytes32 nonStandard = keccak256(
            abi.encode(
                EMERGENCY_TYPEHASH,
                e.emergencyId,
                keccak256(abi.encodePacked(e.resources)),
                keccak256(abi.encode(e.consumers)),
                e.validFrom,
                e.validUntil,
                e.reason,
                e.deadline
            )
        );
        bytes memory bad = _sign(ADMIN_KEY, _digest(nonStandard));
        (bytes32 r, bytes32 s, uint8 v) = _splitSig(bad);
        address recovered = ecrecover(_digest(_emergencyStructHash(e)), v, r, s);
        require(recovered != ADMIN, "different digest");
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerNotApprover.selector, recovered));
        ledger.proposeEmergency(e, bad);
        // The EIP-712 form is accepted.
        _propose(e, ADMIN_KEY);
        require(ledger.emergencyState(e.emergencyId).digest == _digest(_emergencyStructHash(e)), "digest");
    }

    function testEmergencyAndGrantReleasesShareTheConsumersRequestIds() public {
        IConsentLedger.Grant memory g = _grant();
        _record(g);
        _release(g, R_PUBLIC, keccak256("shared"));
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory sig =
            _emergencyReleaseSig(CONSUMER_KEY, e.emergencyId, SUBJECT, R_SENSITIVE, keccak256("shared"), T0 + 1 hours);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerRequestUsed.selector, keccak256("shared")));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, keccak256("shared"), T0 + 1 hours, sig);
    }

    function testEmergencyApproveUnknown() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory sig = _emergencySig(AUDITOR_KEY, e);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownEmergency.selector, e.emergencyId));
        ledger.approveEmergency(e, sig);
    }

    function testEmergencyReleaseWithDifferentScopeThanProposed() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        IConsentLedger.Emergency memory forged = _emergency();
        forged.resources = _two(R_SENSITIVE, R_HIGHLY);
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_HIGHLY, bytes32(uint256(1)));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerUnknownEmergency.selector, e.emergencyId));
        ledger.recordEmergencyRelease(forged, SUBJECT, R_HIGHLY, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyReleaseSubjectNotASubject() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory sig = _erSig(CONSUMER_KEY, e, OUTSIDER, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, OUTSIDER, Roles.SUBJECT)
        );
        ledger.recordEmergencyRelease(e, OUTSIDER, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyReleaseSuspendedConsumer() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        vm.prank(ADMIN);
        ledger.setSuspended(CONSUMER, true);
        bytes memory sig = _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)));
        vm.expectRevert(
            abi.encodeWithSelector(IConsentLedger.ConsentLedgerInactiveMember.selector, CONSUMER, Roles.CONSUMER)
        );
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyReleaseMalleableSignature() public {
        IConsentLedger.Emergency memory e = _emergency();
        _activate(e);
        bytes memory sig = _highS(
            _erSig(CONSUMER_KEY, e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)))
        );
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordEmergencyRelease(e, SUBJECT, R_SENSITIVE, bytes32(uint256(1)), T0 + 1 hours, sig);
    }

    function testEmergencyProposeMalleableSignature() public {
        IConsentLedger.Emergency memory e = _emergency();
        bytes memory sig = _highS(_emergencySig(ADMIN_KEY, e));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.proposeEmergency(e, sig);
    }

    // =============================================================================================
    // 6. Fuzz
    // =============================================================================================

    /// Any key other than the subject's yields InvalidSignature(subject).
    function testFuzzGrantSignedByOtherKeyIsInvalid(uint256 key) public {
        key = _bound(key, 1, SECP256K1_N - 1);
        vm.assume(key != SUBJECT_KEY);
        IConsentLedger.Grant memory g = _grant();
        bytes memory sig = _signGrant(key, g);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerInvalidSignature.selector, SUBJECT));
        ledger.recordGrant(g, sig);
    }

    /// Any 65-byte signature whose s lies in the upper half of the order is refused as malleable,
    /// whatever r and v are.
    function testFuzzUpperHalfSIsMalleable(bytes32 r, uint256 s, uint8 v) public {
        s = _bound(s, HALF_N + 1, type(uint256).max);
        IConsentLedger.Grant memory g = _grant();
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordGrant(g, abi.encodePacked(r, bytes32(s), v));
    }

    /// A genuine signature turned into its high-s twin is refused for any key and terms (before
    /// membership is even looked at).
    function testFuzzHighSOfValidSignatureIsMalleable(uint256 key, bytes32 purpose, uint256 nonce) public {
        key = _bound(key, 1, SECP256K1_N - 1);
        IConsentLedger.Grant memory g = _grant();
        g.subject = vm.addr(key);
        g.purpose = purpose;
        g.nonce = nonce;
        bytes memory high = _highS(_signGrant(key, g));
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerMalleableSignature.selector));
        ledger.recordGrant(g, high);
    }

    /// recordGrant passes iff deadline >= block.timestamp.
    function testFuzzGrantDeadline(uint64 now_, uint256 far, int32 delta, bool nearNow) public {
        uint256 t = _bound(now_, 1, type(uint64).max);
        uint256 deadline;
        if (nearNow) {
            // Exercise the boundary: deadline within +-2^31 of the clock.
            int256 d = int256(t) + int256(delta);
            deadline = d < 0 ? 0 : uint256(d);
        } else {
            deadline = far;
        }
        IConsentLedger.Grant memory g = _grant();
        g.deadline = deadline;
        bytes memory sig = _signGrant(SUBJECT_KEY, g);
        vm.warp(t);
        if (deadline >= t) {
            bytes32 grantId = ledger.recordGrant(g, sig);
            require(ledger.grantState(grantId).subject == SUBJECT, "recorded");
        } else {
            vm.expectRevert(_err(IConsentLedger.ConsentLedgerExpiredDeadline.selector, deadline));
            ledger.recordGrant(g, sig);
        }
    }

    /// recordRelease passes iff validFrom <= t < validUntil.
    function testFuzzReleaseWindow(uint64 from, uint64 until, uint64 at, uint8 mode) public {
        vm.assume(from != until);
        if (from > until) (from, until) = (until, from);
        uint256 t;
        mode %= 5;
        if (mode == 0) t = from; // first valid second
        else if (mode == 1) t = until - 1; // last valid second
        else if (mode == 2) t = until; // first expired second
        else if (mode == 3) t = from == 0 ? 0 : from - 1; // last second before
        else t = at; // anywhere
        IConsentLedger.Grant memory g = _grant();
        g.validFrom = from;
        g.validUntil = until;
        g.deadline = type(uint256).max;
        bytes32 grantId = _record(g);
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(1)), type(uint256).max);

        vm.warp(t);
        if (t < from) {
            vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantNotYetValid.selector, grantId));
        } else if (t >= until) {
            vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantExpired.selector, grantId));
        }
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(1)), type(uint256).max, sig);
        bool inside = from <= t && t < until;
        require(ledger.grantState(grantId).uses == (inside ? 1 : 0), "uses iff inside window");
        require(
            ledger.grantStatus(g)
                == (
                    inside
                        ? IConsentLedger.Status.Active
                        : t >= until ? IConsentLedger.Status.Expired : IConsentLedger.Status.NotYetValid
                ),
            "status agrees with window"
        );
    }

    /// Exactly maxUses releases pass, the next one is refused.
    function testFuzzMaxUses(uint8 maxUses) public {
        uint32 m = uint32(_bound(maxUses, 1, 24));
        IConsentLedger.Grant memory g = _grant();
        g.maxUses = m;
        bytes32 grantId = _record(g);
        for (uint256 i; i < m; ++i) _release(g, R_PUBLIC, bytes32(i));
        require(ledger.grantState(grantId).uses == m, "m uses");
        bytes memory sig = _releaseSig(CONSUMER_KEY, grantId, R_PUBLIC, bytes32(uint256(m)), type(uint256).max);
        vm.expectRevert(_err(IConsentLedger.ConsentLedgerGrantExhausted.selector, grantId));
        ledger.recordRelease(g, R_PUBLIC, bytes32(uint256(m)), type(uint256).max, sig);
    }

    /// Two request ids collide iff they are equal (the bitmap never aliases distinct ids).
    function testFuzzRequestIds(bytes32 a, bytes32 b) public {
        IConsentLedger.Grant memory g = _grant();
        bytes32 grantId = _record(g);
        _release(g, R_PUBLIC, a);
        require(ledger.requestUsed(CONSUMER, a), "a used");
        require(ledger.requestUsed(CONSUMER, b) == (a == b), "b used iff equal");
        if (a == b) vm.expectRevert(_err(IConsentLedger.ConsentLedgerRequestUsed.selector, b));
        _release(g, R_PUBLIC, b);
        require(ledger.grantState(grantId).uses == (a == b ? 1 : 2), "uses");
    }

    /// The shared nonce bitmap: a nonce is spent iff it was used (by a SetPaused here).
    function testFuzzSetPausedNonces(uint256 n1, uint256 n2) public {
        vm.assume(n1 > 16 && n2 > 16); // grant nonces of the fixture
        bytes32 grantId = _record(_grant());
        bytes memory sig = _pauseSig(SUBJECT_KEY, grantId, true, 1, n1, T0 + 365 days);
        ledger.setPaused(grantId, true, 1, n1, T0 + 365 days, sig);
        require(ledger.nonceUsed(SUBJECT, n1), "n1 used");
        require(ledger.nonceUsed(SUBJECT, n2) == (n1 == n2), "n2 used iff equal");
        sig = _pauseSig(SUBJECT_KEY, grantId, false, 2, n2, T0 + 365 days);
        if (n1 == n2) {
            vm.expectRevert(abi.encodeWithSelector(IConsentLedger.ConsentLedgerNonceUsed.selector, SUBJECT, n2));
        }
        ledger.setPaused(grantId, false, 2, n2, T0 + 365 days, sig);
        require(ledger.grantState(grantId).paused == (n1 == n2), "resumed iff fresh nonce");
    }
}
