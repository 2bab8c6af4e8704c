"""The consent ledger's rules through the Python client, one rule or custom error per test."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from eth_keys import keys
from hexbytes import HexBytes
from web3.logs import DISCARD

from chain_client import Role, eip712, errors
from chain_client.ids import WILDCARD, new_nonce, new_request_ids, resource_id
from chain_client.types import EmergencyScope, GrantStatus, ReleaseItem
from tests.chain_client.world import BIOMETRIC, ID_CARD, LOAN, TAX, World, make_world
from tests.conftest import Deployed

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture
def world(deployed: Deployed) -> World:
    return make_world(deployed)


@pytest.fixture
def world_alone(deployed_alone: Deployed) -> World:
    """A world on its own anvil: for the tests that move the chain's clock."""
    return make_world(deployed_alone)


def high_s(signature: bytes) -> bytes:
    """The other, malleable encoding of the same ECDSA signature."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28


# ---- catalog -----------------------------------------------------------------------------------


def test_catalog_entries_and_rules(world: World) -> None:
    ledger = world.ledger
    assert ledger.resource(ID_CARD).provider == world.provider.address
    assert ledger.resource(ID_CARD).sensitivity == 3
    assert not ledger.resource(resource_id("unknown")).exists
    with pytest.raises(errors.ResourceExists):
        ledger.register_resource("id_card", "again", world.provider.address, 3)
    with pytest.raises(errors.InvalidSensitivity):
        ledger.register_resource("x", "x", world.provider.address, 5)
    with pytest.raises(errors.InvalidProvider):
        ledger.register_resource("y", "y", world.dept.address, 1)  # a CONSUMER is not a PROVIDER
    with pytest.raises(errors.ReservedResourceId):
        ledger.register_resource("*", "wildcard", world.provider.address, 1)
    ledger.update_resource(TAX, world.provider.address, 1)
    assert ledger.resource(TAX).sensitivity == 1
    with pytest.raises(errors.UnknownResource):
        ledger.update_resource(resource_id("nope"), world.provider.address, 1)


def test_only_admin_edits_the_catalog(world: World, compiled) -> None:  # type: ignore[no-untyped-def]
    as_provider = world.deployed.ledger_as(world.provider, compiled)
    with pytest.raises(errors.NotAuthorized):
        as_provider.register_resource("mine", "mine", world.provider.address, 1)


# ---- grants ------------------------------------------------------------------------------------


def test_grant_is_relayed_and_its_id_is_the_digest(world: World) -> None:
    terms = world.terms(resources=(ID_CARD, TAX), max_uses=2)
    signature = world.sign_grant(terms)
    recorded = world.ledger.record_grant(terms, signature)  # relayed by the operator, not the citizen
    assert recorded.grant_id == eip712.digest(world.ledger.domain(), "Grant", terms.message())
    assert recorded.grant_id == world.ledger.hash_grant(terms)
    state = world.ledger.grant_state(recorded.grant_id)
    assert state.subject == world.citizen.address and state.uses == 0 and not state.revoked
    assert world.ledger.grant_status(terms) == GrantStatus.ACTIVE
    (event,) = world.ledger.events(
        "GrantRecorded", from_block=recorded.receipt.block_number, to_block=recorded.receipt.block_number
    )
    assert event.args.subject == world.citizen.address and event.args.grantee == world.dept.address
    assert [bytes(r) for r in event.args.resources] == [ID_CARD, TAX]
    assert event.args.maxUses == 2 and event.args.nonce == terms.nonce and bytes(event.args.purpose) == LOAN


def test_grant_replay_is_nonce_used(world: World) -> None:
    terms = world.terms()
    signature = world.sign_grant(terms)
    world.ledger.record_grant(terms, signature)
    with pytest.raises(errors.NonceUsed) as refused:
        world.ledger.record_grant(terms, signature)
    assert refused.value.args_by_name == {"signer": world.citizen.address, "nonce": terms.nonce}


def test_grant_signature_rules(world: World) -> None:
    ledger, terms = world.ledger, world.terms()
    good = world.sign_grant(terms)
    with pytest.raises(errors.SignatureMalleable):
        ledger.record_grant(terms, high_s(good))
    with pytest.raises(errors.SignatureInvalid) as wrong:
        ledger.record_grant(terms, world.sign_grant(terms, Account.create().key))
    assert type(wrong.value) is errors.SignatureInvalid
    assert wrong.value.args_by_name == {"expectedSigner": world.citizen.address}
    domain = ledger.domain()
    other_chain = domain.__class__(domain.name, domain.version, domain.chain_id + 1, domain.verifying_contract)
    with pytest.raises(errors.SignatureInvalid):
        ledger.record_grant(terms, eip712.sign(other_chain, "Grant", terms.message(), world.citizen.key))
    other_contract = domain.__class__(domain.name, domain.version, domain.chain_id, ledger.anchor.address)
    with pytest.raises(errors.SignatureInvalid):
        ledger.record_grant(terms, eip712.sign(other_contract, "Grant", terms.message(), world.citizen.key))
    with pytest.raises(errors.SignatureInvalid):
        ledger.record_grant(terms, good[:64])  # not 65 bytes
    assert ledger.record_grant(terms, good).grant_id  # the right one still works


def test_grant_deadline(world: World) -> None:
    terms = world.terms(deadline=world.now() - 1)  # the next block is later than the deadline
    with pytest.raises(errors.ExpiredDeadline) as late:
        world.ledger.record_grant(terms, world.sign_grant(terms))
    assert late.value.args_by_name == {"deadline": terms.deadline}


def test_grant_parties_must_be_active_members(world: World) -> None:
    ledger = world.ledger
    stranger = Account.create()
    terms = world.terms(subject=stranger.address)
    with pytest.raises(errors.InactiveMember):
        ledger.record_grant(terms, world.sign_grant(terms, stranger.key))
    terms = world.terms(grantee=world.auditor.address)  # not a CONSUMER
    with pytest.raises(errors.InactiveMember) as refused:
        ledger.record_grant(terms, world.sign_grant(terms))
    assert refused.value.args_by_name == {"account": world.auditor.address, "role": int(Role.CONSUMER)}
    ledger.set_suspended(world.citizen.address, True)
    terms = world.terms()
    with pytest.raises(errors.InactiveMember):
        ledger.record_grant(terms, world.sign_grant(terms))


def test_grant_resources_and_window(world: World) -> None:
    ledger = world.ledger
    for resources in ((), (resource_id("not-in-catalog"),), (TAX,) * 33):
        terms = world.terms(resources=resources)
        with pytest.raises(errors.InvalidResources):
            ledger.record_grant(terms, world.sign_grant(terms))
    now = world.now()
    terms = world.terms(valid_from=now + 10, valid_until=now + 10)
    with pytest.raises(errors.InvalidWindow):
        ledger.record_grant(terms, world.sign_grant(terms))


# ---- releases ----------------------------------------------------------------------------------


def test_release_counts_uses_and_emits(world: World) -> None:
    terms, grant_id = world.grant(max_uses=2)
    receipt = world.release(terms, grant_id)
    (event,) = world.ledger.consent.events.ReleaseRecorded().process_receipt(receipt.raw)
    assert bytes(event.args.grantId) == grant_id and event.args.grantee == world.dept.address
    assert bytes(event.args.resource) == ID_CARD and event.args.uses == 1
    world.release(terms, grant_id)
    assert world.ledger.grant_state(grant_id).uses == 2
    assert world.ledger.grant_status(terms) == GrantStatus.EXHAUSTED
    with pytest.raises(errors.GrantExhausted):
        world.release(terms, grant_id)


def test_unlimited_uses(world: World) -> None:
    terms, grant_id = world.grant(max_uses=0)
    for _ in range(5):
        world.release(terms, grant_id)
    assert world.ledger.grant_state(grant_id).uses == 5
    assert world.ledger.grant_status(terms) == GrantStatus.ACTIVE


def test_request_replay_and_wrong_signer(world: World) -> None:
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    world.ledger.record_release(terms, ID_CARD, request_id, deadline, signature)
    with pytest.raises(errors.RequestUsed) as replay:
        world.ledger.record_release(terms, ID_CARD, request_id, deadline, signature)
    assert replay.value.args_by_name == {"requestId": request_id}
    assert world.ledger.request_used(world.dept.address, request_id)
    with pytest.raises(errors.NotGrantee):  # another department signs for this grant
        world.release(terms, grant_id, key=world.other_dept.key)
    with pytest.raises(errors.NotGrantee):  # the platform cannot ask on the department's behalf
        world.release(terms, grant_id, key=world.deployed.admin.key)
    request_id, deadline, signature = world.release_request(grant_id)
    with pytest.raises(errors.SignatureMalleable):
        world.ledger.record_release(terms, ID_CARD, request_id, deadline, high_s(signature))
    with pytest.raises(errors.ExpiredDeadline):
        world.release(terms, grant_id, deadline=world.now() - 1)


def test_release_of_an_unknown_grant(world: World) -> None:
    terms = world.terms()  # signed but never recorded
    grant_id = world.ledger.hash_grant(terms)
    with pytest.raises(errors.UnknownGrant):
        world.release(terms, grant_id)
    recorded_terms, recorded_id = world.grant()
    altered = recorded_terms.__class__(**{**recorded_terms.__dict__, "max_uses": 99})  # terms that were not signed
    with pytest.raises(errors.UnknownGrant):
        world.release(altered, world.ledger.hash_grant(altered))
    with pytest.raises(errors.NotGrantee):  # the signature is checked first: it names another grant id
        world.release(altered, recorded_id)


def test_window_boundaries(world_alone: World) -> None:
    world = world_alone
    node = world.deployed.node
    start = world.now() + 100
    terms, grant_id = world.grant(valid_from=start, valid_until=start + 50, deadline=start + 1000)

    def at(timestamp: int) -> None:
        node.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]

    request = world.release_request(grant_id, deadline=start + 1000)
    at(start - 1)
    with pytest.raises(errors.GrantNotYetValid):
        world.ledger.record_release(terms, ID_CARD, *request, gas=300_000)
    at(start)
    world.ledger.record_release(terms, ID_CARD, *world.release_request(grant_id, deadline=start + 1000), gas=300_000)
    at(start + 49)  # validUntil - 1
    world.ledger.record_release(terms, ID_CARD, *world.release_request(grant_id, deadline=start + 1000), gas=300_000)
    at(start + 50)  # validUntil
    with pytest.raises(errors.GrantExpired):
        world.ledger.record_release(
            terms, ID_CARD, *world.release_request(grant_id, deadline=start + 1000), gas=300_000
        )
    assert world.ledger.grant_status(terms) == GrantStatus.EXPIRED
    assert world.ledger.grant_state(grant_id).uses == 2


def test_named_and_wildcard_resources(world: World) -> None:
    terms, grant_id = world.grant(resources=(WILDCARD,))
    world.release(terms, grant_id, TAX)  # sensitivity 2: covered by the wildcard
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, ID_CARD)  # sensitivity 3: must be named
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, BIOMETRIC)  # sensitivity 4
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, resource_id("not-in-catalog"))
    named, named_id = world.grant(resources=(ID_CARD,))
    world.release(named, named_id, ID_CARD)
    with pytest.raises(errors.ResourceNotGranted):
        world.release(named, named_id, TAX)


def test_the_wildcard_is_fixed_at_grant_time(world: World) -> None:
    """M2: resources registered, or lowered from 3+, after a wildcard grant are not covered by it."""
    ledger = world.ledger
    terms, grant_id = world.grant(resources=(WILDCARD,))
    recorded_at = ledger.grant_state(grant_id).recorded_at
    assert recorded_at > 0
    ledger.register_resource("pension_record", "Pension record", world.provider.address, 1)
    later = resource_id("pension_record")
    assert ledger.resource(later).registered_at > recorded_at
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, later)
    ledger.update_resource(ID_CARD, world.provider.address, 1)  # an ADMIN downgrades 3 -> 1
    assert ledger.resource(ID_CARD).lowered_at > recorded_at
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, ID_CARD)
    world.release(terms, grant_id, TAX)  # registered before the grant, sensitivity 2: covered
    newer, newer_id = world.grant(resources=(WILDCARD,))  # a grant made after both is covered
    world.release(newer, newer_id, later)
    world.release(newer, newer_id, ID_CARD)


def test_suspended_grantee_cannot_receive(world: World) -> None:
    terms, grant_id = world.grant()
    world.ledger.set_suspended(world.dept.address, True)
    with pytest.raises(errors.InactiveMember):
        world.release(terms, grant_id)
    world.ledger.set_suspended(world.dept.address, False)
    world.release(terms, grant_id)


# ---- revoke and pause --------------------------------------------------------------------------


def test_revoke_is_final(world: World) -> None:
    terms, grant_id = world.grant()
    world.release(terms, grant_id)
    receipt = world.revoke(grant_id)
    (event,) = world.ledger.consent.events.GrantRevoked().process_receipt(receipt.raw)
    assert bytes(event.args.grantId) == grant_id and event.args.subject == world.citizen.address
    assert world.ledger.grant_status(terms) == GrantStatus.REVOKED
    with pytest.raises(errors.GrantRevoked):
        world.release(terms, grant_id)
    with pytest.raises(errors.GrantRevoked):
        world.revoke(grant_id)
    with pytest.raises(errors.GrantRevoked):
        world.set_paused(grant_id, True)


def test_only_the_subject_revokes(world: World) -> None:
    terms, grant_id = world.grant()
    with pytest.raises(errors.SignatureInvalid):
        world.revoke(grant_id, key=world.dept.key)
    with pytest.raises(errors.UnknownGrant):
        world.revoke(secrets.token_bytes(32))
    assert world.ledger.grant_status(terms) == GrantStatus.ACTIVE


def test_pause_and_resume(world: World) -> None:
    terms, grant_id = world.grant()
    nonce = new_nonce()
    world.set_paused(grant_id, True, nonce=nonce)
    assert world.ledger.nonce_used(world.citizen.address, nonce)
    assert world.ledger.grant_status(terms) == GrantStatus.PAUSED
    assert world.ledger.pause_sequence(grant_id) == 1
    with pytest.raises(errors.GrantPaused):
        world.release(terms, grant_id)
    receipt = world.set_paused(grant_id, True)  # applied even when unchanged: the sequence moves on
    (event,) = world.ledger.consent.events.GrantPauseChanged().process_receipt(receipt.raw)
    assert event.args.paused is True and event.args.sequence == 2
    world.set_paused(grant_id, False)
    assert world.ledger.pause_sequence(grant_id) == 3
    world.release(terms, grant_id)
    with pytest.raises(errors.NonceUsed):  # replaying the first pause message's nonce
        world.set_paused(grant_id, True, nonce=nonce, sequence=9)


def test_a_stale_resume_cannot_undo_a_later_pause(world: World) -> None:
    """M3: a "resume" signed earlier and replayed after a later pause is refused."""
    terms, grant_id = world.grant()
    world.set_paused(grant_id, True)  # sequence 1
    lost_resume = world.pause_message(grant_id, False)  # sequence 2, signed but not delivered
    world.set_paused(grant_id, False, sequence=3)
    world.set_paused(grant_id, True, sequence=4)
    with pytest.raises(errors.StaleSequence) as refused:
        world.apply_paused(lost_resume)
    assert refused.value.args_by_name == {"grantId": grant_id, "sequence": 2}
    assert world.ledger.grant_status(terms) == GrantStatus.PAUSED
    with pytest.raises(errors.GrantPaused):
        world.release(terms, grant_id)


def test_nonces_are_shared_across_message_types(world: World) -> None:
    """L1: a nonce spent by a Grant cannot be spent again by a Revoke or a SetPaused, nor a second grant."""
    terms, grant_id = world.grant()
    assert world.ledger.nonce_used(world.citizen.address, terms.nonce)
    twin = world.terms()
    twin = type(twin)(**{**twin.__dict__, "nonce": terms.nonce})
    with pytest.raises(errors.NonceUsed):
        world.ledger.record_grant(twin, world.sign_grant(twin))
    with pytest.raises(errors.NonceUsed):
        world.set_paused(grant_id, True, nonce=terms.nonce)


def test_a_revoked_unrecorded_grant_can_never_be_recorded(world: World) -> None:
    """L1: a subject revokes a signed grant (a lost QR code) before anyone records it."""
    ledger = world.ledger
    terms = world.terms()
    signature = world.sign_grant(terms)
    grant_id = ledger.hash_grant(terms)
    nonce, deadline = new_nonce(), world.now() + 600
    revoke = eip712.sign(
        ledger.domain(), "Revoke", {"grantId": grant_id, "nonce": nonce, "deadline": deadline}, world.citizen.key
    )
    with pytest.raises(errors.SignatureInvalid):  # only the grant's subject may revoke it
        other = eip712.sign(
            ledger.domain(), "Revoke", {"grantId": grant_id, "nonce": nonce, "deadline": deadline}, world.dept.key
        )
        ledger.revoke_unrecorded(terms, nonce, deadline, other)
    ledger.revoke_unrecorded(terms, nonce, deadline, revoke)
    state = ledger.grant_state(grant_id)
    assert state.revoked and state.recorded_at == 0 and state.subject == world.citizen.address
    with pytest.raises(errors.GrantRevoked):
        ledger.record_grant(terms, signature)
    assert ledger.grant_status(terms) == GrantStatus.REVOKED


def test_a_suspended_subject_can_still_withdraw(world: World) -> None:
    """Finding I: withdrawal always works; a suspended subject pauses and revokes, but cannot resume."""
    _terms, grant_id = world.grant()
    world.ledger.set_suspended(world.citizen.address, True)
    world.set_paused(grant_id, True)
    with pytest.raises(errors.InactiveMember):
        world.set_paused(grant_id, False)
    world.revoke(grant_id)
    assert world.ledger.grant_state(grant_id).revoked


def test_revoke_then_release_in_the_same_block(world: World) -> None:
    """Revocation bites for every later transaction, including later ones in the same block."""
    node, ledger = world.deployed.node, world.ledger
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    nonce, revoke_deadline = new_nonce(), world.now() + 600
    revoke_sig = eip712.sign(
        ledger.domain(), "Revoke", {"grantId": grant_id, "nonce": nonce, "deadline": revoke_deadline}, world.citizen.key
    )
    node.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        revoke_hash = ledger.tx.send(
            ledger.consent.functions.revoke(grant_id, nonce, revoke_deadline, revoke_sig), gas=200_000
        )
        release_hash = ledger.send_release(terms, ID_CARD, request_id, deadline, signature, gas=300_000)
        node.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        node.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    revoked = ledger.tx.wait(revoke_hash)
    with pytest.raises(errors.GrantRevoked) as refused:
        ledger.tx.wait(release_hash)
    failed = node.w3.eth.get_transaction_receipt(HexBytes(release_hash))
    assert failed["blockNumber"] == revoked.block_number and failed["status"] == 0
    assert refused.value.tx_hash == release_hash
    assert ledger.grant_state(grant_id).uses == 0


# ---- grouped releases --------------------------------------------------------------------------


def test_grouped_release_checks_each_item_on_its_own(world: World) -> None:
    ledger = world.ledger
    terms, grant_id = world.grant(max_uses=4)
    revoked_terms, revoked_id = world.grant()
    world.revoke(revoked_id)
    ids = new_request_ids(6)
    items = []
    for i, (t, g, resource, key) in enumerate(
        [
            (terms, grant_id, ID_CARD, world.dept.key),
            (revoked_terms, revoked_id, ID_CARD, world.dept.key),
            (terms, grant_id, TAX, world.dept.key),  # not granted
            (terms, grant_id, ID_CARD, world.other_dept.key),  # not the grantee
            (terms, grant_id, ID_CARD, world.dept.key),
            (terms, grant_id, ID_CARD, world.dept.key),
        ]
    ):
        request_id, deadline, signature = world.release_request(g, resource, key=key, request_id=ids[i])
        items.append(ReleaseItem(t, resource, request_id, deadline, signature))
    items.append(items[0])  # the same request again: request id already used
    result = ledger.record_releases(items)
    assert result.recorded == [0, 4, 5]
    assert result.skipped == [3]  # not the grantee's signature: no event names it (L2)
    assert {i: type(e) for i, e in result.rejected.items()} == {
        1: errors.GrantRevoked,
        2: errors.ResourceNotGranted,
        6: errors.RequestUsed,
    }
    assert result.rejected[1].args_by_name == {"grantId": revoked_id}
    assert ledger.grant_state(grant_id).uses == 3
    recorded = ledger.consent.events.ReleaseRecorded().process_receipt(result.receipt.raw, errors=DISCARD)
    assert [e.args.uses for e in recorded] == [1, 2, 3]


# ---- emergencies -------------------------------------------------------------------------------


def _scope(world: World, **overrides: object) -> EmergencyScope:
    now = world.now()
    fields: dict[str, object] = {
        "emergency_id": secrets.token_bytes(32),
        "resources": (ID_CARD,),
        "consumers": (world.dept.address,),
        "valid_from": now - 10,
        "valid_until": now + 3600,
        "reason": eip712.keccak(text="flood response 2026-11"),
        "deadline": now + 600,
    }
    fields.update(overrides)
    return EmergencyScope(**fields)  # type: ignore[arg-type]


def _sign_scope(world: World, scope: EmergencyScope, key: bytes) -> bytes:
    return eip712.sign(world.ledger.domain(), "Emergency", scope.message(), key)


def _emergency_request(
    world: World, scope: EmergencyScope, subject: str, resource: bytes, key: bytes
) -> tuple[bytes, int, bytes]:
    request_id, deadline = new_request_ids(1)[0], world.now() + 600
    message = {
        "emergencyId": scope.emergency_id,
        "subject": subject,
        "resource": resource,
        "requestId": request_id,
        "deadline": deadline,
    }
    return request_id, deadline, eip712.sign(world.ledger.domain(), "EmergencyReleaseRequest", message, key)


def test_emergency_needs_admin_and_auditor(world: World) -> None:
    ledger, admin = world.ledger, world.deployed.admin
    scope = _scope(world)
    ledger.propose_emergency(scope, _sign_scope(world, scope, admin.key))
    assert ledger.emergency_state(scope.emergency_id).approvals == 1
    request = _emergency_request(world, scope, world.citizen.address, ID_CARD, world.dept.key)
    with pytest.raises(errors.EmergencyNotApproved):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)
    with pytest.raises(errors.AlreadyApproved):
        ledger.approve_emergency(scope, _sign_scope(world, scope, admin.key))
    with pytest.raises(errors.NotApprover):
        ledger.approve_emergency(scope, _sign_scope(world, scope, world.dept.key))
    receipt = ledger.approve_emergency(scope, _sign_scope(world, scope, world.auditor.key))
    (approved,) = ledger.consent.events.EmergencyApproved().process_receipt(receipt.raw)
    assert approved.args.active is True and approved.args.approvals == 2
    released = ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)
    (event,) = ledger.consent.events.EmergencyReleaseRecorded().process_receipt(released.raw)
    assert event.args.consumer == world.dept.address and event.args.subject == world.citizen.address
    with pytest.raises(errors.RequestUsed):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)


def test_emergency_scope_and_window(world_alone: World) -> None:
    world = world_alone
    ledger, admin = world.ledger, world.deployed.admin
    now = world.now()
    too_long = _scope(world, valid_from=now, valid_until=now + 72 * 3600 + 1)
    with pytest.raises(errors.InvalidWindow):
        ledger.propose_emergency(too_long, _sign_scope(world, too_long, admin.key))
    scope = _scope(world, valid_until=now + 72 * 3600 - 10)
    ledger.propose_emergency(scope, _sign_scope(world, scope, admin.key))
    with pytest.raises(errors.EmergencyExists):
        ledger.propose_emergency(scope, _sign_scope(world, scope, world.auditor.key))
    changed = EmergencyScope(**{**scope.__dict__, "consumers": (world.dept.address, world.other_dept.address)})
    with pytest.raises(errors.UnknownEmergency):  # approving a different scope under the same id
        ledger.approve_emergency(changed, _sign_scope(world, changed, world.auditor.key))
    ledger.approve_emergency(scope, _sign_scope(world, scope, world.auditor.key))
    outsider = _emergency_request(world, scope, world.citizen.address, ID_CARD, world.other_dept.key)
    with pytest.raises(errors.EmergencyOutOfScope):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *outsider)
    other_resource = _emergency_request(world, scope, world.citizen.address, TAX, world.dept.key)
    with pytest.raises(errors.EmergencyOutOfScope):
        ledger.record_emergency_release(scope, world.citizen.address, TAX, *other_resource)
    world.deployed.node.w3.provider.make_request("evm_increaseTime", [72 * 3600])  # type: ignore[arg-type]
    late = _emergency_request(world, scope, world.citizen.address, ID_CARD, world.dept.key)
    late = (
        late[0],
        world.now() + 72 * 3600 + 600,
        eip712.sign(
            ledger.domain(),
            "EmergencyReleaseRequest",
            {
                "emergencyId": scope.emergency_id,
                "subject": world.citizen.address,
                "resource": ID_CARD,
                "requestId": late[0],
                "deadline": world.now() + 72 * 3600 + 600,
            },
            world.dept.key,
        ),
    )
    with pytest.raises(errors.EmergencyOutsideWindow):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *late)


def _cancel(world: World, scope: EmergencyScope, key: bytes) -> tuple[int, bytes]:
    deadline = world.now() + 600
    message = {"emergencyId": scope.emergency_id, "deadline": deadline}
    return deadline, eip712.sign(world.ledger.domain(), "EmergencyCancel", message, key)


def _approved(world: World) -> EmergencyScope:
    scope = _scope(world)
    world.ledger.propose_emergency(scope, _sign_scope(world, scope, world.deployed.admin.key))
    world.ledger.approve_emergency(scope, _sign_scope(world, scope, world.auditor.key))
    return scope


def test_a_cancelled_emergency_releases_nothing(world: World) -> None:
    """M1: an ADMIN or AUDITOR stops an emergency at once; it cannot be cancelled twice."""
    ledger = world.ledger
    scope = _approved(world)
    assert ledger.emergency_active(scope.emergency_id)
    assert ledger.emergency_approvers(scope.emergency_id) == [world.deployed.admin.address, world.auditor.address]
    with pytest.raises(errors.NotApprover):
        ledger.cancel_emergency(scope.emergency_id, *_cancel(world, scope, world.dept.key))
    receipt = ledger.cancel_emergency(scope.emergency_id, *_cancel(world, scope, world.auditor.key))
    (event,) = ledger.consent.events.EmergencyCancelled().process_receipt(receipt.raw)
    assert event.args.by == world.auditor.address
    state = ledger.emergency_state(scope.emergency_id)
    assert state.cancelled and state.activated_at > 0
    assert not ledger.emergency_active(scope.emergency_id)
    request = _emergency_request(world, scope, world.citizen.address, ID_CARD, world.dept.key)
    with pytest.raises(errors.EmergencyCancelled):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)
    with pytest.raises(errors.EmergencyCancelled):
        ledger.cancel_emergency(scope.emergency_id, *_cancel(world, scope, world.deployed.admin.key))
    unknown = _scope(world)
    with pytest.raises(errors.UnknownEmergency):
        ledger.cancel_emergency(unknown.emergency_id, *_cancel(world, unknown, world.auditor.key))


def test_a_suspended_approver_no_longer_counts(world: World) -> None:
    """H1/M1: approvals are counted when used, from approvers still active."""
    ledger = world.ledger
    scope = _approved(world)
    ledger.set_suspended(world.auditor.address, True)
    assert not ledger.emergency_active(scope.emergency_id)
    request = _emergency_request(world, scope, world.citizen.address, ID_CARD, world.dept.key)
    with pytest.raises(errors.EmergencyNotApproved):
        ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)
    ledger.set_suspended(world.auditor.address, False)
    ledger.record_emergency_release(scope, world.citizen.address, ID_CARD, *request)


def test_an_emergency_cannot_open_long_after_its_approval(world: World) -> None:
    """M1: validFrom is at most one hour after the approval that activates it."""
    ledger, now = world.ledger, world.now()
    later = _scope(world, valid_from=now + 365 * 86400, valid_until=now + 365 * 86400 + 3600)
    ledger.propose_emergency(later, _sign_scope(world, later, world.deployed.admin.key))
    with pytest.raises(errors.InvalidWindow):
        ledger.approve_emergency(later, _sign_scope(world, later, world.auditor.key))


def test_multicall_reports_each_failure_typed(world: World) -> None:
    ledger = world.ledger
    good, bad = world.terms(), world.terms()
    calls = [
        ledger.encode(ledger.consent.functions.recordGrant(good.as_tuple(), world.sign_grant(good))),
        ledger.encode(ledger.consent.functions.recordGrant(bad.as_tuple(), world.sign_grant(bad, world.dept.key))),
        ledger.encode(ledger.consent.functions.recordGrant(good.as_tuple(), world.sign_grant(good))),
    ]
    result = ledger.multicall(calls)
    assert result.succeeded == [0]
    assert isinstance(result.failed[1], errors.SignatureInvalid)
    assert isinstance(result.failed[2], errors.NonceUsed)
    assert ledger.grant_state(ledger.hash_grant(good)).exists


# ---- anchors -----------------------------------------------------------------------------------


def test_record_anchors_are_unique(world: World) -> None:
    ledger = world.ledger
    record_id, kind, commitment = secrets.token_bytes(32), eip712.keccak(text="correction"), secrets.token_bytes(32)
    ledger.anchor_record(record_id, kind, commitment)
    found = ledger.record(record_id)
    assert found.exists and found.kind == kind and found.commitment == commitment
    with pytest.raises(errors.RecordExists):
        ledger.anchor_record(record_id, kind, commitment)
    with pytest.raises(errors.InvalidCommitment):
        ledger.anchor_record(secrets.token_bytes(32), kind, bytes(32))
    assert not ledger.record(secrets.token_bytes(32)).exists


def test_document_anchors_and_tombstones(world: World) -> None:
    ledger = world.ledger
    doc_id, commitment = secrets.token_bytes(32), secrets.token_bytes(32)
    ledger.anchor_document(doc_id, world.citizen.address, ID_CARD, commitment, world.provider.address)
    doc = ledger.document(doc_id)
    assert doc.commitment == commitment and doc.issuer == world.provider.address and not doc.shredded
    with pytest.raises(errors.DocumentExists):
        ledger.anchor_document(doc_id, world.citizen.address, ID_CARD, commitment, world.provider.address)
    with pytest.raises(errors.InvalidIssuer):  # a consumer cannot issue identity cards
        ledger.anchor_document(secrets.token_bytes(32), world.citizen.address, ID_CARD, commitment, world.dept.address)
    own = secrets.token_bytes(32)
    ledger.anchor_document(own, world.citizen.address, TAX, commitment, world.citizen.address)  # stored by the subject
    with pytest.raises(errors.UnknownResource):
        ledger.anchor_document(
            secrets.token_bytes(32), world.citizen.address, resource_id("zzz"), commitment, world.citizen.address
        )
    with pytest.raises(errors.InvalidCommitment):
        ledger.anchor_document(secrets.token_bytes(32), world.citizen.address, TAX, bytes(32), world.citizen.address)
    receipt = ledger.shred_document(doc_id)
    assert ledger.document(doc_id).shredded
    (event,) = ledger.anchor.events.DocumentShredded().process_receipt(receipt.raw)
    assert bytes(event.args.documentId) == doc_id
    with pytest.raises(errors.DocumentShredded):
        ledger.shred_document(doc_id)
    with pytest.raises(errors.UnknownDocument):
        ledger.shred_document(secrets.token_bytes(32))


def test_checkpoints_grow(world: World, compiled) -> None:  # type: ignore[no-untyped-def]
    ledger = world.ledger
    ledger.anchor_checkpoint(3, b"\x01" * 32)
    ledger.anchor_checkpoint(10, b"\x02" * 32)
    with pytest.raises(errors.InvalidCheckpoint):
        ledger.anchor_checkpoint(10, b"\x03" * 32)
    with pytest.raises(errors.InvalidCheckpoint):
        ledger.anchor_checkpoint(11, bytes(32))
    assert [(c.tree_size, c.root_hash) for c in ledger.checkpoints()] == [(3, b"\x01" * 32), (10, b"\x02" * 32)]
    with pytest.raises(errors.NotAuthorized):
        world.deployed.ledger_as(world.auditor, compiled).anchor_checkpoint(12, b"\x04" * 32)


# ---- gas does not grow -------------------------------------------------------------------------


def test_gas_does_not_grow_with_grants_or_releases(world: World) -> None:
    """Every operation touches a fixed number of slots: no loop over grants, members or releases."""
    first_terms, first_id = world.grant()
    first_release = world.release(first_terms, first_id).gas_used
    first_revoke = world.revoke(first_id).gas_used
    for _ in range(30):
        terms, grant_id = world.grant()
        world.release(terms, grant_id)
        world.ledger.onboard(Account.create().address, Role.SUBJECT)
    later_terms, later_id = world.grant()
    later_grant_gas = world.ledger.record_grant(*(lambda t: (t, world.sign_grant(t)))(world.terms())).receipt.gas_used
    assert abs(world.release(later_terms, later_id).gas_used - first_release) <= 200
    assert abs(world.revoke(later_id).gas_used - first_revoke) <= 200
    fresh_terms = world.terms()
    early_grant_gas = world.ledger.record_grant(fresh_terms, world.sign_grant(fresh_terms)).receipt.gas_used
    assert abs(later_grant_gas - early_grant_gas) <= 200


def test_keys_module_is_consistent() -> None:
    account = Account.create()
    assert keys.PrivateKey(account.key).public_key.to_checksum_address() == account.address


def test_suspended_subject_freezes_its_grants(world: World) -> None:
    terms, grant_id = world.grant()
    world.ledger.set_suspended(world.citizen.address, True)
    with pytest.raises(errors.InactiveMember) as frozen:
        world.release(terms, grant_id)
    assert frozen.value.args_by_name == {"account": world.citizen.address, "role": int(Role.SUBJECT)}
    world.ledger.set_suspended(world.citizen.address, False)
    world.release(terms, grant_id)


def test_the_wildcard_is_not_a_resource(world: World) -> None:
    terms, grant_id = world.grant(resources=(WILDCARD,))
    with pytest.raises(errors.ResourceNotGranted):
        world.release(terms, grant_id, WILDCARD)


def test_grouped_release_is_bounded(world: World) -> None:
    terms, grant_id = world.grant()
    request_id, deadline, signature = world.release_request(grant_id)
    item = ReleaseItem(terms, ID_CARD, request_id, deadline, signature)
    with pytest.raises(errors.BatchTooLarge):
        world.ledger.record_releases([item] * 257, gas=25_000_000)


def test_final_states_take_precedence_over_a_pause(world_alone: World) -> None:
    world = world_alone
    node = world.deployed.node
    start = world.now()
    terms, grant_id = world.grant(valid_from=start - 10, valid_until=start + 30, deadline=start + 1000)
    world.set_paused(grant_id, True)
    node.w3.provider.make_request("evm_increaseTime", [60])  # type: ignore[arg-type]
    node.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert world.ledger.grant_status(terms) == GrantStatus.EXPIRED
    with pytest.raises(errors.GrantExpired):
        world.release(terms, grant_id, deadline=world.now() + 600)


def test_the_relayer_submits_members_messages(world: World, compiled) -> None:  # type: ignore[no-untyped-def]
    """Signed messages go out from the relayer account; operator-only work from the operator."""
    from chain_client import Ledger

    relayer = Account.create()
    world.deployed.node.fund(relayer.address)
    ledger = Ledger(
        w3=world.deployed.node.w3,
        deployment=world.ledger.deployment,
        compiled=compiled,
        operator=world.deployed.admin,
        relayer=relayer,
    )
    terms = world.terms()
    recorded = ledger.record_grant(terms, world.sign_grant(terms))
    request_id, deadline, signature = world.release_request(recorded.grant_id)
    released = ledger.record_release(terms, ID_CARD, request_id, deadline, signature)
    onboarded = ledger.onboard(Account.create().address, Role.SUBJECT)
    w3 = world.deployed.node.w3
    assert w3.eth.get_transaction(recorded.receipt.tx_hash)["from"] == relayer.address
    assert w3.eth.get_transaction(released.tx_hash)["from"] == relayer.address
    assert w3.eth.get_transaction(onboarded.tx_hash)["from"] == world.deployed.admin.address
