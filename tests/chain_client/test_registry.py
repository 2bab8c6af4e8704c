"""The member registry on every local node: deploy, onboard, update, suspend, typed errors."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from chain_client import CompilationResult, Ledger, Role, eip712, errors
from chain_client.ids import new_nonce
from chain_client.ledger import org_id
from tests.conftest import Deployed

X25519_KEY = bytes(range(32))
HYBRID_KEY = bytes(1216)


def test_deployer_admin_is_first_member(deployed_any: Deployed) -> None:
    ledger = deployed_any.ledger
    me = ledger.member(deployed_any.admin.address)
    assert me.roles == Role.ADMIN and me.active
    assert ledger.is_active(deployed_any.admin.address, Role.ADMIN)
    assert not ledger.member(Account.create().address).is_member


def test_onboard_consumer_with_hpke_key(deployed_any: Deployed) -> None:
    ledger, dept = deployed_any.ledger, Account.create()
    receipt = ledger.onboard(
        dept.address, Role.CONSUMER | Role.PROVIDER, org_code="11370100MB0000000X", hpke_key=X25519_KEY
    )
    assert receipt.block_number > 0
    record = ledger.member(dept.address)
    assert record.roles == Role.CONSUMER | Role.PROVIDER
    assert record.hpke_key == X25519_KEY
    assert record.org_id == org_id("11370100MB0000000X") != bytes(32)
    assert ledger.is_active(dept.address, Role.CONSUMER)
    assert not ledger.is_active(dept.address, Role.AUDITOR)
    events = ledger.registry.events.MemberOnboarded().process_receipt(receipt.raw, errors=DISCARD)
    assert [(e.args.account, e.args.roles, bytes(e.args.hpkeKey)) for e in events] == [
        (dept.address, int(Role.CONSUMER | Role.PROVIDER), X25519_KEY)
    ]


def test_onboard_rejections_are_typed(deployed_any: Deployed) -> None:
    ledger, citizen = deployed_any.ledger, Account.create()
    ledger.onboard(citizen.address, Role.SUBJECT)
    with pytest.raises(errors.AlreadyMember):
        ledger.onboard(citizen.address, Role.SUBJECT)
    with pytest.raises(errors.InvalidHpkeKey) as missing:
        ledger.onboard(Account.create().address, Role.CONSUMER)
    assert missing.value.args_by_name == {"length": 0}
    with pytest.raises(errors.InvalidHpkeKey):
        ledger.onboard(Account.create().address, Role.SUBJECT, hpke_key=X25519_KEY)
    with pytest.raises(errors.InvalidRoles):
        ledger.onboard(Account.create().address, Role(0))
    with pytest.raises(errors.InvalidRoles):
        ledger.onboard(Account.create().address, Role(32))  # not a defined role bit
    with pytest.raises(errors.ZeroAddress):
        ledger.onboard("0x" + "00" * 20, Role.SUBJECT)


def test_hybrid_pq_key_is_accepted(deployed: Deployed) -> None:
    dept = Account.create()
    deployed.ledger.onboard(dept.address, Role.CONSUMER, hpke_key=HYBRID_KEY)
    assert deployed.ledger.member(dept.address).hpke_key == HYBRID_KEY


def test_suspension_and_reinstatement(deployed_any: Deployed) -> None:
    ledger, citizen = deployed_any.ledger, Account.create()
    ledger.onboard(citizen.address, Role.SUBJECT)
    receipt = ledger.set_suspended(citizen.address, True)
    assert ledger.member(citizen.address).suspended
    assert not ledger.is_active(citizen.address, Role.SUBJECT)
    (event,) = ledger.registry.events.MemberSuspensionChanged().process_receipt(receipt.raw, errors=DISCARD)
    assert event.args.suspended is True and event.args.by == deployed_any.admin.address
    with pytest.raises(errors.SuspensionUnchanged):
        ledger.set_suspended(citizen.address, True)
    ledger.set_suspended(citizen.address, False)
    assert ledger.is_active(citizen.address, Role.SUBJECT)
    with pytest.raises(errors.UnknownMember):
        ledger.set_suspended(Account.create().address, True)


def test_only_active_admins_change_the_registry(deployed: Deployed, compiled: CompilationResult) -> None:
    ledger, second_admin, outsider = deployed.ledger, Account.create(), Account.create()
    with pytest.raises(errors.NotAuthorized) as refused:
        deployed.ledger_as(outsider, compiled).onboard(Account.create().address, Role.SUBJECT)
    assert refused.value.args_by_name == {"caller": outsider.address}

    ledger.onboard(second_admin.address, Role.ADMIN | Role.PROVIDER)
    as_second = deployed.ledger_as(second_admin, compiled)
    citizen = Account.create()
    as_second.onboard(citizen.address, Role.SUBJECT)
    assert ledger.member(citizen.address).roles == Role.SUBJECT

    ledger.set_suspended(second_admin.address, True)  # a suspended ADMIN can do nothing
    with pytest.raises(errors.NotAuthorized):
        as_second.onboard(Account.create().address, Role.SUBJECT)


def test_admin_cannot_lock_itself_out(deployed: Deployed) -> None:
    ledger, me = deployed.ledger, deployed.admin.address
    with pytest.raises(errors.SelfLockout):
        ledger.set_suspended(me, True)
    with pytest.raises(errors.SelfLockout):
        ledger.update_member(me, Role.PROVIDER)
    ledger.update_member(me, Role.ADMIN | Role.PROVIDER)
    assert ledger.member(me).roles == Role.ADMIN | Role.PROVIDER


def test_update_member_replaces_roles_and_key(deployed: Deployed) -> None:
    ledger, dept = deployed.ledger, Account.create()
    ledger.onboard(dept.address, Role.CONSUMER, hpke_key=X25519_KEY)
    receipt = ledger.update_member(dept.address, Role.PROVIDER, org_code="dept-7")
    record = ledger.member(dept.address)
    assert record.roles == Role.PROVIDER and record.hpke_key == b"" and record.org_id == org_id("dept-7")
    (event,) = ledger.registry.events.MemberUpdated().process_receipt(receipt.raw, errors=DISCARD)
    assert event.args.roles == int(Role.PROVIDER)
    with pytest.raises(errors.UnknownMember):
        ledger.update_member(Account.create().address, Role.SUBJECT)


def test_every_custom_error_has_a_python_class(compiled: CompilationResult) -> None:
    from chain_client._revert import RevertDecoder

    declared = RevertDecoder(
        [c.abi for c in compiled.contracts.values() if c.source.startswith("contracts/")]
    ).error_names
    assert declared, "no custom errors found in the ABIs"
    assert declared <= set(errors.REVERT_CLASSES), f"unmapped: {declared - set(errors.REVERT_CLASSES)}"


# ---- separation of duties (SPEC §9.8, finding H1) ----------------------------------------------


def _enrolment(
    ledger: Ledger, account: str, approver: LocalAccount, nonce: int | None = None
) -> tuple[int, int, bytes]:
    nonce = new_nonce() if nonce is None else nonce
    deadline = ledger.block_timestamp() + 600
    message = {"account": account, "nonce": nonce, "deadline": deadline}
    return nonce, deadline, eip712.sign(ledger.domain(), "AuditorEnrolment", message, approver.key)


def test_the_deployment_names_the_first_auditor(deployed: Deployed) -> None:
    assert deployed.ledger.member(deployed.auditor.address).roles == Role.AUDITOR
    assert deployed.ledger.member(deployed.admin.address).roles == Role.ADMIN


def test_an_admin_alone_cannot_make_an_auditor(deployed: Deployed) -> None:
    """H1: an ADMIN cannot enrol its own second key (or itself) as AUDITOR."""
    ledger, own_key = deployed.ledger, Account.create()
    with pytest.raises(errors.AuditorApprovalRequired):
        ledger.onboard(own_key.address, Role.AUDITOR)
    with pytest.raises(errors.ConflictingRoles):
        ledger.onboard(own_key.address, Role.ADMIN | Role.AUDITOR)
    ledger.onboard(own_key.address, Role.SUBJECT)
    with pytest.raises(errors.AuditorApprovalRequired):
        ledger.update_member(own_key.address, Role.SUBJECT | Role.AUDITOR)
    with pytest.raises(errors.ConflictingRoles):
        ledger.update_member(deployed.admin.address, Role.ADMIN | Role.AUDITOR)
    # approving itself with the key the ADMIN holds is no approval: it is no auditor
    nonce, deadline, signature = _enrolment(ledger, own_key.address, own_key)
    with pytest.raises(errors.InvalidApproval):
        ledger.enrol_auditor(own_key.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=signature)
    nonce, deadline, signature = _enrolment(ledger, own_key.address, deployed.admin)
    with pytest.raises(errors.InvalidApproval):
        ledger.enrol_auditor(own_key.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=signature)
    assert Role.AUDITOR not in ledger.member(own_key.address).roles


def test_an_auditor_cosigns_an_enrolment_once(deployed: Deployed) -> None:
    ledger, newcomer, later = deployed.ledger, Account.create(), Account.create()
    nonce, deadline, signature = _enrolment(ledger, newcomer.address, deployed.auditor)
    receipt = ledger.enrol_auditor(
        newcomer.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=signature, org_code="audit-office"
    )
    assert ledger.member(newcomer.address).roles == Role.AUDITOR
    (event,) = ledger.registry.events.AuditorEnrolled().process_receipt(receipt.raw, errors=DISCARD)
    assert event.args.account == newcomer.address and event.args.approver == deployed.auditor.address
    assert ledger.nonce_used(deployed.auditor.address, nonce)
    # the approver's nonce is spent: the same approval for another account is refused
    _, deadline, signature = _enrolment(ledger, later.address, deployed.auditor, nonce=nonce)
    with pytest.raises(errors.NonceUsed):
        ledger.enrol_auditor(later.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=signature)
    # a suspended auditor approves nothing
    ledger.set_suspended(newcomer.address, True)
    nonce, deadline, signature = _enrolment(ledger, later.address, newcomer)
    with pytest.raises(errors.InvalidApproval):
        ledger.enrol_auditor(later.address, Role.AUDITOR, nonce=nonce, deadline=deadline, signature=signature)
    # an approval past its deadline is refused
    nonce, _, signature = _enrolment(ledger, later.address, deployed.auditor)
    past = ledger.block_timestamp() - 1
    with pytest.raises(errors.ExpiredDeadline):
        ledger.enrol_auditor(later.address, Role.AUDITOR, nonce=nonce, deadline=past, signature=signature)


def test_a_contract_wallet_needs_its_own_proof(deployed: Deployed, compiled: CompilationResult) -> None:
    """Finding I: a wallet is onboarded only with its isValidSignature accepting the onboarding message."""
    ledger, owner = deployed.ledger, Account.create()
    art = compiled["MinimalWallet"]
    factory = ledger.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    wallet = ledger.tx.transact(factory.constructor(owner.address)).contract_address
    assert wallet is not None
    with pytest.raises(errors.WalletProofRequired):
        ledger.onboard(wallet, Role.SUBJECT)
    deadline = ledger.block_timestamp() + 600
    message = {"account": wallet, "roles": int(Role.SUBJECT), "orgId": bytes(32), "deadline": deadline}
    stranger = eip712.sign(ledger.domain(), "WalletOnboarding", message, Account.create().key)
    with pytest.raises(errors.InvalidWalletProof):
        ledger.onboard_wallet(wallet, Role.SUBJECT, deadline=deadline, proof=stranger)
    proof = eip712.sign(ledger.domain(), "WalletOnboarding", message, owner.key)
    ledger.onboard_wallet(wallet, Role.SUBJECT, deadline=deadline, proof=proof)
    record = ledger.member(wallet)
    assert record.roles == Role.SUBJECT and record.wallet
