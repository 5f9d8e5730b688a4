"""usage_events: usage shipped by the gateway, one row per event_id

Revision ID: 0002_usage_events
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_usage_events"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("realm", sa.String(length=32), nullable=True),
        sa.Column("instance_id", sa.String(length=64), nullable=True),
        sa.Column("global_user_id", sa.String(length=255), nullable=True),
        sa.Column("host_name", sa.String(length=255), nullable=True),
        sa.Column("language", sa.String(length=64), nullable=True),
        sa.Column("model_provider", sa.String(length=255), nullable=True),
        sa.Column("model_name", sa.String(length=255), nullable=True),
        sa.Column("path", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=128), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("suggestion_chars", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("client_name", sa.String(length=255), nullable=True),
        sa.Column("client_version", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_usage_events_day", "usage_events", ["day"])
    op.create_index("ix_usage_events_global_user_id", "usage_events", ["global_user_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_global_user_id", table_name="usage_events")
    op.drop_index("ix_usage_events_day", table_name="usage_events")
    op.drop_table("usage_events")
