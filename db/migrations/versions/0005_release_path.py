"""The release path: durable release intents and the relayer's signed transactions.

Revision ID: 0005_release_path
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_release_path"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release_intents",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("authority", sa.String(66), nullable=False),
        sa.Column("grantee", sa.String(42), nullable=False),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("resource", sa.String(66), nullable=False),
        sa.Column("request_id", sa.String(66), nullable=False),
        sa.Column("deadline", sa.String(78), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("body_hash", sa.String(66), nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("document_id", sa.String(66), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("position", sa.Integer, nullable=True),
        sa.Column("block_number", sa.BigInteger, nullable=True),
        sa.Column("log_index", sa.BigInteger, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_release_intents_status", "release_intents", ["status", "created_at"])
    op.create_index("ix_release_intents_tx_hash", "release_intents", ["tx_hash"])
    op.create_table(
        "relayer_transactions",
        sa.Column("tx_hash", sa.String(66), primary_key=True),
        sa.Column("sender", sa.String(42), nullable=False),
        sa.Column("nonce", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_relayer_transactions_status", "relayer_transactions", ["status", "nonce"])


def downgrade() -> None:
    op.drop_table("relayer_transactions")
    op.drop_table("release_intents")
