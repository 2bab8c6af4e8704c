"""audit.rules at its edges: every refusal by its exact name, each bound on both sides, and the
state each accepted operation leaves (written against the survivors of ``make mutation`` on
audit/rules.py; test_rules_replay.py compares whole sequences with the contract)."""

from __future__ import annotations

import pytest

from audit import rules
from audit.rules import ADMIN, AUDITOR, CONSUMER, PROVIDER, SUBJECT, Sig

S, C, ADM, AUD, AUD2 = "0xS", "0xC", "0xA", "0xU", "0xU2"
R1, R3 = "0x01", "0x03"
W = rules.WILDCARD_ID
T0 = 1_000


def state() -> rules.State:
    st = rules.State(threshold=2, block=10, timestamp=T0)
    for account, role in ((S, SUBJECT), (C, CONSUMER), (ADM, ADMIN), (AUD, AUDITOR), (AUD2, AUDITOR)):
        rules.apply_member(st, account, role)
    assert rules.register_resource(st, R1, 1) is None
    assert rules.register_resource(st, R3, 3) is None
    return st


def terms(resources: tuple[str, ...] = (R1,), **kw: int) -> rules.GrantTerms:
    return rules.GrantTerms(
        kw.get("subject", S), kw.get("grantee", C), resources, kw.get("vf", 0), kw.get("vu", 10**9), 0
    )  # type: ignore[arg-type]


def granted(st: rules.State, gid: str = "0xg", nonce: int = 1) -> str:
    assert rules.record_grant(st, gid, terms(), nonce, T0) is None
    return gid


# ---- members ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "key_length", "expected"),
    [
        (0, 0, "MemberRegistryInvalidRoles"),
        (32, 0, "MemberRegistryInvalidRoles"),
        (SUBJECT | 64, 0, "MemberRegistryInvalidRoles"),
        (ADMIN | AUDITOR, 0, "MemberRegistryConflictingRoles"),
        (rules.ALL_ROLES, 32, "MemberRegistryConflictingRoles"),
        (CONSUMER, 0, "MemberRegistryInvalidHpkeKey"),
        (CONSUMER, 33, "MemberRegistryInvalidHpkeKey"),
        (CONSUMER, 32, None),
        (CONSUMER | SUBJECT, 1216, None),
        (SUBJECT, 32, "MemberRegistryInvalidHpkeKey"),
        (SUBJECT, 0, None),
        (PROVIDER | SUBJECT, 0, None),
    ],
)
def test_roles_and_keys(roles: int, key_length: int, expected: str | None) -> None:
    st = state()
    assert rules.update_member(st, S, roles, key_length=key_length, by=ADM) == expected
    assert st.members[S].roles == (roles if expected is None else SUBJECT)


def test_update_member_refusals_in_order() -> None:
    st = state()
    assert rules.update_member(st, "0xnobody", SUBJECT, by=ADM) == "MemberRegistryUnknownMember"
    assert rules.update_member(st, S, AUDITOR, by=ADM) == "MemberRegistryAuditorApprovalRequired"
    assert rules.update_member(st, AUD, AUDITOR | SUBJECT, by=ADM) is None  # keeps AUDITOR: no approval
    assert st.members[AUD].roles == AUDITOR | SUBJECT
    assert rules.update_member(st, ADM, SUBJECT, by=ADM) == "MemberRegistrySelfLockout"
    assert rules.update_member(st, ADM, ADMIN | SUBJECT, by=ADM) is None  # keeps ADMIN
    assert rules.update_member(st, ADM, SUBJECT, by="0xother") is None  # another ADMIN may
    assert st.members[ADM].roles == SUBJECT


def test_a_wallet_never_holds_admin_or_auditor() -> None:
    st = state()
    rules.apply_member(st, "0xwallet", SUBJECT, wallet=True)
    assert rules.update_member(st, "0xwallet", ADMIN, by=ADM) == "MemberRegistryInvalidRoles"
    assert rules.update_member(st, "0xwallet", AUDITOR, by=ADM) == "MemberRegistryInvalidRoles"
    assert rules.update_member(st, "0xwallet", SUBJECT | PROVIDER, by=ADM) is None
    rules.apply_member(st, "0xwallet", SUBJECT)  # wallet=None keeps the flag
    assert st.members["0xwallet"].wallet is True
    rules.apply_member(st, "0xwallet", SUBJECT, wallet=False)
    assert st.members["0xwallet"].wallet is False


def test_suspension() -> None:
    st = state()
    assert rules.set_suspended(st, "0xnobody", True, by=ADM) == "MemberRegistryUnknownMember"
    assert rules.set_suspended(st, ADM, True, by=ADM) == "MemberRegistrySelfLockout"
    assert rules.set_suspended(st, S, False, by=ADM) == "MemberRegistrySuspensionUnchanged"
    assert rules.set_suspended(st, S, True, by=ADM) is None
    assert st.members[S].suspended and not st.active(S, SUBJECT) and st.holds(S, SUBJECT)
    assert rules.set_suspended(st, S, True, by=ADM) == "MemberRegistrySuspensionUnchanged"
    assert rules.set_suspended(st, S, False, by=ADM) is None
    assert st.active(S, SUBJECT)


# ---- catalog ------------------------------------------------------------------------------------


def test_registration() -> None:
    st = state()
    assert rules.register_resource(st, W, 1) == "DataCatalogReservedId"
    assert rules.register_resource(st, R1, 1) == "DataCatalogResourceExists"
    assert rules.register_resource(st, "0xa", 0) == "DataCatalogInvalidSensitivity"
    assert rules.register_resource(st, "0xa", 5) == "DataCatalogInvalidSensitivity"
    st.block = 42
    assert rules.register_resource(st, "0xa", 4) is None
    assert rules.register_resource(st, "0xb", 1) is None
    assert st.catalog["0xa"] == rules.Resource(sensitivity=4, registered_at=42)


def test_sensitivity_updates_and_when_a_resource_was_lowered() -> None:
    st = state()
    assert rules.update_resource(st, "0xnone", 1) == "DataCatalogUnknownResource"
    assert rules.update_resource(st, R1, 0) == "DataCatalogInvalidSensitivity"
    assert rules.update_resource(st, R1, 5) == "DataCatalogInvalidSensitivity"
    st.block = 20
    assert rules.update_resource(st, R1, 4) is None  # raised: not lowered
    assert st.catalog[R1] == rules.Resource(sensitivity=4, registered_at=10, lowered_at=0)
    st.block = 21
    assert rules.update_resource(st, R1, 3) is None  # 4 -> 3: still named-only
    assert st.catalog[R1].lowered_at == 0
    st.block = 22
    assert rules.update_resource(st, R1, 2) is None  # 3 -> 2: lowered now
    assert st.catalog[R1].lowered_at == 22
    st.block = 23
    assert rules.update_resource(st, R1, 1) is None  # 2 -> 1: not a lowering from 3+
    assert st.catalog[R1] == rules.Resource(sensitivity=1, registered_at=10, lowered_at=22)


# ---- grants -------------------------------------------------------------------------------------


def test_grant_refusals_in_order() -> None:
    st = state()
    assert rules.record_grant(st, "0xg", terms(), 1, T0 - 1) == "ConsentLedgerExpiredDeadline"
    assert rules.record_grant(st, "0xg", terms(), 1, T0, Sig.INVALID) == "ConsentLedgerInvalidSignature"
    assert rules.record_grant(st, "0xg", terms(), 1, T0, Sig.MALLEABLE) == "ConsentLedgerMalleableSignature"
    assert rules.record_grant(st, "0xg", terms(subject=C), 1, T0) == "ConsentLedgerInactiveMember"
    assert rules.record_grant(st, "0xg", terms(grantee=S), 1, T0) == "ConsentLedgerInactiveMember"
    assert rules.record_grant(st, "0xg", terms(vf=5, vu=5), 1, T0) == "ConsentLedgerInvalidWindow"
    assert rules.record_grant(st, "0xg", terms(()), 1, T0) == "ConsentLedgerInvalidResources"
    assert rules.record_grant(st, "0xg", terms(("0xunknown",)), 1, T0) == "ConsentLedgerInvalidResources"
    assert rules.record_grant(st, "0xg", terms((W,) * 33), 1, T0) == "ConsentLedgerInvalidResources"
    assert st.nonces == set() and st.grants == {}  # nothing refused left a trace
    st.block = 50
    assert rules.record_grant(st, "0xg", terms((W,) * 32, vf=5, vu=6), 1, T0) is None
    assert (S, 1) in st.nonces and st.grants["0xg"].recorded_at == 50
    assert rules.record_grant(st, "0xg", terms(), 2, T0) == "ConsentLedgerNonceUsed"  # stored already
    assert rules.record_grant(st, "0xg2", terms(), 1, T0) == "ConsentLedgerNonceUsed"
    st.members[S].suspended = True
    assert rules.record_grant(st, "0xg3", terms(), 3, T0) == "ConsentLedgerInactiveMember"


def test_revocation_refusals_in_order() -> None:
    st = state()
    gid = granted(st)
    assert rules.revoke(st, gid, 2, T0 - 1) == "ConsentLedgerExpiredDeadline"
    assert rules.revoke(st, "0xnone", 2, T0) == "ConsentLedgerUnknownGrant"
    assert rules.revoke(st, gid, 2, T0, Sig.INVALID) == "ConsentLedgerInvalidSignature"
    assert rules.revoke(st, gid, 1, T0) == "ConsentLedgerNonceUsed"
    rules.apply_member(st, S, CONSUMER)  # no longer a SUBJECT at all
    assert rules.revoke(st, gid, 2, T0) == "ConsentLedgerInactiveMember"
    rules.apply_member(st, S, SUBJECT)
    st.members[S].suspended = True  # suspended: a withdrawal is still allowed
    assert rules.revoke(st, gid, 2, T0) is None
    assert st.grants[gid].revoked and (S, 2) in st.nonces
    assert rules.revoke(st, gid, 3, T0) == "ConsentLedgerGrantRevoked"


def test_an_unrecorded_grant_revoked_is_stored_under_its_subject() -> None:
    st = state()
    rules.apply_member(st, "0xS2", CONSUMER)  # not a subject: an unrecorded grant needs no role
    assert rules.revoke(st, "0xqr", 1, T0, unrecorded_subject="0xS2") is None
    assert st.grants["0xqr"] == rules.Grant(subject="0xS2", terms=None, revoked=True)
    assert ("0xS2", 1) in st.nonces


def test_pause_refusals_in_order() -> None:
    st = state()
    gid = granted(st)
    assert rules.set_paused(st, gid, True, 1, 2, T0 - 1) == "ConsentLedgerExpiredDeadline"
    assert rules.set_paused(st, "0xnone", True, 1, 2, T0) == "ConsentLedgerUnknownGrant"
    assert rules.set_paused(st, gid, True, 1, 2, T0, Sig.INVALID) == "ConsentLedgerInvalidSignature"
    assert rules.set_paused(st, gid, True, 1, 1, T0) == "ConsentLedgerNonceUsed"
    assert rules.set_paused(st, gid, True, 0, 2, T0) == "ConsentLedgerStaleSequence"
    rules.apply_member(st, S, CONSUMER)
    assert rules.set_paused(st, gid, True, 1, 2, T0) == "ConsentLedgerInactiveMember"
    rules.apply_member(st, S, SUBJECT)
    assert rules.set_paused(st, gid, True, 1, 2, T0) is None
    assert (st.grants[gid].paused, st.grants[gid].pause_sequence) == (True, 1) and (S, 2) in st.nonces
    assert rules.set_paused(st, gid, False, 1, 3, T0) == "ConsentLedgerStaleSequence"  # equal: stale
    st.members[S].suspended = True
    assert rules.set_paused(st, gid, False, 2, 3, T0) == "ConsentLedgerInactiveMember"  # resume: active only
    st.members[S].suspended = False
    assert rules.set_paused(st, gid, False, 2, 3, T0) is None
    assert rules.revoke(st, gid, 4, T0) is None
    assert rules.set_paused(st, gid, True, 3, 5, T0) == "ConsentLedgerGrantRevoked"


# ---- emergencies --------------------------------------------------------------------------------


def eterms(**kw: object) -> rules.EmergencyTerms:
    return rules.EmergencyTerms(
        kw.get("resources", (R3,)),  # type: ignore[arg-type]
        kw.get("consumers", (C,)),  # type: ignore[arg-type]
        int(kw.get("vf", T0)),  # type: ignore[call-overload]
        int(kw.get("vu", T0 + 3600)),  # type: ignore[call-overload]
        "r",
        int(kw.get("deadline", T0 + 100)),  # type: ignore[call-overload]
    )


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"vf": T0 + 10, "vu": T0 + 10}, "ConsentLedgerInvalidWindow"),
        ({"vf": T0 + 10, "vu": T0 + 9}, "ConsentLedgerInvalidWindow"),
        ({"vu": T0 + rules.MAX_EMERGENCY_WINDOW + 1}, "ConsentLedgerInvalidWindow"),
        ({"vu": T0 + rules.MAX_EMERGENCY_WINDOW}, None),
        ({"resources": ()}, "ConsentLedgerInvalidResources"),
        ({"resources": ("0xunknown",)}, "ConsentLedgerInvalidResources"),
        ({"resources": (R3,) * 32}, None),
        ({"resources": (R3,) * 33}, "ConsentLedgerInvalidResources"),
        ({"consumers": ()}, "ConsentLedgerInvalidResources"),
        ({"consumers": (C,) * 32}, None),
        ({"consumers": (C,) * 33}, "ConsentLedgerInvalidResources"),
        ({"consumers": (C, S)}, "ConsentLedgerInactiveMember"),
    ],
)
def test_an_emergency_scope(kw: dict[str, object], expected: str | None) -> None:
    st = state()
    assert rules.propose_emergency(st, "0xe", eterms(**kw), ADM) == expected
    assert ("0xe" in st.emergencies) == (expected is None)


def test_who_may_propose_approve_and_cancel() -> None:
    st = state()
    assert rules.propose_emergency(st, "0xe", eterms(deadline=T0 - 1), ADM) == "ConsentLedgerExpiredDeadline"
    assert rules.propose_emergency(st, "0xe", eterms(), ADM, Sig.INVALID) == "ConsentLedgerInvalidSignature"
    assert rules.propose_emergency(st, "0xe", eterms(), C) == "ConsentLedgerNotApprover"
    st.members[ADM].suspended = True
    assert rules.propose_emergency(st, "0xe", eterms(), ADM) == "ConsentLedgerNotApprover"
    assert rules.propose_emergency(st, "0xe", eterms(), AUD) is None  # an auditor may propose
    assert st.emergencies["0xe"].approved_as == {AUD: AUDITOR}
    assert rules.propose_emergency(st, "0xe", eterms(), AUD2) == "ConsentLedgerEmergencyExists"
    assert rules.approve_emergency(st, "0xnone", eterms(), AUD2) == "ConsentLedgerUnknownEmergency"
    assert rules.approve_emergency(st, "0xe", eterms(vu=T0 + 7), AUD2) == "ConsentLedgerUnknownEmergency"
    assert rules.approve_emergency(st, "0xe", eterms(), AUD) == "ConsentLedgerAlreadyApproved"
    assert rules.approve_emergency(st, "0xe", eterms(), AUD2) is None
    assert st.emergencies["0xe"].activated_at == 0  # two auditors: no ADMIN among them
    st.members[ADM].suspended = False
    st.timestamp = T0 + 5
    assert rules.approve_emergency(st, "0xe", eterms(), ADM) is None
    assert st.emergencies["0xe"].activated_at == T0 + 5
    assert rules.cancel_emergency(st, "0xnone", T0 + 5, ADM) == "ConsentLedgerUnknownEmergency"
    assert rules.cancel_emergency(st, "0xe", T0 + 4, ADM) == "ConsentLedgerExpiredDeadline"
    assert rules.cancel_emergency(st, "0xe", T0 + 5, C) == "ConsentLedgerNotApprover"
    assert rules.cancel_emergency(st, "0xe", T0 + 5, ADM, Sig.MALLEABLE) == "ConsentLedgerMalleableSignature"
    assert rules.cancel_emergency(st, "0xe", T0 + 5, ADM) is None
    assert st.emergencies["0xe"].cancelled
    assert rules.approve_emergency(st, "0xe", eterms(), ADM) == "ConsentLedgerEmergencyCancelled"


def test_at_most_sixteen_approvals() -> None:
    st = state()
    approvers = [f"0xadmin{i}" for i in range(17)]
    for a in approvers:
        rules.apply_member(st, a, ADMIN)
    assert rules.propose_emergency(st, "0xe", eterms(), approvers[0]) is None
    for a in approvers[1:16]:
        assert rules.approve_emergency(st, "0xe", eterms(), a) is None
    assert len(st.emergencies["0xe"].approvers) == 16
    assert rules.approve_emergency(st, "0xe", eterms(), approvers[16]) == "ConsentLedgerTooManyApprovals"
    assert st.emergencies["0xe"].activated_at == 0  # sixteen ADMINs and no AUDITOR


def test_approved_now_needs_an_admin_an_auditor_and_the_threshold() -> None:
    st = state()
    st.threshold = 3
    em = rules.Emergency(terms=eterms(), approvers=[ADM, AUD], approved_as={ADM: ADMIN, AUD: AUDITOR})
    assert not rules.approved_now(st, em)  # two of three
    em.approvers.append(AUD2)
    em.approved_as[AUD2] = AUDITOR
    assert rules.approved_now(st, em)
    st.members[AUD2].suspended = True  # counted only while active
    assert not rules.approved_now(st, em)
    st.threshold = 2
    assert rules.approved_now(st, em)
    two_auditors = rules.Emergency(eterms(), [AUD, AUD2], {AUD: AUDITOR, AUD2: AUDITOR})
    st.members[AUD2].suspended = False
    assert not rules.approved_now(st, two_auditors)
    rules.apply_member(st, "0xA2", ADMIN)
    two_admins = rules.Emergency(eterms(), [ADM, "0xA2"], {ADM: ADMIN, "0xA2": ADMIN})
    assert not rules.approved_now(st, two_admins)


def test_an_approval_that_would_activate_too_early_a_window_is_refused() -> None:
    st = state()
    late = eterms(vf=T0 + rules.MAX_EMERGENCY_DELAY + 1, vu=T0 + rules.MAX_EMERGENCY_DELAY + 100)
    assert rules.propose_emergency(st, "0xe", late, ADM) is None
    assert rules.approve_emergency(st, "0xe", late, AUD) == "ConsentLedgerInvalidWindow"
    st.timestamp += 1  # now exactly an hour ahead: allowed
    assert rules.approve_emergency(st, "0xe", late, AUD) is None
    assert st.emergencies["0xe"].activated_at == st.timestamp


def emergency_release(st: rules.State, **kw: object) -> str | None:
    item = rules.EmergencyRelease(
        "0xe",
        str(kw.get("consumer", C)),
        str(kw.get("subject", S)),
        str(kw.get("resource", R3)),
        str(kw.get("request", "0xq")),
        int(kw.get("deadline", T0 + 100)),  # type: ignore[call-overload]
        kw.get("sig", Sig.OK),  # type: ignore[arg-type]
        kw.get("terms"),  # type: ignore[arg-type]
    )
    return rules.record_emergency_release(st, item)


def test_emergency_release_refusals_in_order() -> None:
    st = state()
    assert emergency_release(st) == "ConsentLedgerUnknownEmergency"
    assert rules.propose_emergency(st, "0xe", eterms(vf=T0 + 10, vu=T0 + 20), ADM) is None
    assert emergency_release(st, sig=Sig.INVALID, deadline=0) == "ConsentLedgerInvalidSignature"
    assert emergency_release(st, deadline=T0 - 1) == "ConsentLedgerExpiredDeadline"
    assert emergency_release(st) == "ConsentLedgerEmergencyNotApproved"
    assert rules.approve_emergency(st, "0xe", eterms(vf=T0 + 10, vu=T0 + 20), AUD) is None
    assert emergency_release(st, terms=eterms()) == "ConsentLedgerUnknownEmergency"  # other terms
    assert emergency_release(st) == "ConsentLedgerEmergencyOutsideWindow"  # before valid_from
    st.timestamp = T0 + 10  # at valid_from: inside
    assert emergency_release(st, resource=R1) == "ConsentLedgerEmergencyOutOfScope"
    rules.apply_member(st, "0xC2", CONSUMER)
    assert emergency_release(st, consumer="0xC2") == "ConsentLedgerEmergencyOutOfScope"
    assert emergency_release(st, subject=C) == "ConsentLedgerInactiveMember"
    assert emergency_release(st, terms=eterms(vf=T0 + 10, vu=T0 + 20)) is None
    assert ("0xC", "0xq") in st.requests
    assert emergency_release(st) == "ConsentLedgerRequestUsed"
    st.members[C].suspended = True
    assert emergency_release(st, request="0xq2") == "ConsentLedgerInactiveMember"
    st.members[C].suspended = False
    st.timestamp = T0 + 20  # at valid_until: outside
    assert emergency_release(st, request="0xq2") == "ConsentLedgerEmergencyOutsideWindow"
    st.timestamp = T0 + 19
    assert emergency_release(st, request="0xq2") is None


def test_grant_release_checks_in_order() -> None:
    st = state()
    assert rules.record_grant(st, "0xg", rules.GrantTerms(S, C, (R1,), T0 + 5, T0 + 10, 2), 1, T0) is None

    def rel(request: str = "0xr", **kw: object) -> str | None:
        item = rules.ReleaseItem("0xg", str(kw.get("resource", R1)), request, T0 + 100, kw.get("sig", Sig.OK))  # type: ignore[arg-type]
        return rules.record_release(st, item)

    assert rel() == "ConsentLedgerGrantNotYetValid"
    st.timestamp = T0 + 5
    assert rel(resource=R3) == "ConsentLedgerResourceNotGranted"
    st.members[C].suspended = True
    assert rel() == "ConsentLedgerInactiveMember"
    st.members[C].suspended = False
    assert rel() is None
    assert st.grants["0xg"].uses == 1 and (C, "0xr") in st.requests
    assert rel() == "ConsentLedgerRequestUsed"
    st.grants["0xg"].paused = True
    assert rel("0xr2") == "ConsentLedgerGrantPaused"
    st.grants["0xg"].paused = False
    assert rel("0xr2") is None
    assert rel("0xr3") == "ConsentLedgerGrantExhausted"
    st.timestamp = T0 + 10
    assert rel("0xr3") == "ConsentLedgerGrantExpired"  # at valid_until: expired (checked first)


# ---- the survivors of the first mutation run ----------------------------------------------------


def test_a_member_with_several_roles_is_active_in_each() -> None:
    st = state()
    rules.apply_member(st, S, SUBJECT | CONSUMER)
    assert st.active(S, SUBJECT) and st.active(S, CONSUMER) and not st.active(S, ADMIN)
    assert rules.record_grant(st, "0xg", terms(grantee=S), 1, T0) is None  # S grants to itself as consumer


def test_a_revocation_keeps_the_recorded_grant() -> None:
    st = state()
    gid = granted(st)
    assert rules.record_release(st, rules.ReleaseItem(gid, R1, "0xr", T0 + 100)) is None
    assert rules.revoke(st, gid, 2, T0) is None
    stored = st.grants[gid]
    assert (stored.terms, stored.uses, stored.revoked, stored.recorded_at) == (terms(), 1, True, 10)


def test_the_use_counter_tops_out_even_without_max_uses() -> None:
    st = state()
    gid = granted(st)
    st.grants[gid].uses = rules.MAX_USES - 1
    assert rules.record_release(st, rules.ReleaseItem(gid, R1, "0xr", T0 + 100)) is None
    assert rules.record_release(st, rules.ReleaseItem(gid, R1, "0xr2", T0 + 100)) == "ConsentLedgerGrantExhausted"


def test_a_resource_registered_or_lowered_in_the_grants_block_is_covered_by_its_wildcard() -> None:
    st = state()
    st.block = 30
    assert rules.register_resource(st, "0xsame", 1) is None
    assert rules.update_resource(st, R3, 2) is None  # lowered in block 30
    assert rules.record_grant(st, "0xg", terms((W,)), 1, T0) is None  # recorded in block 30 too
    assert rules.record_release(st, rules.ReleaseItem("0xg", "0xsame", "0xr", T0 + 100)) is None
    assert rules.record_release(st, rules.ReleaseItem("0xg", R3, "0xr2", T0 + 100)) is None


def test_apply_resource_registers_as_the_chain_recorded() -> None:
    st = state()
    st.block = 77
    rules.apply_resource(st, "0xnew", 2)
    assert st.catalog["0xnew"] == rules.Resource(sensitivity=2, registered_at=77)


def test_an_admin_approval_that_would_activate_too_early_a_window_is_refused() -> None:
    st = state()
    late = eterms(vf=T0 + rules.MAX_EMERGENCY_DELAY + 1, vu=T0 + rules.MAX_EMERGENCY_DELAY + 100)
    assert rules.propose_emergency(st, "0xe", late, AUD) is None  # the auditor first, then the ADMIN
    assert rules.approve_emergency(st, "0xe", late, ADM) == "ConsentLedgerInvalidWindow"


def test_an_emergency_never_activated_is_not_approved_even_when_its_approvers_are_active_again() -> None:
    st = state()
    assert rules.propose_emergency(st, "0xe", eterms(), ADM) is None
    st.members[ADM].suspended = True  # the proposer's approval stops counting...
    assert rules.approve_emergency(st, "0xe", eterms(), AUD) is None  # ...so this one does not activate it
    assert st.emergencies["0xe"].activated_at == 0
    st.members[ADM].suspended = False  # approved now, but never activated
    assert rules.approved_now(st, st.emergencies["0xe"])
    assert emergency_release(st) == "ConsentLedgerEmergencyNotApproved"
