"""conversation slots: what custom actions set, kept for the next action's tracker

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

`conversations.slots` holds the slots rasa-sdk actions set with SlotSet (bot/actions); NULL means none.
`Restarted` clears it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slots", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("slots")
