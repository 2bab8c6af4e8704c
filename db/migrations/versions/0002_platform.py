"""Platform tables of the API: login nonces, member profiles, grants, access requests,
emergencies, operator actions.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "member_profiles",
        sa.Column("address", sa.String(42), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("org_code", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(42), nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(66), primary_key=True),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("grantee", sa.String(42), nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("relayed_by", sa.String(42), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_grants_subject", "grants", ["subject"])
    op.create_index("ix_grants_grantee", "grants", ["grantee"])
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("consumer", sa.String(42), nullable=False),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(128), nullable=False),
        sa.Column("valid_for", sa.BigInteger, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.String(66), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("answered_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_access_requests_subject", "access_requests", ["subject"])
    op.create_index("ix_access_requests_consumer", "access_requests", ["consumer"])
    op.create_table(
        "emergencies",
        sa.Column("emergency_id", sa.String(66), primary_key=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("reason_text", sa.Text, nullable=False),
        sa.Column("proposer", sa.String(42), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("actor", sa.String(42), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(66), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("actions", "emergencies", "access_requests", "grants", "member_profiles", "auth_nonces"):
        op.drop_table(table)
