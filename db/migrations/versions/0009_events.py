"""Notifications (SPEC §9.1): events with a per-member sequence, one-time markers, chain clocks,
webhooks, their deliveries and attempts.

Revision ID: 0009_events
Revises: 0008_grant_terms
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_events"
down_revision = "0008_grant_terms"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_counters",
        sa.Column("member", sa.String(42), primary_key=True),
        sa.Column("last", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("member", sa.String(42), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("block_number", sa.BigInteger, nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("source_block", sa.BigInteger, nullable=True),
        sa.Column("retracted", sa.Boolean, nullable=False),
        sa.UniqueConstraint("member", "sequence", name="uq_events_member_sequence"),
    )
    op.create_index("ix_events_source_block", "events", ["source_block"])
    op.create_table(
        "event_markers",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("source_block", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "event_clocks",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("source_block", sa.BigInteger, nullable=False),
        sa.Column("cancelled_block", sa.BigInteger, nullable=True),
        sa.Column("fired_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_event_clocks_due", "event_clocks", ["fired_at", "due_at"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_webhooks_owner", "webhooks", ["owner"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("first_attempt_at", sa.Float, nullable=True),
        sa.Column("last_attempt_at", sa.Float, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index("ix_webhook_deliveries_queue", "webhook_deliveries", ["status", "webhook_id", "sequence"])
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "sequence"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_delivery", "webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_webhook", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_queue", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_owner", "webhooks")
    op.drop_table("webhooks")
    op.drop_index("ix_event_clocks_due", "event_clocks")
    op.drop_table("event_clocks")
    op.drop_table("event_markers")
    op.drop_index("ix_events_source_block", "events")
    op.drop_table("events")
    op.drop_table("event_counters")
