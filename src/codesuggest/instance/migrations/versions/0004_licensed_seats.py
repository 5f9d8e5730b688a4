"""add_on_purchases.licensed_quantity: the seats the license allows, from the portal sync

Revision ID: 0004_licensed_seats
Revises: 0003_admin_pages
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_licensed_seats"
down_revision = "0003_admin_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("add_on_purchases", sa.Column("licensed_quantity", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("add_on_purchases") as batch:
        batch.drop_column("licensed_quantity")
