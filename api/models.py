"""Platform tables of the API (same database and Alembic history as the vault)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.models import Base


class AuthNonce(Base):
    """A login challenge's nonce: single use, short-lived."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MemberProfile(Base):
    """Off-chain facts about a member (the chain keeps only roles, a hash of the org code, keys)."""

    __tablename__ = "member_profiles"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    org_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(42))


class GrantRecord(Base):
    """The terms of every grant relayed through this API (the chain keeps their digest)."""

    __tablename__ = "grants"

    grant_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    subject: Mapped[str] = mapped_column(String(42))
    grantee: Mapped[str] = mapped_column(String(42))
    terms: Mapped[str] = mapped_column(Text)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    relayed_by: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_grants_subject", "subject"), Index("ix_grants_grantee", "grantee"))


class AccessRequestRow(Base):
    """A consumer's request to a subject; answered by a signed grant or a rejection."""

    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(42))
    subject: Mapped[str] = mapped_column(String(42))
    resources: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(128))
    valid_for: Mapped[int] = mapped_column(BigInteger)
    max_uses: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    answered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_access_requests_subject", "subject"), Index("ix_access_requests_consumer", "consumer"))


class EmergencyRecord(Base):
    """An emergency's scope and reason text (the chain keeps the reason's hash)."""

    __tablename__ = "emergencies"

    emergency_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    reason_text: Mapped[str] = mapped_column(Text)
    proposer: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class ActionRecord(Base):
    """Which logged-in member asked for each operator transaction (SPEC §3)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(42))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    at: Mapped[int] = mapped_column(BigInteger)
