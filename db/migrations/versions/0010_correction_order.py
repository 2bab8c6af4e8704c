"""Corrections keep the nanosecond of their opening, so a list is newest first even within one second.

Revision ID: 0010_correction_order
Revises: 0009_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_correction_order"
down_revision = "0009_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.add_column(sa.Column("opened_ns", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("opened_ns")
