"""Add the `static_tokens` table of `regward token`: scoped, expiring tokens stored as hashes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from regward.store.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `static_tokens`."""
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "static_tokens",
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("repositories", json_type, nullable=False),
        sa.Column("actions", json_type, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_address", sa.Text(), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("previous_secret_hash", sa.String(64), nullable=True),
        sa.Column("previous_valid_until", UtcDateTime(), nullable=True),
        sa.Column("rotated_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_static_tokens"),
    )


def downgrade() -> None:
    """Drop `static_tokens`."""
    op.drop_table("static_tokens")
