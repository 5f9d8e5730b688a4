"""revocation_outbox: revocations the instance pushes to the gateway, kept until delivered

Revision ID: 0005_revocation_outbox
Revises: 0004_licensed_seats
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_revocation_outbox"
down_revision = "0004_licensed_seats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocation_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("push_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issued_before", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("push_id"),
    )
    op.create_index("ix_revocation_outbox_user_id", "revocation_outbox", ["user_id"])
    op.create_index(
        "ix_revocation_outbox_next_attempt_at", "revocation_outbox", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("revocation_outbox")
