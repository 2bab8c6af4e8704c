"""Domain types shared by callers of :mod:`chain_client`."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NewType

from eth_utils import to_checksum_address

Address = NewType("Address", str)
"""A checksummed 20-byte account address."""

Bytes32 = NewType("Bytes32", bytes)
"""A 32-byte identifier (resource, purpose, grant id, request id)."""


class Role(enum.IntFlag):
    """Roles of the member registry (SPEC §1); the values are the on-chain bits."""

    ADMIN = 1
    PROVIDER = 2
    CONSUMER = 4
    AUDITOR = 8
    SUBJECT = 16

    @classmethod
    def parse(cls, names: Sequence[str]) -> Role:
        """``["CONSUMER", "AUDITOR"]`` -> ``Role.CONSUMER | Role.AUDITOR``; ValueError on unknown names."""
        mask = cls(0)
        for name in names:
            try:
                mask |= cls[name.upper()]
            except KeyError:
                raise ValueError(f"unknown role {name!r}; expected {', '.join(r.name or '' for r in cls)}") from None
        return mask

    def names(self) -> list[str]:
        return [r.name for r in Role if r in self and r.name]


@dataclass(frozen=True)
class Member:
    """A registry record. ``roles`` is empty for accounts that are not members."""

    address: Address
    roles: Role
    suspended: bool
    since: int
    org_id: bytes
    hpke_key: bytes
    #: Onboarded as an EIP-1271 contract wallet (with its proof of control, SPEC §9.8).
    wallet: bool = False

    @property
    def is_member(self) -> bool:
        return bool(self.roles)

    @property
    def active(self) -> bool:
        return self.is_member and not self.suspended


@dataclass(frozen=True)
class Eip712Domain:
    name: str
    version: str
    chain_id: int
    verifying_contract: Address

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


class GrantStatus(enum.IntEnum):
    """``IConsentLedger.Status``: a grant's status at a block."""

    UNKNOWN = 0
    ACTIVE = 1
    PAUSED = 2
    REVOKED = 3
    NOT_YET_VALID = 4
    EXPIRED = 5
    EXHAUSTED = 6

    @property
    def label(self) -> str:
        return self.name.lower()


def _b32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class GrantTerms:
    """The fields of a SPEC §3 ``Grant`` message."""

    subject: str
    grantee: str
    resources: tuple[bytes, ...]
    purpose: bytes
    valid_from: int
    valid_until: int
    max_uses: int
    nonce: int
    deadline: int

    def message(self) -> dict[str, object]:
        """The EIP-712 message (field names of SPEC §3)."""
        return {
            "subject": self.subject,
            "grantee": self.grantee,
            "resources": list(self.resources),
            "purpose": self.purpose,
            "validFrom": self.valid_from,
            "validUntil": self.valid_until,
            "maxUses": self.max_uses,
            "nonce": self.nonce,
            "deadline": self.deadline,
        }

    @classmethod
    def from_message(cls, m: dict[str, object]) -> GrantTerms:
        return cls(
            subject=str(m["subject"]),
            grantee=str(m["grantee"]),
            resources=tuple(_b32(r) for r in m["resources"]),  # type: ignore[attr-defined]
            purpose=_b32(m["purpose"]),  # type: ignore[arg-type]
            valid_from=int(m["validFrom"]),  # type: ignore[call-overload]
            valid_until=int(m["validUntil"]),  # type: ignore[call-overload]
            max_uses=int(m["maxUses"]),  # type: ignore[call-overload]
            nonce=int(m["nonce"]),  # type: ignore[call-overload]
            deadline=int(m["deadline"]),  # type: ignore[call-overload]
        )

    def as_tuple(self) -> tuple[object, ...]:
        """The ``IConsentLedger.Grant`` struct as web3.py encodes it."""
        return (
            to_checksum_address(self.subject),
            to_checksum_address(self.grantee),
            list(self.resources),
            self.purpose,
            self.valid_from,
            self.valid_until,
            self.max_uses,
            self.nonce,
            self.deadline,
        )


@dataclass(frozen=True)
class EmergencyScope:
    """The fields of a SPEC §3 ``Emergency`` message."""

    emergency_id: bytes
    resources: tuple[bytes, ...]
    consumers: tuple[str, ...]
    valid_from: int
    valid_until: int
    reason: bytes
    deadline: int

    def message(self) -> dict[str, object]:
        return {
            "emergencyId": self.emergency_id,
            "resources": list(self.resources),
            "consumers": list(self.consumers),
            "validFrom": self.valid_from,
            "validUntil": self.valid_until,
            "reason": self.reason,
            "deadline": self.deadline,
        }

    @classmethod
    def from_message(cls, m: dict[str, object]) -> EmergencyScope:
        return cls(
            emergency_id=_b32(m["emergencyId"]),  # type: ignore[arg-type]
            resources=tuple(_b32(r) for r in m["resources"]),  # type: ignore[attr-defined]
            consumers=tuple(str(c) for c in m["consumers"]),  # type: ignore[attr-defined]
            valid_from=int(m["validFrom"]),  # type: ignore[call-overload]
            valid_until=int(m["validUntil"]),  # type: ignore[call-overload]
            reason=_b32(m["reason"]),  # type: ignore[arg-type]
            deadline=int(m["deadline"]),  # type: ignore[call-overload]
        )

    def as_tuple(self) -> tuple[object, ...]:
        return (
            self.emergency_id,
            list(self.resources),
            [to_checksum_address(c) for c in self.consumers],
            self.valid_from,
            self.valid_until,
            self.reason,
            self.deadline,
        )


@dataclass(frozen=True)
class ReleaseItem:
    """One release of a grouped submission: the grant's terms and the grantee's signed request."""

    grant: GrantTerms
    resource: bytes
    request_id: bytes
    deadline: int
    signature: bytes

    def as_tuple(self) -> tuple[object, ...]:
        return (self.grant.as_tuple(), self.resource, self.request_id, self.deadline, self.signature)


@dataclass(frozen=True)
class GrantState:
    """What the ledger stores of a grant. ``recorded_at`` is the block of ``recordGrant``; 0 for
    a grant revoked before it was recorded (``revokeUnrecorded``), which can never be recorded."""

    subject: str
    uses: int
    revoked: bool
    paused: bool
    recorded_at: int = 0

    @property
    def exists(self) -> bool:
        return int(self.subject, 16) != 0


@dataclass(frozen=True)
class EmergencyState:
    """What the ledger stores of an emergency. ``approvals`` counts the approvals recorded (whether
    they still count is decided at use time: see ``Ledger.emergency_active``); ``activated_at`` is
    the time of the approval that first made it approved (0 before); ``cancelled`` is final."""

    digest: bytes
    valid_from: int
    valid_until: int
    activated_at: int
    approvals: int
    cancelled: bool

    @property
    def exists(self) -> bool:
        return self.digest != bytes(32)
