"""``Ledger.calldata`` (eth_abi straight) gives exactly the bytes web3's ContractFunction encodes."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_client.types import GrantTerms
from tests.conftest import Deployed

b32 = st.binary(min_size=32, max_size=32)
uint = st.integers(min_value=0, max_value=2**256 - 1)
sig = st.binary(min_size=65, max_size=65)


def _terms(resources: list[bytes], nonce: int) -> GrantTerms:
    return GrantTerms(
        subject=Account.create().address,
        grantee=Account.create().address,
        resources=tuple(resources),
        purpose=secrets.token_bytes(32),
        valid_from=1,
        valid_until=2**40,
        max_uses=5,
        nonce=nonce,
        deadline=2**33,
    )


@settings(max_examples=40, deadline=None)
@given(resources=st.lists(b32, min_size=1, max_size=4), nonce=uint, signature=sig)
def test_grant_calls(deployed_shared: Deployed, resources: list[bytes], nonce: int, signature: bytes) -> None:
    ledger = deployed_shared.ledger
    terms = _terms(resources, nonce)
    f = ledger.consent.functions
    assert ledger.calldata("recordGrant", terms.as_tuple(), signature) == ledger.encode(
        f.recordGrant(terms.as_tuple(), signature)
    )
    assert ledger.calldata("revokeUnrecorded", terms.as_tuple(), nonce, 7, signature) == ledger.encode(
        f.revokeUnrecorded(terms.as_tuple(), nonce, 7, signature)
    )


@settings(max_examples=40, deadline=None)
@given(gid=b32, nonce=uint, deadline=uint, paused=st.booleans(), sequence=st.integers(0, 2**64 - 1), signature=sig)
def test_revoke_and_pause(
    deployed_shared: Deployed, gid: bytes, nonce: int, deadline: int, paused: bool, sequence: int, signature: bytes
) -> None:
    ledger = deployed_shared.ledger
    f = ledger.consent.functions
    assert ledger.calldata("revoke", gid, nonce, deadline, signature) == ledger.encode(
        f.revoke(gid, nonce, deadline, signature)
    )
    assert ledger.calldata("setPaused", gid, paused, sequence, nonce, deadline, signature) == ledger.encode(
        f.setPaused(gid, paused, sequence, nonce, deadline, signature)
    )


def test_unknown_function_is_refused(deployed_shared: Deployed) -> None:
    with pytest.raises(ValueError, match="0 functions named"):
        deployed_shared.ledger.calldata("noSuchFunction", 1)
