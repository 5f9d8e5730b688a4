"""Portal tables: customers, licences, add-on purchases, licence instances, signing keys.

Revision ID: portal_0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "portal_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "licences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("cloud", sa.Boolean, nullable=False),
        sa.Column("trial", sa.Boolean, nullable=False),
        sa.Column("starts_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("grace_period_days", sa.Integer, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_licences_customer_id", "licences", ["customer_id"])
    op.create_table(
        "addon_purchases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("licence_id", sa.Integer, sa.ForeignKey("licences.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("starts_at", sa.DateTime, nullable=False),
        sa.Column("ends_at", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_addon_purchases_licence_id", "addon_purchases", ["licence_id"])
    op.create_table(
        "licence_instances",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("licence_id", sa.Integer, sa.ForeignKey("licences.id"), nullable=False),
        sa.Column("instance_id", sa.String(128), nullable=False),
        sa.Column("host_name", sa.String(255), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("first_seen_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("licence_id", "instance_id"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("sealed_pem", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("signing_since", sa.DateTime, nullable=True),
        sa.Column("retired_at", sa.DateTime, nullable=True),
        sa.Column("tokens_valid_until", sa.DateTime, nullable=True),
    )
    op.create_index(
        "uq_signing_keys_one_signing",
        "signing_keys",
        ["state"],
        unique=True,
        sqlite_where=sa.text("state = 'signing'"),
        postgresql_where=sa.text("state = 'signing'"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("licence_instances")
    op.drop_table("addon_purchases")
    op.drop_table("licences")
    op.drop_table("customers")
