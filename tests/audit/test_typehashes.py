"""The auditor's and the test model's EIP-712 constants are the contract's: the six message types of
the ledger's rules (Grant, Revoke, SetPaused, ReleaseRequest, Emergency, EmergencyReleaseRequest;
EmergencyCancel too) and the domain separator the verifier computes without asking the chain."""

from __future__ import annotations

from audit import _sigcheck, verify
from chain_client import eip712
from tests.audit.test_rules_differential import TYPEHASH
from tests.conftest import Deployed


def test_the_differential_tests_typehashes_are_the_contracts(deployed_shared: Deployed) -> None:
    ledger = deployed_shared.ledger
    assert len(TYPEHASH) >= 6
    for primary, value in TYPEHASH.items():
        assert value == ledger.typehash(eip712.TYPEHASH_CONSTANTS[primary]), primary


def test_the_verifiers_typehashes_and_domain_separator_are_the_contracts(deployed_shared: Deployed) -> None:
    ledger = deployed_shared.ledger
    assert verify._RELEASE_TYPEHASH == ledger.typehash("RELEASE_REQUEST_TYPEHASH")
    assert verify._EMERGENCY_RELEASE_TYPEHASH == ledger.typehash("EMERGENCY_RELEASE_TYPEHASH")
    separator = verify._domain_separator(ledger.domain())
    assert separator == ledger.domain_separator()
    # a release request signed against the contract's separator is the signer's to the verifier's check
    account = deployed_shared.admin
    message = {"grantId": bytes(range(32)), "resource": bytes(32), "requestId": b"\x07" * 32, "deadline": 99}
    signature = eip712.sign(ledger.domain(), "ReleaseRequest", message, account.key)
    encoded = verify._RELEASE_TYPEHASH + b"".join(
        v if isinstance(v, bytes) else v.to_bytes(32, "big") for v in message.values()
    )
    assert _sigcheck.signer_of(separator, encoded, signature) == account.address.lower()
