"""A camera's health in columns of its own: its state, crashes and restarts, the last crash's
cause and time, the seconds it was down, its frame rate and the time of its last frame (what the
deployment board shows live). ``error`` keeps only the error that stopped a camera for good.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (
    ("state", sa.String(20), None),
    ("crashes", sa.Integer, "0"),
    ("restarts", sa.Integer, "0"),
    ("last_crash", sa.Text, None),
    ("last_crash_at", sa.DateTime(timezone=True), None),
    ("down_s", sa.Float, "0"),
    ("fps", sa.Float, None),
    ("last_frame_at", sa.DateTime(timezone=True), None),
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
