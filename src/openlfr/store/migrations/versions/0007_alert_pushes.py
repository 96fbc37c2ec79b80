"""Alerts pushed out: a deployment's webhook and MQTT endpoints, with their delivery counts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_pushes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "deployment_id",
            sa.Integer,
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("probe_image", sa.Boolean, nullable=False),
        sa.Column("configured_by", sa.String(200), nullable=False),
        sa.Column("configured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("dropped", sa.Integer, nullable=False),
        sa.UniqueConstraint("deployment_id", "kind", name="uq_alert_pushes_deployment_id_kind"),
    )


def downgrade() -> None:
    op.drop_table("alert_pushes")
