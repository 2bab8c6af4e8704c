"""The consent ledger's rules (SPEC §3, §9.8) as pure functions over a snapshot of its state.

One model of ``ConsentLedger.sol``, used by the verifier (:mod:`audit.verify`, check 1), by the
Hypothesis state machine (``tests/chain_client/test_ledger_model.py``) and by the differential test
that runs random operation sequences against the contract and against this module
(``tests/audit/test_rules_differential.py``).

Every operation ``op(state, ...)`` returns the outcome the contract gives — ``None`` when it is
recorded, or the name of the custom error it reverts with (``"ConsentLedgerGrantPaused"``) — and
changes ``state`` only when the outcome is ``None`` (a revert undoes everything). Checks run in the
contract's order, so the error named is the one the contract raises. The ``apply_*`` functions are
the bare transitions, for a replay of events the chain already accepted.

Conventions: ids (grant, resource, request, emergency) are ``0x`` lower-case hex strings, addresses
are compared as given (the verifier and the tests use EIP-55 throughout). Signatures are not
computed here: the caller says what checking one gave (:class:`Sig`), and for an emergency release
whom it recovered to. ``state.block`` and ``state.timestamp`` are the block an operation runs in.
No chain access, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from chain_client.ids import WILDCARD

ADMIN, PROVIDER, CONSUMER, AUDITOR, SUBJECT = 1, 2, 4, 8, 16
ALL_ROLES = 31
#: Lengths of an X25519 and of an MLKEM768-X25519 public key (a CONSUMER must have one).
HPKE_KEY_LENGTHS = (32, 1216)
WILDCARD_ID = "0x" + WILDCARD.hex()
#: Catalog sensitivity from which a resource must be named in a grant (the wildcard does not cover it).
NAMED_ONLY_SENSITIVITY = 3
MAX_LIST = 32
MAX_APPROVERS = 16
MAX_EMERGENCY_WINDOW = 72 * 3600
MAX_EMERGENCY_DELAY = 3600
MAX_USES = 2**32 - 1

Outcome = str | None


class Sig(Enum):
    """What checking a signature gave: the signer's, a malleable (upper-half ``s``) one, or not the signer's."""

    OK = 0
    MALLEABLE = 1
    INVALID = 2


@dataclass(slots=True)
class Member:
    roles: int
    suspended: bool = False
    wallet: bool = False


@dataclass(slots=True)
class Resource:
    sensitivity: int
    registered_at: int  # block numbers
    lowered_at: int = 0


@dataclass(frozen=True, slots=True)
class GrantTerms:
    subject: str
    grantee: str
    resources: tuple[str, ...]
    valid_from: int
    valid_until: int
    max_uses: int


@dataclass(slots=True)
class Grant:
    """A grant's stored state; ``terms`` is None for one revoked before it was recorded."""

    subject: str
    terms: GrantTerms | None
    uses: int = 0
    revoked: bool = False
    paused: bool = False
    recorded_at: int = 0
    pause_sequence: int = 0


@dataclass(frozen=True, slots=True)
class EmergencyTerms:
    resources: tuple[str, ...]
    consumers: tuple[str, ...]
    valid_from: int
    valid_until: int
    reason: str = ""
    deadline: int = 0


@dataclass(slots=True)
class Emergency:
    """An emergency's state; ``approved_as`` is the role (ADMIN or AUDITOR) each approver approved in."""

    terms: EmergencyTerms
    approvers: list[str] = field(default_factory=list)
    approved_as: dict[str, int] = field(default_factory=dict)
    activated_at: int = 0
    cancelled: bool = False


@dataclass(slots=True)
class State:
    threshold: int = 2
    members: dict[str, Member] = field(default_factory=dict)
    catalog: dict[str, Resource] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    emergencies: dict[str, Emergency] = field(default_factory=dict)
    nonces: set[tuple[str, int]] = field(default_factory=set)
    requests: set[tuple[str, str]] = field(default_factory=set)
    block: int = 0
    timestamp: int = 0

    def active(self, account: str, role: int) -> bool:
        """``isActive``: a member, not suspended, holding ``role``."""
        m = self.members.get(account)
        return m is not None and not m.suspended and m.roles & role == role

    def holds(self, account: str, role: int) -> bool:
        """``_requireRole``: holds ``role``, suspended or not (withdrawals, an emergency's subject)."""
        m = self.members.get(account)
        return m is not None and m.roles & role != 0


@dataclass(frozen=True, slots=True)
class ReleaseItem:
    """One grant release request (``recordRelease`` or an item of ``recordReleases``)."""

    grant_id: str
    resource: str
    request_id: str
    deadline: int
    sig: Sig = Sig.OK


@dataclass(frozen=True, slots=True)
class EmergencyRelease:
    """One emergency release; ``consumer`` is whom the signature recovered to.

    ``terms`` are the emergency's terms in the call (None: the stored ones, as a replay of events
    knows them); terms that differ from the stored ones are an unknown emergency.
    """

    emergency_id: str
    consumer: str
    subject: str
    resource: str
    request_id: str
    deadline: int
    sig: Sig = Sig.OK
    terms: EmergencyTerms | None = None


# ---- shared checks ------------------------------------------------------------------------------


def _signed(sig: Sig, invalid: str) -> Outcome:
    if sig is Sig.MALLEABLE:
        return "ConsentLedgerMalleableSignature"
    return invalid if sig is Sig.INVALID else None


def _expired(state: State, deadline: int) -> bool:
    return state.timestamp > deadline


# ---- grants -------------------------------------------------------------------------------------


def record_grant(
    state: State, grant_id: str, terms: GrantTerms, nonce: int, deadline: int, sig: Sig = Sig.OK
) -> Outcome:
    """``recordGrant``: deadline, signature, already stored, nonce, parties, window, resources."""
    if _expired(state, deadline):
        return "ConsentLedgerExpiredDeadline"
    error = _signed(sig, "ConsentLedgerInvalidSignature")
    if error:
        return error
    stored = state.grants.get(grant_id)
    if stored is not None:
        return "ConsentLedgerGrantRevoked" if stored.revoked else "ConsentLedgerNonceUsed"
    if (terms.subject, nonce) in state.nonces:
        return "ConsentLedgerNonceUsed"
    error = _grant_terms_error(state, terms)
    if error:
        return error
    state.nonces.add((terms.subject, nonce))
    apply_grant(state, grant_id, terms)
    return None


def _grant_terms_error(state: State, terms: GrantTerms) -> Outcome:
    if not state.active(terms.subject, SUBJECT) or not state.active(terms.grantee, CONSUMER):
        return "ConsentLedgerInactiveMember"
    if terms.valid_from >= terms.valid_until:
        return "ConsentLedgerInvalidWindow"
    if not 0 < len(terms.resources) <= MAX_LIST:
        return "ConsentLedgerInvalidResources"
    if any(r != WILDCARD_ID and r not in state.catalog for r in terms.resources):
        return "ConsentLedgerInvalidResources"
    return None


def apply_grant(state: State, grant_id: str, terms: GrantTerms) -> None:
    state.grants[grant_id] = Grant(subject=terms.subject, terms=terms, recorded_at=state.block)


def revoke(
    state: State,
    grant_id: str,
    nonce: int,
    deadline: int,
    sig: Sig = Sig.OK,
    *,
    unrecorded_subject: str | None = None,
) -> Outcome:
    """``revoke`` or, with ``unrecorded_subject`` (the signed grant's subject), ``revokeUnrecorded``.

    A recorded grant is revoked while its subject holds the SUBJECT role (suspension does not block
    a withdrawal); an unrecorded one is stored as revoked, so that it can never be recorded.
    """
    if _expired(state, deadline):
        return "ConsentLedgerExpiredDeadline"
    stored = state.grants.get(grant_id)
    if unrecorded_subject is None and stored is None:
        return "ConsentLedgerUnknownGrant"
    subject = unrecorded_subject if unrecorded_subject is not None else stored.subject  # type: ignore[union-attr]
    error = _signed(sig, "ConsentLedgerInvalidSignature")
    if error:
        return error
    if (subject, nonce) in state.nonces:
        return "ConsentLedgerNonceUsed"
    if stored is not None and stored.revoked:
        return "ConsentLedgerGrantRevoked"
    if stored is not None and not state.holds(subject, SUBJECT):
        return "ConsentLedgerInactiveMember"
    state.nonces.add((subject, nonce))
    apply_revoke(state, grant_id, subject)
    return None


def apply_revoke(state: State, grant_id: str, subject: str) -> None:
    stored = state.grants.get(grant_id)
    if stored is None:
        state.grants[grant_id] = Grant(subject=subject, terms=None, revoked=True)
    else:
        stored.revoked = True


def set_paused(
    state: State, grant_id: str, paused: bool, sequence: int, nonce: int, deadline: int, sig: Sig = Sig.OK
) -> Outcome:
    """``setPaused``: deadline, known grant, signature, nonce, not revoked, a later sequence, then a
    resume needs an active SUBJECT (a pause only the role). Applies even when unchanged."""
    if _expired(state, deadline):
        return "ConsentLedgerExpiredDeadline"
    stored = state.grants.get(grant_id)
    if stored is None:
        return "ConsentLedgerUnknownGrant"
    error = _signed(sig, "ConsentLedgerInvalidSignature")
    if error:
        return error
    if (stored.subject, nonce) in state.nonces:
        return "ConsentLedgerNonceUsed"
    if stored.revoked:
        return "ConsentLedgerGrantRevoked"
    if sequence <= stored.pause_sequence:
        return "ConsentLedgerStaleSequence"
    allowed = state.holds(stored.subject, SUBJECT) if paused else state.active(stored.subject, SUBJECT)
    if not allowed:
        return "ConsentLedgerInactiveMember"
    state.nonces.add((stored.subject, nonce))
    apply_pause(state, grant_id, paused, sequence)
    return None


def apply_pause(state: State, grant_id: str, paused: bool, sequence: int) -> None:
    stored = state.grants[grant_id]
    stored.paused = paused
    stored.pause_sequence = sequence


# ---- grant releases -----------------------------------------------------------------------------


def covers(state: State, grant: Grant, resource: str) -> bool:
    """A named resource as listed; the wildcard: a catalog resource of sensitivity 1-2 registered,
    and last lowered from 3+ to 1-2, at or before the grant's block. Never the wildcard id itself."""
    if resource == WILDCARD_ID or grant.terms is None:
        return False
    resources = grant.terms.resources
    if resource in resources:
        return True
    if WILDCARD_ID not in resources:
        return False
    entry = state.catalog.get(resource)
    return (
        entry is not None
        and entry.sensitivity < NAMED_ONLY_SENSITIVITY
        and entry.registered_at <= grant.recorded_at
        and entry.lowered_at <= grant.recorded_at
    )


def check_release(state: State, item: ReleaseItem) -> Outcome:
    """What the contract says of ``item`` now, without recording it."""
    error = _signed(item.sig, "ConsentLedgerNotGrantee")
    if error:
        return error
    if _expired(state, item.deadline):
        return "ConsentLedgerExpiredDeadline"
    grant = state.grants.get(item.grant_id)
    if grant is None:
        return "ConsentLedgerUnknownGrant"
    if grant.revoked or grant.terms is None:
        return "ConsentLedgerGrantRevoked"
    return _grant_release_error(state, grant, grant.terms, item)


def _grant_release_error(state: State, grant: Grant, terms: GrantTerms, item: ReleaseItem) -> Outcome:
    now = state.timestamp
    if now >= terms.valid_until:
        return "ConsentLedgerGrantExpired"
    if (terms.max_uses and grant.uses >= terms.max_uses) or grant.uses >= MAX_USES:
        return "ConsentLedgerGrantExhausted"
    if grant.paused:
        return "ConsentLedgerGrantPaused"
    if now < terms.valid_from:
        return "ConsentLedgerGrantNotYetValid"
    if not covers(state, grant, item.resource):
        return "ConsentLedgerResourceNotGranted"
    if not state.active(terms.subject, SUBJECT) or not state.active(terms.grantee, CONSUMER):
        return "ConsentLedgerInactiveMember"
    if (terms.grantee, item.request_id) in state.requests:
        return "ConsentLedgerRequestUsed"
    return None


def record_release(state: State, item: ReleaseItem) -> Outcome:
    """``recordRelease`` (or one item of ``recordReleases``): the outcome, recorded when None."""
    error = check_release(state, item)
    if error is None:
        grant = state.grants[item.grant_id]
        apply_release(state, grant, grant.terms.grantee, item.request_id)  # type: ignore[union-attr]
    return error


def record_releases(state: State, items: list[ReleaseItem]) -> list[Outcome]:
    """``recordReleases``: each item in turn (an item sees what the earlier ones recorded)."""
    return [record_release(state, item) for item in items]


def apply_release(state: State, grant: Grant | None, grantee: str, request_id: str) -> None:
    if grant is not None:
        grant.uses += 1
    state.requests.add((grantee, request_id))


# ---- members and catalog ------------------------------------------------------------------------


def apply_member(state: State, account: str, roles: int, *, wallet: bool | None = None) -> None:
    """Onboarding or a role update (suspension kept)."""
    m = state.members.get(account)
    if m is None:
        state.members[account] = Member(roles=roles, wallet=bool(wallet))
    else:
        m.roles = roles
        if wallet is not None:
            m.wallet = wallet


def update_member(state: State, account: str, roles: int, *, key_length: int = 0, by: str | None = None) -> Outcome:
    """``updateMember`` by the ADMIN ``by`` (``key_length``: the HPKE key's). AUDITOR is never added
    here (``enrolAuditor`` needs an auditor's approval); removing roles is allowed."""
    m = state.members.get(account)
    if m is None:
        return "MemberRegistryUnknownMember"
    error = _roles_error(roles, key_length)
    if error:
        return error
    if m.wallet and roles & (ADMIN | AUDITOR):
        return "MemberRegistryInvalidRoles"
    if roles & AUDITOR and not m.roles & AUDITOR:
        return "MemberRegistryAuditorApprovalRequired"
    if account == by and not roles & ADMIN:
        return "MemberRegistrySelfLockout"
    m.roles = roles
    return None


def _roles_error(roles: int, key_length: int) -> Outcome:
    if roles == 0 or roles & ~ALL_ROLES:
        return "MemberRegistryInvalidRoles"
    if roles & ADMIN and roles & AUDITOR:
        return "MemberRegistryConflictingRoles"
    key_ok = key_length in HPKE_KEY_LENGTHS if roles & CONSUMER else key_length == 0
    return None if key_ok else "MemberRegistryInvalidHpkeKey"


def set_suspended(state: State, account: str, suspended: bool, *, by: str | None = None) -> Outcome:
    """``setSuspended`` by the ADMIN ``by``."""
    m = state.members.get(account)
    if m is None:
        return "MemberRegistryUnknownMember"
    if account == by:
        return "MemberRegistrySelfLockout"
    if m.suspended == suspended:
        return "MemberRegistrySuspensionUnchanged"
    m.suspended = suspended
    return None


def register_resource(state: State, resource: str, sensitivity: int) -> Outcome:
    """``registerResource`` (by an ADMIN, of an active PROVIDER's resource)."""
    if resource == WILDCARD_ID:
        return "DataCatalogReservedId"
    if resource in state.catalog:
        return "DataCatalogResourceExists"
    if not 1 <= sensitivity <= 4:
        return "DataCatalogInvalidSensitivity"
    state.catalog[resource] = Resource(sensitivity=sensitivity, registered_at=state.block)
    return None


def update_resource(state: State, resource: str, sensitivity: int) -> Outcome:
    """``updateResource``; a move from 3+ to 1-2 sets ``lowered_at``."""
    entry = state.catalog.get(resource)
    if entry is None:
        return "DataCatalogUnknownResource"
    if not 1 <= sensitivity <= 4:
        return "DataCatalogInvalidSensitivity"
    apply_resource(state, resource, sensitivity)
    return None


def apply_resource(state: State, resource: str, sensitivity: int) -> None:
    """A registration or an update, as the chain recorded it."""
    entry = state.catalog.get(resource)
    if entry is None:
        state.catalog[resource] = Resource(sensitivity=sensitivity, registered_at=state.block)
        return
    if entry.sensitivity >= NAMED_ONLY_SENSITIVITY > sensitivity:
        entry.lowered_at = state.block
    entry.sensitivity = sensitivity


# ---- emergencies --------------------------------------------------------------------------------


def approved_now(state: State, emergency: Emergency) -> bool:
    """Of its approvers, those still active in the role they approved in reach the threshold, with
    at least one ADMIN and one AUDITOR."""
    count, admin, auditor = 0, False, False
    for approver in emergency.approvers:
        role = emergency.approved_as[approver]
        if not state.active(approver, role):
            continue
        count += 1
        if role == ADMIN:
            admin = True
        else:
            auditor = True
    return admin and auditor and count >= state.threshold


def _approver_error(state: State, deadline: int, approver: str, sig: Sig) -> Outcome:
    if _expired(state, deadline):
        return "ConsentLedgerExpiredDeadline"
    error = _signed(sig, "ConsentLedgerInvalidSignature")
    if error:
        return error
    if not state.active(approver, ADMIN) and not state.active(approver, AUDITOR):
        return "ConsentLedgerNotApprover"
    return None


def _scope_error(state: State, terms: EmergencyTerms) -> Outcome:
    if terms.valid_from >= terms.valid_until or terms.valid_until - terms.valid_from > MAX_EMERGENCY_WINDOW:
        return "ConsentLedgerInvalidWindow"
    if not 0 < len(terms.resources) <= MAX_LIST or any(r not in state.catalog for r in terms.resources):
        return "ConsentLedgerInvalidResources"
    if not 0 < len(terms.consumers) <= MAX_LIST:
        return "ConsentLedgerInvalidResources"
    if any(not state.active(c, CONSUMER) for c in terms.consumers):
        return "ConsentLedgerInactiveMember"
    return None


def propose_emergency(
    state: State, emergency_id: str, terms: EmergencyTerms, approver: str, sig: Sig = Sig.OK
) -> Outcome:
    """``proposeEmergency``: the proposal is also the proposer's approval."""
    error = _approver_error(state, terms.deadline, approver, sig)
    if error:
        return error
    if emergency_id in state.emergencies:
        return "ConsentLedgerEmergencyExists"
    error = _scope_error(state, terms)
    if error:
        return error
    emergency = Emergency(terms=terms)
    error = _approval_error(state, emergency, approver)
    if error is None:
        state.emergencies[emergency_id] = emergency
        apply_approval(state, emergency, approver)
    return error


def approve_emergency(
    state: State, emergency_id: str, terms: EmergencyTerms, approver: str, sig: Sig = Sig.OK
) -> Outcome:
    """``approveEmergency``: the approval that first makes it approved activates it."""
    error = _approver_error(state, terms.deadline, approver, sig)
    if error:
        return error
    emergency = state.emergencies.get(emergency_id)
    if emergency is None or emergency.terms != terms:
        return "ConsentLedgerUnknownEmergency"
    if emergency.cancelled:
        return "ConsentLedgerEmergencyCancelled"
    error = _approval_error(state, emergency, approver)
    if error is None:
        apply_approval(state, emergency, approver)
    return error


def _approval_error(state: State, emergency: Emergency, approver: str) -> Outcome:
    if approver in emergency.approvers:
        return "ConsentLedgerAlreadyApproved"
    if len(emergency.approvers) >= MAX_APPROVERS:
        return "ConsentLedgerTooManyApprovals"
    if emergency.activated_at == 0 and emergency.terms.valid_from > state.timestamp + MAX_EMERGENCY_DELAY:
        trial = Emergency(
            terms=emergency.terms,
            approvers=[*emergency.approvers, approver],
            approved_as={**emergency.approved_as, approver: _approver_role(state, approver)},
        )
        if approved_now(state, trial):
            return "ConsentLedgerInvalidWindow"
    return None


def _approver_role(state: State, approver: str) -> int:
    return ADMIN if state.active(approver, ADMIN) else AUDITOR


def apply_approval(state: State, emergency: Emergency, approver: str) -> None:
    """An approval, in the role the approver holds now (ADMIN, else AUDITOR)."""
    emergency.approved_as[approver] = _approver_role(state, approver)
    emergency.approvers.append(approver)
    if emergency.activated_at == 0 and approved_now(state, emergency):
        emergency.activated_at = state.timestamp


def cancel_emergency(state: State, emergency_id: str, deadline: int, by: str, sig: Sig = Sig.OK) -> Outcome:
    """``cancelEmergency`` by any active ADMIN or AUDITOR."""
    error = _approver_error(state, deadline, by, sig)
    if error:
        return error
    emergency = state.emergencies.get(emergency_id)
    if emergency is None:
        return "ConsentLedgerUnknownEmergency"
    if emergency.cancelled:
        return "ConsentLedgerEmergencyCancelled"
    emergency.cancelled = True
    return None


def check_emergency_release(state: State, item: EmergencyRelease) -> Outcome:
    """What the contract says of an emergency release now, without recording it."""
    error = _signed(item.sig, "ConsentLedgerInvalidSignature")
    if error:
        return error
    if _expired(state, item.deadline):
        return "ConsentLedgerExpiredDeadline"
    emergency = state.emergencies.get(item.emergency_id)
    if emergency is None or (item.terms is not None and item.terms != emergency.terms):
        return "ConsentLedgerUnknownEmergency"
    if emergency.cancelled:
        return "ConsentLedgerEmergencyCancelled"
    if emergency.activated_at == 0 or not approved_now(state, emergency):
        return "ConsentLedgerEmergencyNotApproved"
    terms = emergency.terms
    if not terms.valid_from <= state.timestamp < terms.valid_until:
        return "ConsentLedgerEmergencyOutsideWindow"
    if item.resource not in terms.resources or item.consumer not in terms.consumers:
        return "ConsentLedgerEmergencyOutOfScope"
    if not state.active(item.consumer, CONSUMER) or not state.holds(item.subject, SUBJECT):
        return "ConsentLedgerInactiveMember"
    if (item.consumer, item.request_id) in state.requests:
        return "ConsentLedgerRequestUsed"
    return None


def record_emergency_release(state: State, item: EmergencyRelease) -> Outcome:
    """``recordEmergencyRelease``: the outcome, recorded when None."""
    error = check_emergency_release(state, item)
    if error is None:
        state.requests.add((item.consumer, item.request_id))
    return error
