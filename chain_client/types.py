"""Domain types shared by callers of :mod:`chain_client`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

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
    def parse(cls, names: list[str] | tuple[str, ...]) -> Role:
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
