"""An account's next nonce shared by the processes that send with it (`qcl serve --workers N`).

Revision ID: 0011_relay_nonces
Revises: 0010_correction_order
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_relay_nonces"
down_revision = "0010_correction_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_nonces",
        sa.Column("account", sa.String(42), primary_key=True),
        sa.Column("next", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("relay_nonces")
