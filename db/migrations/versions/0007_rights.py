"""Rights and service clocks (SPEC §9.2-9.5): purposes, corrections, data demands, access-request expiry.

Revision ID: 0007_rights
Revises: 0006_verification_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_rights"
down_revision = "0006_verification_jobs"
branch_labels = None
depends_on = None

#: Requests made before expiry existed get the default lifetime (7 days) from their creation.
_DEFAULT_LIFETIME = 7 * 86400


def upgrade() -> None:
    op.create_table(
        "purposes",
        sa.Column("code", sa.String(128), primary_key=True),
        sa.Column("purpose_id", sa.String(66), nullable=False, unique=True),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(42), nullable=False),
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("document_id", sa.String(66), nullable=False),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("issuer", sa.String(42), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("claim", sa.Text, nullable=False),
        sa.Column("evidence", sa.LargeBinary, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("new_document_id", sa.String(66), nullable=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("open_commitment", sa.String(66), nullable=False),
        sa.Column("open_tx", sa.String(66), nullable=True),
        sa.Column("outcome_commitment", sa.String(66), nullable=True),
        sa.Column("outcome_tx", sa.String(66), nullable=True),
    )
    op.create_index("ix_corrections_subject", "corrections", ["subject", "opened_at"])
    op.create_index("ix_corrections_issuer", "corrections", ["issuer", "opened_at"])
    op.create_index("ix_corrections_document", "corrections", ["document_id"])
    op.create_table(
        "demands",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("consumer", sa.String(42), nullable=False),
        sa.Column("provider", sa.String(42), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("resource_code", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("confirm_by", sa.BigInteger, nullable=False),
        sa.Column("publish_by", sa.BigInteger, nullable=False),
        sa.Column("confirmed_at", sa.BigInteger, nullable=True),
        sa.Column("refused_at", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("published_at", sa.BigInteger, nullable=True),
        sa.Column("published_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_demands_consumer", "demands", ["consumer", "created_at"])
    op.create_index("ix_demands_provider", "demands", ["provider", "created_at"])
    op.add_column("access_requests", sa.Column("expires_at", sa.BigInteger, nullable=True))
    op.execute(f"UPDATE access_requests SET expires_at = created_at + {_DEFAULT_LIFETIME}")


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_demands_provider", "demands")
    op.drop_index("ix_demands_consumer", "demands")
    op.drop_table("demands")
    op.drop_index("ix_corrections_document", "corrections")
    op.drop_index("ix_corrections_issuer", "corrections")
    op.drop_index("ix_corrections_subject", "corrections")
    op.drop_table("corrections")
    op.drop_table("purposes")
