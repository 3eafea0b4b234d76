"""telegram agent desk: agents' Telegram accounts, the desk's topics, posts and shared marks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 11:30:00

`agents.telegram_user_id` links an agent to their Telegram account. `desk_topics` holds one forum topic
per customer (unique), `desk_posts` the desk's stored outbox (unique keys: nothing is posted twice), and
`desk_state` the event cursor, the sender's lease and the group's health (bot/desk/).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_user_id", sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint("uq_agents_telegram_user_id", ["telegram_user_id"])
    op.create_table(
        "desk_topics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "customer_id",
            sa.Integer(),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("card_message_id", sa.BigInteger(), nullable=True),
        sa.Column("card_conversation_id", sa.Integer(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_desk_topics_thread_id", "desk_topics", ["thread_id"])
    op.create_table(
        "desk_posts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(96), nullable=False, unique=True),
        sa.Column(
            "topic_id", sa.Integer(), sa.ForeignKey("desk_topics.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("platform_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_desk_posts_status", "desk_posts", ["status", "id"])
    op.create_table(
        "desk_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("desk_state")
    op.drop_index("ix_desk_posts_status", table_name="desk_posts")
    op.drop_table("desk_posts")
    op.drop_index("ix_desk_topics_thread_id", table_name="desk_topics")
    op.drop_table("desk_topics")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_agents_telegram_user_id", type_="unique")
        batch_op.drop_column("telegram_user_id")
