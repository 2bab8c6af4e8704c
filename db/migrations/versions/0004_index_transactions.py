"""Chain indexer: ledger transactions (reverted ones included), release deadlines and signatures.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the grantee's signed release request, from the calldata of the release's transaction
    # (a uint256 deadline may not fit a BIGINT: decimal text)
    op.add_column("ledger_events", sa.Column("deadline", sa.String(78), nullable=True))
    op.add_column("ledger_events", sa.Column("signature", sa.Text, nullable=True))
    op.create_table(
        "ledger_transactions",
        sa.Column("hash", sa.String(66), primary_key=True),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("tx_index", sa.Integer, nullable=False),
        sa.Column("sender", sa.String(42), nullable=False),
        sa.Column("recipient", sa.String(42), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
    )
    op.create_index("ix_ledger_transactions_position", "ledger_transactions", ["block_number", "tx_index"])


def downgrade() -> None:
    op.drop_index("ix_ledger_transactions_position", "ledger_transactions")
    op.drop_table("ledger_transactions")
    # SQLite drops columns by copying the table (batch mode keeps its constraints and indexes)
    with op.batch_alter_table("ledger_events") as batch:
        batch.drop_column("signature")
        batch.drop_column("deadline")
