"""audit.snapshot: each event's transition of the rules' state, including the cases a contract run
rarely shows (an event about an account or grant the state does not know yet, a v1 pause event)."""

from __future__ import annotations

from audit import rules, snapshot

ACCOUNT = "0x1111111111111111111111111111111111111111"
SUBJECT = "0x2222222222222222222222222222222222222222"
CONSUMER = "0x3333333333333333333333333333333333333333"
GRANT = "0x" + "01" * 32
REQUEST = "0x" + "0f" * 32


def apply(state: rules.State, name: str, block: int = 7, timestamp: int = 1_000, **args: object) -> bool:
    return snapshot.apply_event(state, name, args, block=block, timestamp=timestamp)


def granted(state: rules.State) -> rules.Grant:
    assert apply(
        state,
        "GrantRecorded",
        grantId=GRANT,
        subject=SUBJECT,
        grantee=CONSUMER,
        resources=["0x" + "aa" * 32],
        validFrom=0,
        validUntil=10,
        maxUses=0,
    )
    return state.grants[GRANT]


def test_an_event_without_a_transition_changes_nothing() -> None:
    state = rules.State()
    assert not apply(state, "CheckpointAnchored", block=9, timestamp=99, treeSize=1, rootHash="0x")
    assert state == rules.State()


def test_each_transition_runs_at_its_block_and_time() -> None:
    state = rules.State()
    assert apply(state, "ResourceRegistered", block=3, timestamp=33, resource="0xab", sensitivity=2)
    assert (state.block, state.timestamp) == (3, 33)
    assert state.catalog["0xab"] == rules.Resource(sensitivity=2, registered_at=3)
    assert granted(state).recorded_at == 7


def test_a_suspension_keeps_the_roles_and_can_be_lifted() -> None:
    state = rules.State()
    apply(state, "MemberOnboarded", account=ACCOUNT, roles=20)
    apply(state, "MemberSuspensionChanged", account=ACCOUNT, suspended=True)
    assert state.members[ACCOUNT] == rules.Member(roles=20, suspended=True)
    apply(state, "MemberSuspensionChanged", account=ACCOUNT, suspended=False)
    assert state.members[ACCOUNT] == rules.Member(roles=20, suspended=False)


def test_a_suspension_of_an_unknown_account_gives_it_no_role() -> None:
    state = rules.State()
    apply(state, "MemberSuspensionChanged", account=ACCOUNT, suspended=1)
    assert state.members[ACCOUNT] == rules.Member(roles=0, suspended=True)
    assert not state.holds(ACCOUNT, rules.SUBJECT) and not state.holds(ACCOUNT, rules.CONSUMER)


def test_a_revocation_before_the_grant_is_recorded_keeps_its_subject() -> None:
    state = rules.State()
    apply(state, "GrantRevoked", grantId=GRANT, subject=SUBJECT)
    assert state.grants[GRANT] == rules.Grant(subject=SUBJECT, terms=None, revoked=True)


def test_a_revocation_of_a_recorded_grant() -> None:
    state = rules.State()
    grant = granted(state)
    apply(state, "GrantRevoked", grantId=GRANT, subject=ACCOUNT)
    assert grant.revoked and grant.subject == SUBJECT


def test_a_pause_records_its_sequence() -> None:
    state = rules.State()
    grant = granted(state)
    apply(state, "GrantPauseChanged", grantId=GRANT, paused=True, sequence="5")
    assert (grant.paused, grant.pause_sequence) == (True, 5)
    apply(state, "GrantPauseChanged", grantId=GRANT, paused=0, sequence=6)
    assert (grant.paused, grant.pause_sequence) == (False, 6)


def test_a_v1_pause_event_has_no_sequence() -> None:
    state = rules.State()
    grant = granted(state)
    grant.pause_sequence = 3
    apply(state, "GrantPauseChanged", grantId=GRANT, paused=True)
    assert (grant.paused, grant.pause_sequence) == (True, 0)


def test_a_pause_of_an_unknown_grant_is_ignored() -> None:
    state = rules.State()
    assert apply(state, "GrantPauseChanged", grantId=GRANT, paused=True, sequence=1)
    assert state.grants == {}


def test_releases_use_their_request_ids() -> None:
    state = rules.State()
    grant = granted(state)
    apply(state, "ReleaseRecorded", grantId=GRANT, grantee=CONSUMER, resource="0xaa", requestId=REQUEST)
    apply(state, "EmergencyReleaseRecorded", emergencyId="0x0e", consumer=ACCOUNT, subject=SUBJECT, requestId="0x01")
    apply(state, "ReleaseRecorded", grantId="0x" + "99" * 32, grantee=SUBJECT, resource="0xaa", requestId="0x02")
    assert state.requests == {(CONSUMER, REQUEST), (ACCOUNT, "0x01"), (SUBJECT, "0x02")}
    assert grant.uses == 1


def test_a_release_naming_another_grantee_uses_the_grantees_request_id() -> None:
    """The contract records a release's request id under its grant's grantee, whoever the event names."""
    state = rules.State()
    granted(state)
    apply(state, "ReleaseRecorded", grantId=GRANT, grantee=ACCOUNT, resource="0xaa", requestId=REQUEST)
    assert state.requests == {(CONSUMER, REQUEST)}
