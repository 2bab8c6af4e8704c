"""Grants, revocations and pauses answered 2xx that a chain which came back behind refused when
their stored transaction was sent again (vault/reconcile.py), one row per call.

Revision ID: 0012_recon_flags
Revises: 0011_relay_nonces
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_recon_flags"
down_revision = "0011_relay_nonces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lost_calls",
        sa.Column("tx_hash", sa.String(66), primary_key=True),
        sa.Column("call_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("grant_id", sa.String(66), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("flagged_at", sa.Float, nullable=False),
    )
    op.create_index("ix_lost_calls_grant", "lost_calls", ["grant_id"])


def downgrade() -> None:
    op.drop_index("ix_lost_calls_grant", table_name="lost_calls")
    op.drop_table("lost_calls")
