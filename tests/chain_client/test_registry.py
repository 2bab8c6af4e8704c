"""The member registry on every local node: deploy, onboard, update, suspend, typed errors."""

from __future__ import annotations

import pytest
from eth_account import Account

from chain_client import CompilationResult, Role, errors
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
    events = ledger.registry.events.MemberOnboarded().process_receipt(receipt.raw)
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
    (event,) = ledger.registry.events.MemberSuspensionChanged().process_receipt(receipt.raw)
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

    ledger.onboard(second_admin.address, Role.ADMIN | Role.AUDITOR)
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
        ledger.update_member(me, Role.AUDITOR)
    ledger.update_member(me, Role.ADMIN | Role.AUDITOR)
    assert ledger.member(me).roles == Role.ADMIN | Role.AUDITOR


def test_update_member_replaces_roles_and_key(deployed: Deployed) -> None:
    ledger, dept = deployed.ledger, Account.create()
    ledger.onboard(dept.address, Role.CONSUMER, hpke_key=X25519_KEY)
    receipt = ledger.update_member(dept.address, Role.PROVIDER, org_code="dept-7")
    record = ledger.member(dept.address)
    assert record.roles == Role.PROVIDER and record.hpke_key == b"" and record.org_id == org_id("dept-7")
    (event,) = ledger.registry.events.MemberUpdated().process_receipt(receipt.raw)
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
