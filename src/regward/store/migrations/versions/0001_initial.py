"""Create the audit log and the tag claims.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Create `audit_log` with its indexes, and `tag_claims`."""
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("identity", sa.Text(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("digest", sa.Text(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("policy_revision", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('pull', 'push', 'delete')", name=op.f("ck_audit_log_action")
        ),
        sa.CheckConstraint(
            "decision IN ('allow', 'deny', 'warn', 'audit', 'error')",
            name=op.f("ck_audit_log_decision"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_repository_time", "audit_log", ["repository", "time"])
    op.create_index("ix_audit_log_digest", "audit_log", ["digest"])

    op.create_table(
        "tag_claims",
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repository", "tag", name=op.f("pk_tag_claims")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("tag_claims")
    op.drop_index("ix_audit_log_digest", table_name="audit_log")
    op.drop_index("ix_audit_log_repository_time", table_name="audit_log")
    op.drop_table("audit_log")
