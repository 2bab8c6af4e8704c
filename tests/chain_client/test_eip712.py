"""Python's EIP-712 digests equal the contract's (SPEC §3)."""

from __future__ import annotations

import secrets

from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_client import eip712
from tests.conftest import Deployed

bytes32 = st.binary(min_size=32, max_size=32)
address = st.binary(min_size=20, max_size=20).map(
    lambda b: Account.create().address if b == bytes(20) else "0x" + b.hex()
)


def test_every_typehash_matches_the_contract(deployed_shared: Deployed) -> None:
    """Every message type the Python side signs hashes as the contract's constant does (SPEC §3, §9.8)."""
    ledger = deployed_shared.ledger
    assert set(eip712.TYPEHASH_CONSTANTS) == set(eip712.TYPES)
    for primary, constant in eip712.TYPEHASH_CONSTANTS.items():
        assert ledger.typehash(constant) == eip712.typehash(primary), primary
    declared = {
        item["name"]
        for item in ledger.consent.abi
        if item.get("type") == "function" and item["name"].endswith("_TYPEHASH")
    }
    assert declared == set(eip712.TYPEHASH_CONSTANTS.values()), "a contract message type has no Python twin"
    assert eip712.type_string("SetPaused") == (
        "SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)"
    )
    assert eip712.type_string("Grant") == (
        "Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,"
        "uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
    )


def test_domain_separator_matches(deployed_shared: Deployed) -> None:
    domain = deployed_shared.ledger.domain()
    expected = keccak(
        keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        + keccak(text="Quanchenglian")
        + keccak(text="1")
        + domain.chain_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(domain.verifying_contract[2:])
    )
    assert deployed_shared.ledger.domain_separator() == expected
    assert eip712.domain_separator(domain) == expected


@settings(max_examples=25, deadline=None)
@given(
    subject=address,
    grantee=address,
    resources=st.lists(bytes32, max_size=5),
    purpose=bytes32,
    valid_from=st.integers(0, 2**64 - 1),
    valid_until=st.integers(0, 2**64 - 1),
    max_uses=st.integers(0, 2**32 - 1),
    nonce=st.integers(0, 2**256 - 1),
    deadline=st.integers(0, 2**256 - 1),
)
def test_grant_digest_matches_the_contract(
    deployed_shared: Deployed,
    subject: str,
    grantee: str,
    resources: list[bytes],
    purpose: bytes,
    valid_from: int,
    valid_until: int,
    max_uses: int,
    nonce: int,
    deadline: int,
) -> None:
    message = {
        "subject": subject,
        "grantee": grantee,
        "resources": resources,
        "purpose": purpose,
        "validFrom": valid_from,
        "validUntil": valid_until,
        "maxUses": max_uses,
        "nonce": nonce,
        "deadline": deadline,
    }
    assert eip712.digest(deployed_shared.ledger.domain(), "Grant", message) == deployed_shared.ledger.hash_grant(
        message
    )


def test_signature_recovers_the_signer(deployed_shared: Deployed) -> None:
    signer = Account.create()
    message = {"grantId": secrets.token_bytes(32), "nonce": 7, "deadline": 2**40}
    signature = eip712.sign(deployed_shared.ledger.domain(), "Revoke", message, signer.key)
    assert len(signature) == 65
    recovered = Account.recover_message(
        eip712.signable(deployed_shared.ledger.domain(), "Revoke", message), signature=signature
    )
    assert recovered == signer.address
