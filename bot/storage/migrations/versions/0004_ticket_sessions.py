"""event tickets know the log-in session they were issued under

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:30:00

`agent_tokens.parent_id`: for an event ticket, the token (session) that asked for it. A ticket is only
redeemed while that session lives, and the event stream it opens ends when the session does (log-out,
password change, deactivation). Tickets issued before this revision have none and are no longer
accepted; they lived 30 seconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_agent_tokens_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_agent_tokens_parent_id", "agent_tokens", ["parent_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("fk_agent_tokens_parent_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_agent_tokens_parent_id"))
        batch_op.drop_column("parent_id")
