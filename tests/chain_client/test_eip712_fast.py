"""The release path's direct hashing of the fixed message types equals the generic EIP-712 encoder,
and its signer recovery equals eth-account's, refusing what the ledger refuses (high-s)."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_client import eip712
from chain_client.types import Address, Eip712Domain

DOMAIN = Eip712Domain("Quanchenglian", "1", 31337, Address("0x5FbDB2315678afecb367f032d93F642f64180aa3"))
KEY = Account.create()
b32 = st.binary(min_size=32, max_size=32)
uint = st.integers(min_value=0, max_value=2**256 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
address = st.binary(min_size=20, max_size=20).map(lambda b: Account.from_key(b"\x01" * 12 + b).address)


@settings(max_examples=200, deadline=None)
@given(
    subject=address,
    grantee=address,
    resources=st.lists(b32, min_size=1, max_size=4),
    purpose=b32,
    valid_from=u64,
    valid_until=u64,
    max_uses=st.integers(min_value=0, max_value=2**32 - 1),
    nonce=uint,
    deadline=uint,
)
def test_grant_digest_equals_the_generic_encoder(  # type: ignore[no-untyped-def]
    subject, grantee, resources, purpose, valid_from, valid_until, max_uses, nonce, deadline
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
    assert eip712.grant_digest(DOMAIN, message) == eip712.digest(DOMAIN, "Grant", message)


@settings(max_examples=200, deadline=None)
@given(grant_id=b32, resource=b32, request_id=b32, deadline=uint)
def test_release_request_digest_and_recovery(
    grant_id: bytes, resource: bytes, request_id: bytes, deadline: int
) -> None:
    message = {"grantId": grant_id, "resource": resource, "requestId": request_id, "deadline": deadline}
    digest = eip712.release_request_digest(DOMAIN, grant_id, resource, request_id, deadline)
    assert digest == eip712.digest(DOMAIN, "ReleaseRequest", message)
    signature = eip712.sign(DOMAIN, "ReleaseRequest", message, KEY.key)
    assert eip712.recover(digest, signature) == KEY.address
    # the malleable twin (s -> n - s, v flipped) is valid ECDSA but refused, as on chain
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (n - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    assert eip712.recover(digest, twin) is None
    assert eip712.recover(digest, signature[:64]) is None
    assert eip712.recover(digest, signature[:64] + b"\x05") is None
    other = eip712.release_request_digest(DOMAIN, grant_id, resource, request_id, deadline ^ 1)
    assert eip712.recover(other, signature) != KEY.address
