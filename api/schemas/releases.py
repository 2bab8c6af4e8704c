"""Bodies of the release routes: a grantee's signed ReleaseRequest, the sealed answer (SPEC §4,
§6.1), and the entries of a subject's access log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..types import Bytes32, Signature, Uint256


class ReleaseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantId: Bytes32
    resource: Bytes32
    requestId: Bytes32
    deadline: Uint256


class SignedRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: ReleaseMessage
    signature: Signature


class ReleasedDocument(BaseModel):
    document_id: str
    resource: str
    commitment: str
    salt: str
    issuer: str
    issued_at: int


class ReleasePublic(BaseModel):
    release_id: str
    tx_hash: str
    block_number: int
    sealed: str = Field(description="base64 of enc || ciphertext (SPEC §4)")
    document: ReleasedDocument


class AccessLogEntry(BaseModel):
    release_id: str
    kind: str = Field(description='"grant" or "emergency" (emergency releases are flagged)')
    authority: str = Field(description="grant id, or emergency id")
    purpose: str | None = Field(
        None, description="purpose id of the grant, from the chain's GrantRecorded (null for emergency releases)"
    )
    grantee: str
    resource: str
    request_id: str
    document_id: str
    tx_hash: str
    block_number: int
    released_at: int
