"""What running cameras across several hosts needs in the camera's row: the Ray custom resource
that pins a camera to the nodes that can reach it, and the node it last ran on; and what the
control room's /metrics and board read: the share of frames dropped over the last counts,
searches made, their total time and their time histogram (JSON bucket counts).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("resource", sa.String(100), None),
    ("node", sa.String(200), None),
    ("drop_rate", sa.Float, None),
    ("searches", sa.Integer, "0"),
    ("search_s", sa.Float, "0"),
    ("search_hist", sa.Text, None),
)


def upgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        for name, kind, default in COLUMNS:
            batch.add_column(
                sa.Column(name, kind, nullable=default is None, server_default=default)
            )


def downgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        for name, _, _ in reversed(COLUMNS):
            batch.drop_column(name)
