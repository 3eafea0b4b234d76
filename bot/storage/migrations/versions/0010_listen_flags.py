"""Code Red and Code Green: flags on conversations, each with the signal that raised it and why

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-06 11:45:00

`conversation_flags` holds one row per (conversation, kind, signal): kind "code_red" (a likely unhappy
customer) or "kudos" (praise for the team); `signal` names what raised it, `reason` says why in words and
figures. `conversations.code_red_at` marks a flagged conversation for the queue and the console.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_flags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.Integer(),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("reason", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("conversation_id", "kind", "signal", name="uq_conversation_flags_signal"),
    )
    op.create_index("ix_conversation_flags_kind_created_at", "conversation_flags", ["kind", "created_at"])
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_red_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("code_red_at")
    op.drop_index("ix_conversation_flags_kind_created_at", table_name="conversation_flags")
    op.drop_table("conversation_flags")
