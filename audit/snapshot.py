"""The ledger's state rebuilt from its events: each event's transition applied to a
:class:`audit.rules.State`, in chain order.

One mapping from events to the rules' transitions, used by the verifier's replay
(:mod:`audit.verify`) and by the API's reads of grants and emergencies (``api/services/ledger_view``).
Releases are applied here only as state (uses and used request ids); checking them is the verifier's.
``args`` are the JSON-form arguments the indexer stores (addresses EIP-55, ids ``0x`` hex).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import rules

Args = Mapping[str, Any]


def _member(state: rules.State, a: Args) -> None:
    rules.apply_member(state, a["account"], int(a["roles"]))


def _suspension(state: rules.State, a: Args) -> None:
    member = state.members.setdefault(a["account"], rules.Member(roles=0))
    member.suspended = bool(a["suspended"])


def _resource(state: rules.State, a: Args) -> None:
    rules.apply_resource(state, a["resource"], int(a["sensitivity"]))


def grant_terms(a: Args) -> rules.GrantTerms:
    """The rules' terms of a ``GrantRecorded`` event."""
    return rules.GrantTerms(
        subject=a["subject"],
        grantee=a["grantee"],
        resources=tuple(a["resources"]),
        valid_from=int(a["validFrom"]),
        valid_until=int(a["validUntil"]),
        max_uses=int(a["maxUses"]),
    )


def _grant(state: rules.State, a: Args) -> None:
    rules.apply_grant(state, a["grantId"], grant_terms(a))


def _revoke(state: rules.State, a: Args) -> None:
    rules.apply_revoke(state, a["grantId"], a["subject"])


def _pause(state: rules.State, a: Args) -> None:
    if a["grantId"] in state.grants:
        rules.apply_pause(state, a["grantId"], bool(a["paused"]), int(a.get("sequence", 0)))


def _release(state: rules.State, a: Args) -> None:
    grant = state.grants.get(a["grantId"])
    terms = grant.terms if grant is not None else None
    rules.apply_release(state, grant, terms.grantee if terms else a["grantee"], a["requestId"])


def _emergency_release(state: rules.State, a: Args) -> None:
    state.requests.add((a["consumer"], a["requestId"]))


def _proposal(state: rules.State, a: Args) -> None:
    terms = rules.EmergencyTerms(
        resources=tuple(a["resources"]),
        consumers=tuple(a["consumers"]),
        valid_from=int(a["validFrom"]),
        valid_until=int(a["validUntil"]),
    )
    state.emergencies[a["emergencyId"]] = rules.Emergency(terms=terms)


def _approval(state: rules.State, a: Args) -> None:
    emergency = state.emergencies.get(a["emergencyId"])
    if emergency is not None:
        rules.apply_approval(state, emergency, a["approver"])


def _cancel(state: rules.State, a: Args) -> None:
    emergency = state.emergencies.get(a["emergencyId"])
    if emergency is not None:
        emergency.cancelled = True


#: Event name -> its transition of the state.
TRANSITIONS: dict[str, Callable[[rules.State, Args], None]] = {
    "MemberOnboarded": _member,
    "MemberUpdated": _member,
    "MemberSuspensionChanged": _suspension,
    "ResourceRegistered": _resource,
    "ResourceUpdated": _resource,
    "GrantRecorded": _grant,
    "GrantRevoked": _revoke,
    "GrantPauseChanged": _pause,
    "ReleaseRecorded": _release,
    "EmergencyReleaseRecorded": _emergency_release,
    "EmergencyProposed": _proposal,
    "EmergencyApproved": _approval,
    "EmergencyCancelled": _cancel,
}

MEMBER_EVENTS = ("MemberOnboarded", "MemberUpdated", "MemberSuspensionChanged")
EMERGENCY_EVENTS = ("EmergencyProposed", "EmergencyApproved", "EmergencyCancelled")


def apply_event(state: rules.State, name: str, args: Args, *, block: int, timestamp: int) -> bool:
    """Apply one event at its block and time; False for an event that changes no rules state."""
    transition = TRANSITIONS.get(name)
    if transition is None:
        return False
    state.block, state.timestamp = block, timestamp
    transition(state, args)
    return True
