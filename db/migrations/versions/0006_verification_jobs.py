"""Verification jobs kept in the database (queued by the API, run by the worker).

Revision ID: 0006_verification_jobs
Revises: 0005_hostile
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_verification_jobs"
down_revision = "0005_hostile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("from_block", sa.BigInteger, nullable=False),
        sa.Column("to_block", sa.BigInteger, nullable=False),
        sa.Column("total_events", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("report", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_verification_jobs_status", "verification_jobs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("verification_jobs")
