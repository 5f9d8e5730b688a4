"""IDE surface: which code-suggestion contexts the instance allows, and IDE telemetry columns
on usage_events (where the event came from, the client's tracking id)

Revision ID: 0003_ide_surface
Revises: 0002_usage_events
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ide_surface"
down_revision = "0002_usage_events"
branch_labels = None
depends_on = None

OLD_DEFAULT_VERSION = "17.0.0"
NEW_DEFAULT_VERSION = "18.3.0"


def upgrade() -> None:
    with op.batch_alter_table("application_settings") as batch:
        batch.add_column(
            sa.Column(
                "code_suggestions_contexts",
                sa.String(length=255),
                nullable=False,
                server_default="open_tabs imports",
            )
        )
    # The old default made IDEs skip the direct path (they ask for it from 17.2 on).
    op.execute(
        sa.text("UPDATE application_settings SET version = :new WHERE version = :old").bindparams(
            new=NEW_DEFAULT_VERSION, old=OLD_DEFAULT_VERSION
        )
    )
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("tracking_id", sa.String(length=64), nullable=True))
    op.create_index("ix_usage_events_tracking_id", "usage_events", ["tracking_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_tracking_id", table_name="usage_events")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("tracking_id")
        batch.drop_column("source")
    with op.batch_alter_table("application_settings") as batch:
        batch.drop_column("code_suggestions_contexts")
