"""live agents: agents, tokens, assignments, audit columns, queue and SLA fields

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_status"), ["status"], unique=False)

    op.create_table(
        "agent_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_tokens_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.String(length=64), nullable=False),
        sa.Column("how", sa.String(length=24), nullable=False),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_agent_open", ["agent_id", "ended_at"], unique=False)
        batch_op.create_index(
            "uq_assignments_open",
            ["conversation_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )

    op.create_table(
        "handoff_locks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.execute("INSERT INTO handoff_locks (name) VALUES ('assignment')")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("handoff_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_breached_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("estimate_told_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("estimate_told_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_notice_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_agent_id"), ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_agent_id"))
        batch_op.drop_column("agent_id")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        for column in (
            "closed_notice_at",
            "estimate_told_at",
            "estimate_told_seconds",
            "sla_breached_at",
            "first_response_at",
            "handoff_at",
            "priority",
        ):
            batch_op.drop_column(column)
    op.drop_table("handoff_locks")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("uq_assignments_open")
        batch_op.drop_index("ix_assignments_agent_open")
    op.drop_table("assignments")
    with op.batch_alter_table("agent_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_tokens_agent_id"))
    op.drop_table("agent_tokens")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agents_status"))
    op.drop_table("agents")
