"""Bodies of the emergency routes (the "green channel", SPEC §9.8): the approvers' signed
Emergency and EmergencyCancel messages, a listed consumer's signed release request, and the
emergencies as read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chain_client.types import EmergencyScope

from ..types import Address, Bytes32, Signature, Uint64, Uint256


class EmergencyMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    resources: list[Bytes32] = Field(min_length=1, max_length=32)
    consumers: list[Address] = Field(min_length=1, max_length=32)
    validFrom: Uint64
    validUntil: Uint64
    reason: Bytes32
    deadline: Uint256

    def scope(self) -> EmergencyScope:
        return EmergencyScope.from_message(self.model_dump(mode="python"))


class EmergencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyMessage
    signature: Signature
    reason_text: str = Field(min_length=1, max_length=2000, description="kept off chain with `reason_salt`")
    reason_salt: Bytes32 = Field(description="random 32 bytes (hex); `reason` = keccak256(reason_salt || utf8(text))")


class StoredScope(EmergencyMessage):
    """What the platform keeps of an emergency: its message and the salt of its reason."""

    reasonSalt: Bytes32 | None = None


class SignedEmergency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyMessage
    signature: Signature


class EmergencyCancelMessage(BaseModel):
    """SPEC §9.8 ``EmergencyCancel(bytes32 emergencyId,uint256 deadline)``."""

    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    deadline: Uint256


class SignedEmergencyCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyCancelMessage
    signature: Signature


class EmergencyReleaseMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergencyId: Bytes32
    subject: Address
    resource: Bytes32
    requestId: Bytes32
    deadline: Uint256


class SignedEmergencyRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: EmergencyReleaseMessage
    signature: Signature


class EmergencyPublic(BaseModel):
    emergency_id: str
    resources: list[str]
    consumers: list[str]
    validFrom: int
    validUntil: int
    reason: str
    reason_text: str
    reason_salt: str | None = Field(None, description="null for an emergency proposed before salts (v1)")
    proposer: str
    approvals: int
    approvers: list[str]
    cancelled: bool
    activated_at: int = Field(description="time of the approval that activated it; 0 before")
    active: bool = Field(description="usable now: approved by approvers active now, not cancelled, in its window")
    tx_hash: str | None = None
