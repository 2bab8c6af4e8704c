"""Grant terms the status of a grant depends on, as columns: lists page and filter by status in SQL.

Revision ID: 0008_grant_terms
Revises: 0007_rights

A grant's id is the EIP-712 digest of its terms, so these copies cannot differ from the chain's;
what changes (uses, pause, revocation) is read from the indexed chain events only.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008_grant_terms"
down_revision = "0007_rights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("valid_from", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("valid_until", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("max_uses", sa.BigInteger, nullable=False, server_default="0"))
    grants = sa.table(
        "grants",
        sa.column("grant_id", sa.String),
        sa.column("terms", sa.Text),
        sa.column("valid_from", sa.BigInteger),
        sa.column("valid_until", sa.BigInteger),
        sa.column("max_uses", sa.BigInteger),
    )
    connection = op.get_bind()
    for grant_id, terms in connection.execute(sa.select(grants.c.grant_id, grants.c.terms)).all():
        message = json.loads(terms)
        connection.execute(
            grants.update()
            .where(grants.c.grant_id == grant_id)
            .values(
                valid_from=int(message["validFrom"]),
                valid_until=int(message["validUntil"]),
                max_uses=int(message["maxUses"]),
            )
        )
    op.create_index("ix_grants_order", "grants", ["block_number", "grant_id"])


def downgrade() -> None:
    op.drop_index("ix_grants_order", table_name="grants")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("max_uses")
        batch.drop_column("valid_until")
        batch.drop_column("valid_from")
