"""Add the `deployments` table: containers of admitted Kubernetes workloads over time.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from regward.store.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `deployments` and its indexes."""
    op.create_table(
        "deployments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("container", sa.Text(), nullable=False),
        sa.Column("container_list", sa.String(32), nullable=False),
        sa.Column("image", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=True),
        sa.Column("admitted_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("request_uid", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index(
        "ix_deployments_workload", "deployments", ["namespace", "kind", "name", "ended_at"]
    )
    op.create_index("ix_deployments_admitted_at", "deployments", ["admitted_at"])


def downgrade() -> None:
    """Drop `deployments`."""
    op.drop_index("ix_deployments_admitted_at", table_name="deployments")
    op.drop_index("ix_deployments_workload", table_name="deployments")
    op.drop_table("deployments")
