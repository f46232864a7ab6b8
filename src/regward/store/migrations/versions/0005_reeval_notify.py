"""Add re-evaluation jobs and state, portfolio membership, and webhook notifications.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from regward.store.models import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the re-evaluation, portfolio and notification tables."""
    op.create_table(
        "reeval_jobs",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("feed_revision", sa.Text(), nullable=False),
        sa.Column("previous_revision", sa.Text(), nullable=True),
        sa.Column("keys", _JSON, nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('delta', 'full')", name="ck_reeval_jobs_kind"),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'done', 'failed')", name="ck_reeval_jobs_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reeval_jobs"),
    )
    op.create_index("ix_reeval_jobs_state_id", "reeval_jobs", ["state", "id"])

    op.create_table(
        "reeval_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_reeval_state"),
    )

    op.create_table(
        "reeval_changes",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("feed_revision", sa.Text(), nullable=False),
        sa.Column("added", _JSON, nullable=False),
        sa.Column("removed", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reeval_changes"),
    )
    op.create_index("ix_reeval_changes_time", "reeval_changes", ["time"])

    op.create_table(
        "portfolio_images",
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('pull', 'push', 'enroll', 'promote')", name="ck_portfolio_images_source"
        ),
        sa.PrimaryKeyConstraint("repository", "digest", name="pk_portfolio_images"),
    )
    op.create_index("ix_portfolio_images_digest", "portfolio_images", ["digest"])

    op.create_table(
        "portfolio_tags",
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("repository", "tag", name="pk_portfolio_tags"),
    )
    op.create_index("ix_portfolio_tags_digest", "portfolio_tags", ["digest"])

    op.create_table(
        "notification_events",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_events"),
        sa.UniqueConstraint("event_id", name="uq_notification_events_event_id"),
    )
    op.create_index("ix_notification_events_digest", "notification_events", ["digest"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", _ROW_ID, nullable=False),
        sa.Column("webhook", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'dead')", name="ck_webhook_deliveries_state"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name="fk_webhook_deliveries_event_id_notification_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt_at",
        "webhook_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])


def downgrade() -> None:
    """Drop the tables of this revision."""
    op.drop_index("ix_webhook_deliveries_event_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_state_next_attempt_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_notification_events_digest", table_name="notification_events")
    op.drop_table("notification_events")
    op.drop_index("ix_portfolio_tags_digest", table_name="portfolio_tags")
    op.drop_table("portfolio_tags")
    op.drop_index("ix_portfolio_images_digest", table_name="portfolio_images")
    op.drop_table("portfolio_images")
    op.drop_index("ix_reeval_changes_time", table_name="reeval_changes")
    op.drop_table("reeval_changes")
    op.drop_table("reeval_state")
    op.drop_index("ix_reeval_jobs_state_id", table_name="reeval_jobs")
    op.drop_table("reeval_jobs")
