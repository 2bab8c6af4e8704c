"""Chain indexer: indexed block headers, ledger events, indexer cursors.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_EVENT_INDEXES: dict[str, list[str]] = {
    "ix_ledger_events_position": ["block_number", "log_index"],
    "ix_ledger_events_event": ["event", "block_number"],
    "ix_ledger_events_tx_hash": ["tx_hash"],
    "ix_ledger_events_grant_id": ["grant_id"],
    "ix_ledger_events_subject": ["subject", "block_number"],
    "ix_ledger_events_grantee": ["grantee", "block_number"],
    "ix_ledger_events_consumer": ["consumer", "block_number"],
    "ix_ledger_events_resource": ["resource", "block_number"],
    "ix_ledger_events_emergency_id": ["emergency_id"],
    "ix_ledger_events_request_id": ["request_id"],
    "ix_ledger_events_document_id": ["document_id"],
    "ix_ledger_events_account": ["account"],
}


def upgrade() -> None:
    op.create_table(
        "indexed_blocks",
        sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("parent_hash", sa.String(66), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_events",
        # SQLite auto-increments only an INTEGER PRIMARY KEY; elsewhere the id is 64-bit.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("tx_index", sa.Integer, nullable=False),
        sa.Column("contract", sa.String(42), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(66), nullable=True),
        sa.Column("subject", sa.String(42), nullable=True),
        sa.Column("grantee", sa.String(42), nullable=True),
        sa.Column("consumer", sa.String(42), nullable=True),
        sa.Column("resource", sa.String(66), nullable=True),
        sa.Column("emergency_id", sa.String(66), nullable=True),
        sa.Column("request_id", sa.String(66), nullable=True),
        sa.Column("document_id", sa.String(66), nullable=True),
        sa.Column("account", sa.String(42), nullable=True),
        sa.Column("args", sa.Text, nullable=False),
        sa.UniqueConstraint("block_hash", "log_index", name="uq_ledger_events_block_log"),
    )
    for name, columns in _EVENT_INDEXES.items():
        op.create_index(name, "ledger_events", columns)
    op.create_table(
        "indexer_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_block", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(66), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("indexer_state")
    for name in reversed(_EVENT_INDEXES):
        op.drop_index(name, "ledger_events")
    op.drop_table("ledger_events")
    op.drop_table("indexed_blocks")
