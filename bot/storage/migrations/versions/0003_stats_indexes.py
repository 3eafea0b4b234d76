"""indexes for the support lead's numbers: what bot/stats.py and bot/misses.py read by time

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:30:00

Every figure of `supportbot stats` (and `kb misses`) reads one window of time: conversations started
(`created_at`), handed off (`handoff_at`), resolved (`resolved_at`) or flagged (`sla_breached_at`) in it,
customer messages written in it (`created_at`) and events of one kind in it (`kind`, `created_at`).
Without these indexes each of those queries reads its whole table. `ix_events_kind_created_at` answers
everything `ix_events_kind` did (same leading column), so it replaces it.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_CONVERSATION_TIMES = ("created_at", "handoff_at", "resolved_at", "sla_breached_at")


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        for column in _CONVERSATION_TIMES:
            batch_op.create_index(batch_op.f(f"ix_conversations_{column}"), [column], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_created_at"), ["created_at"], unique=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_kind_created_at", ["kind", "created_at"], unique=False)
        batch_op.drop_index(batch_op.f("ix_events_kind"))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_kind"), ["kind"], unique=False)
        batch_op.drop_index("ix_events_kind_created_at")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_created_at"))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        for column in reversed(_CONVERSATION_TIMES):
            batch_op.drop_index(batch_op.f(f"ix_conversations_{column}"))
