"""Documents and the release log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(66), nullable=False),
        sa.Column("issuer", sa.String(42), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("stored_ns", sa.BigInteger, nullable=False),
        sa.Column("content_nonce", sa.LargeBinary, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("meta", sa.LargeBinary, nullable=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("commitment", sa.String(66), nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("anchor_tx", sa.String(66), nullable=True),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
        sa.Column("tombstone_tx", sa.String(66), nullable=True),
    )
    op.create_index("ix_documents_subject_resource", "documents", ["subject", "resource_id", "stored_ns"])
    op.create_index("ix_documents_key_version", "documents", ["key_version"])
    op.create_table(
        "release_log",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("release_id", sa.String(66), nullable=False, unique=True),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("grantee", sa.String(42), nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_release_log_subject", "release_log", ["subject"])
    op.create_index("ix_release_log_grantee", "release_log", ["grantee"])


def downgrade() -> None:
    op.drop_table("release_log")
    op.drop_index("ix_documents_key_version", "documents")
    op.drop_index("ix_documents_subject_resource", "documents")
    op.drop_table("documents")
