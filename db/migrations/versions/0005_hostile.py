"""Catalog entries' off-chain facts: ``self_declared`` (SPEC §6.1 v1.1, provenance of releases).

Revision ID: 0005_hostile
Revises: 0005_release_path
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_hostile"
down_revision = "0005_release_path"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_entries",
        sa.Column("resource_id", sa.String(66), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("self_declared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_entries")
