"""audit.rules on its own: each rule of SPEC §9.8 and the check orders, without a chain.

The same rules are compared with the contract outcome by outcome in test_rules_differential.py.
"""

from __future__ import annotations

import pytest

from audit import rules
from audit.rules import Sig

S, C, C2, ADMIN, AUD, AUD2 = "0xS", "0xC", "0xC2", "0xA", "0xU", "0xU2"
R1, R3, NEW = "0x01", "0x03", "0x0n"
W = rules.WILDCARD_ID
T0 = 1_000


def state() -> rules.State:
    st = rules.State(threshold=2, block=10, timestamp=T0)
    for account, role in ((S, rules.SUBJECT), (C, rules.CONSUMER), (C2, rules.CONSUMER), (ADMIN, rules.ADMIN)):
        rules.apply_member(st, account, role)
    rules.apply_member(st, AUD, rules.AUDITOR)
    rules.apply_member(st, AUD2, rules.AUDITOR)
    assert rules.register_resource(st, R1, 1) is None
    assert rules.register_resource(st, R3, 3) is None
    return st


def grant(st: rules.State, resources: tuple[str, ...] = (R1,), *, gid: str = "0xg", nonce: int = 1, **kw: int) -> str:
    terms = rules.GrantTerms(
        S, C, resources, kw.get("valid_from", 0), kw.get("valid_until", 10**9), kw.get("max_uses", 0)
    )
    st.block += 1
    assert rules.record_grant(st, gid, terms, nonce, T0 + 100) is None
    return gid


def release(st: rules.State, gid: str, resource: str = R1, request: str = "0xr", **kw: object) -> str | None:
    item = rules.ReleaseItem(gid, resource, request, int(kw.get("deadline", T0 + 100)), kw.get("sig", Sig.OK))  # type: ignore[arg-type]
    return rules.record_release(st, item)


def test_the_signature_comes_before_everything_then_the_deadline() -> None:
    st = state()
    assert release(st, "0xunknown", deadline=0, sig=Sig.MALLEABLE) == "ConsentLedgerMalleableSignature"
    assert release(st, "0xunknown", deadline=0, sig=Sig.INVALID) == "ConsentLedgerNotGrantee"
    assert release(st, "0xunknown", deadline=0) == "ConsentLedgerExpiredDeadline"
    assert release(st, "0xunknown", deadline=T0) == "ConsentLedgerUnknownGrant"  # at the deadline: in time


def test_a_release_is_recorded_once_per_request_and_counts_uses() -> None:
    st = state()
    gid = grant(st, max_uses=2)
    assert release(st, gid) is None
    assert release(st, gid) == "ConsentLedgerRequestUsed"
    assert release(st, gid, request="0xr2") is None
    assert release(st, gid, request="0xr3") == "ConsentLedgerGrantExhausted"
    assert st.grants[gid].uses == 2


def test_the_wildcard_is_fixed_when_the_grant_is_recorded() -> None:
    st = state()
    gid = grant(st, (W,))
    assert release(st, gid, R1) is None
    assert release(st, gid, W, request="0xw") == "ConsentLedgerResourceNotGranted"  # the wildcard id itself
    assert release(st, gid, R3, request="0x3") == "ConsentLedgerResourceNotGranted"  # sensitivity 3
    st.block += 1
    assert rules.register_resource(st, NEW, 1) is None
    assert release(st, gid, NEW, request="0xn") == "ConsentLedgerResourceNotGranted"  # registered later
    assert rules.update_resource(st, R3, 2) is None
    assert st.catalog[R3].lowered_at == st.block
    assert release(st, gid, R3, request="0x3") == "ConsentLedgerResourceNotGranted"  # lowered later
    later = grant(st, (W,), gid="0xg2", nonce=2)
    assert release(st, later, R3, request="0x3") is None  # a grant recorded after both: covered


def test_pauses_are_ordered_by_sequence_and_unchanged_ones_apply() -> None:
    st = state()
    gid = grant(st)
    assert rules.set_paused(st, gid, True, 2, 10, T0 + 1) is None
    assert rules.set_paused(st, gid, False, 1, 11, T0 + 1) == "ConsentLedgerStaleSequence"
    assert rules.set_paused(st, gid, True, 3, 11, T0 + 1) is None  # unchanged, still applied
    assert (st.grants[gid].paused, st.grants[gid].pause_sequence) == (True, 3)
    assert rules.set_paused(st, gid, False, 4, 11, T0 + 1) == "ConsentLedgerNonceUsed"  # one nonce space
    assert release(st, gid) == "ConsentLedgerGrantPaused"


def test_a_suspended_subject_may_pause_and_revoke_but_not_resume() -> None:
    st = state()
    gid = grant(st)
    assert rules.set_suspended(st, S, True, by=ADMIN) is None
    assert rules.set_paused(st, gid, True, 1, 10, T0 + 1) is None
    assert rules.set_paused(st, gid, False, 2, 11, T0 + 1) == "ConsentLedgerInactiveMember"
    assert rules.revoke(st, gid, 12, T0 + 1) is None
    assert rules.revoke(st, gid, 13, T0 + 1) == "ConsentLedgerGrantRevoked"


def test_a_grant_revoked_before_it_was_recorded_can_never_be_recorded() -> None:
    st = state()
    terms = rules.GrantTerms(S, C, (R1,), 0, 10**9, 0)
    assert rules.revoke(st, "0xqr", 5, T0 + 1, unrecorded_subject=S) is None
    assert rules.record_grant(st, "0xqr", terms, 6, T0 + 1) == "ConsentLedgerGrantRevoked"
    assert rules.revoke(st, "0xqr", 7, T0 + 1) == "ConsentLedgerGrantRevoked"
    assert release(st, "0xqr") == "ConsentLedgerGrantRevoked"


@pytest.fixture
def emergency() -> tuple[rules.State, rules.EmergencyTerms]:
    st = state()
    terms = rules.EmergencyTerms((R3,), (C,), T0, T0 + 3600, "r", T0 + 100)
    assert rules.propose_emergency(st, "0xe", terms, ADMIN) is None
    assert rules.approve_emergency(st, "0xe", terms, AUD) is None
    assert st.emergencies["0xe"].activated_at == T0
    return st, terms


def erelease(st: rules.State, consumer: str = C, subject: str = S, request: str = "0xq") -> str | None:
    return rules.record_emergency_release(st, rules.EmergencyRelease("0xe", consumer, subject, R3, request, T0 + 100))


def test_emergency_approvals_are_counted_now(emergency: tuple[rules.State, rules.EmergencyTerms]) -> None:
    st, terms = emergency
    assert rules.set_suspended(st, AUD, True, by=ADMIN) is None
    assert erelease(st) == "ConsentLedgerEmergencyNotApproved"
    assert rules.approve_emergency(st, "0xe", terms, AUD2) is None  # another auditor restores it
    assert erelease(st) is None


def test_an_approval_counts_only_in_the_role_it_was_given_in(
    emergency: tuple[rules.State, rules.EmergencyTerms],
) -> None:
    st, _ = emergency
    assert st.emergencies["0xe"].approved_as == {ADMIN: rules.ADMIN, AUD: rules.AUDITOR}
    rules.apply_member(st, AUD, rules.ADMIN)  # the auditor became an ADMIN: its AUDITOR approval lapses
    assert erelease(st) == "ConsentLedgerEmergencyNotApproved"
    rules.apply_member(st, AUD, rules.AUDITOR)
    assert erelease(st) is None


def test_emergency_releases_check_their_members(emergency: tuple[rules.State, rules.EmergencyTerms]) -> None:
    st, _ = emergency
    assert erelease(st, subject=C) == "ConsentLedgerInactiveMember"  # not a subject
    assert rules.set_suspended(st, S, True, by=ADMIN) is None
    assert erelease(st) is None  # a subject's suspension does not block an emergency
    assert rules.set_suspended(st, C, True, by=ADMIN) is None
    assert erelease(st, request="0xq2") == "ConsentLedgerInactiveMember"


def test_a_cancelled_emergency_stops(emergency: tuple[rules.State, rules.EmergencyTerms]) -> None:
    st, terms = emergency
    assert rules.cancel_emergency(st, "0xe", T0 + 1, AUD2) is None
    assert rules.cancel_emergency(st, "0xe", T0 + 1, AUD2) == "ConsentLedgerEmergencyCancelled"
    assert erelease(st) == "ConsentLedgerEmergencyCancelled"
    assert rules.approve_emergency(st, "0xe", terms, AUD2) == "ConsentLedgerEmergencyCancelled"


def test_the_activating_approval_needs_the_window_within_the_hour() -> None:
    st = state()
    terms = rules.EmergencyTerms((R3,), (C,), T0 + 3601, T0 + 7200, "r", T0 + 100)
    assert rules.propose_emergency(st, "0xe", terms, ADMIN) is None  # not yet approved: accepted
    assert rules.approve_emergency(st, "0xe", terms, AUD) == "ConsentLedgerInvalidWindow"
    assert st.emergencies["0xe"].approvers == [ADMIN]  # the refused approval left nothing
    st.timestamp += 1
    assert rules.approve_emergency(st, "0xe", terms, AUD) is None
