"""the inbound spool: webhook bodies stored before they are acknowledged

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00

`inbound_spool` keeps each acknowledged webhook body (WhatsApp) as received until every item in it has
been processed, so a crash between Meta's 200 and the engine storing the message loses nothing: another
start replays it (bot/spool.py). A partial index finds the unprocessed rows; processed ones are purged
after `spool.keep_processed_days`, by `processed_at`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_UNPROCESSED = sa.text("processed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "inbound_spool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inbound_spool_unprocessed",
        "inbound_spool",
        ["claimed_until"],
        unique=False,
        sqlite_where=_UNPROCESSED,
        postgresql_where=_UNPROCESSED,
    )
    op.create_index("ix_inbound_spool_processed_at", "inbound_spool", ["processed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbound_spool_processed_at", table_name="inbound_spool")
    op.drop_index("ix_inbound_spool_unprocessed", table_name="inbound_spool")
    op.drop_table("inbound_spool")
