"""Bodies of the grant routes: the subject's signed Grant, Revoke and SetPaused messages (SPEC §3,
§9.8) and the grants as listed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chain_client.types import GrantTerms

from ..types import Address, Bytes32, Signature, Uint32, Uint64, Uint256


class GrantMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Address
    grantee: Address
    resources: list[Bytes32] = Field(min_length=1, max_length=32)
    purpose: Bytes32
    validFrom: Uint64
    validUntil: Uint64
    maxUses: Uint32
    nonce: Uint256
    deadline: Uint256

    def terms(self) -> GrantTerms:
        return GrantTerms.from_message(self.model_dump(mode="python"))


class SignedGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: GrantMessage
    signature: Signature


class RevokeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    nonce: Uint256
    deadline: Uint256


class SignedRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: RevokeMessage
    signature: Signature
    grant: GrantMessage | None = Field(
        None,
        description="the Grant message of a grant that may not be recorded yet (a lost QR code): "
        "revoking it with its terms means it can never be recorded (SPEC §9.8)",
    )


class PauseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    paused: bool
    sequence: Uint64 = Field(description="must exceed the grant's pause_sequence (GET /v1/grants/{grant_id})")
    nonce: Uint256
    deadline: Uint256


class SignedPause(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: PauseMessage
    signature: Signature


class TxPublic(BaseModel):
    tx_hash: str
    block_number: int


class GrantRecordedPublic(TxPublic):
    grant_id: str


Status = Literal["active", "paused", "revoked", "expired", "exhausted", "not_yet_valid"]


class GrantPublic(BaseModel):
    grant_id: str
    subject: str
    grantee: str
    resources: list[str]
    purpose: str
    validFrom: int
    validUntil: int
    maxUses: int
    status: str
    uses: int
    tx_hash: str
    block_number: int


class GrantDetail(GrantPublic):
    pause_sequence: int = Field(
        description="the last SetPaused sequence applied (0 before any); sign the next above it"
    )
    nonce: str
    deadline: str
