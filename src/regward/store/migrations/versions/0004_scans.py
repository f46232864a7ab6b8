"""Add the scan tables: catalogs, matches and findings per image digest, and the package index.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from regward.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create `image_sboms`, `image_scans`, `image_findings` and `package_digests`."""
    op.create_table(
        "image_sboms",
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("catalog", _JSON, nullable=True),
        sa.Column("package_count", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), server_default="catalog", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cataloged_at", UtcDateTime(), nullable=False),
        sa.Column("catalog_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_image_sboms"),
    )
    op.create_table(
        "image_scans",
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("feed_revision", sa.Text(), nullable=False),
        sa.Column("matched_at", UtcDateTime(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["image_sboms.digest"],
            name="fk_image_scans_digest_image_sboms",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", name="pk_image_scans"),
    )
    op.create_table(
        "image_findings",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("vulnerability_id", sa.Text(), nullable=False),
        sa.Column("aliases", _JSON, nullable=False),
        sa.Column("package_name", sa.Text(), nullable=False),
        sa.Column("package_version", sa.Text(), nullable=False),
        sa.Column("package_type", sa.String(32), nullable=False),
        sa.Column("purl", sa.Text(), nullable=False),
        sa.Column("ecosystem", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("fixed", _JSON, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "severity IN ('unknown', 'low', 'medium', 'high', 'critical')",
            name="ck_image_findings_severity",
        ),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["image_scans.digest"],
            name="fk_image_findings_digest_image_scans",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_image_findings"),
    )
    op.create_index("ix_image_findings_digest", "image_findings", ["digest"])
    op.create_index("ix_image_findings_vulnerability_id", "image_findings", ["vulnerability_id"])
    op.create_table(
        "package_digests",
        sa.Column("ecosystem", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["image_sboms.digest"],
            name="fk_package_digests_digest_image_sboms",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "ecosystem", "name", "digest", "version", name="pk_package_digests"
        ),
    )
    op.create_index("ix_package_digests_digest", "package_digests", ["digest"])


def downgrade() -> None:
    """Drop the scan tables."""
    op.drop_index("ix_package_digests_digest", table_name="package_digests")
    op.drop_table("package_digests")
    op.drop_index("ix_image_findings_vulnerability_id", table_name="image_findings")
    op.drop_index("ix_image_findings_digest", table_name="image_findings")
    op.drop_table("image_findings")
    op.drop_table("image_scans")
    op.drop_table("image_sboms")
