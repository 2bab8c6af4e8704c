"""Tables of the vault (SQLAlchemy 2 declarative). Schema changes go through Alembic migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DocumentRow(Base):
    """One stored document. Content and metadata are ciphertext under the document's data key."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    subject: Mapped[str] = mapped_column(String(42))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(66))
    issuer: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Nanosecond storage order (strictly increasing per process): "most recently stored" (SPEC §4).
    stored_ns: Mapped[int] = mapped_column(BigInteger)
    content_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    commitment: Mapped[str] = mapped_column(String(66))
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    #: "pending" until the commitment is anchored on chain, then "current"; "deleted" after shredding.
    state: Mapped[str] = mapped_column(String(16))
    anchor_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tombstone_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)

    __table_args__ = (
        Index("ix_documents_subject_resource", "subject", "resource_id", "stored_ns"),
        Index("ix_documents_key_version", "key_version"),
    )


class ReleaseLogRow(Base):
    """The vault's append-only release log; ``idx`` runs 0, 1, 2… without gaps."""

    __tablename__ = "release_log"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    release_id: Mapped[str] = mapped_column(String(66), unique=True)
    subject: Mapped[str] = mapped_column(String(42))
    grantee: Mapped[str] = mapped_column(String(42))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
