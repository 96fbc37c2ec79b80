"""Governance: each watchlist entry's legal basis and authoriser, and a deployment's
authorisation record (area, DPIA and equality references, signage, authoriser, threshold
override).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


PURGED = ("alerts", "true_alerts", "false_alerts", "engagements", "arrests")


# Existing rows predate these rules: they get an empty value, not an invented one, so a
# report shows them as unrecorded.
def _subject_columns() -> tuple[sa.Column, ...]:  # fresh Column objects for each use
    return (
        sa.Column("legal_basis", sa.Text, nullable=False, server_default=""),
        sa.Column("authorised_by", sa.Text, nullable=False, server_default=""),
        sa.Column("review_flag", sa.Text, nullable=True),
        sa.Column("date_of_birth", sa.Date, nullable=True),
    )


def _deployment_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("area", sa.Text, nullable=False, server_default=""),
        sa.Column("dpia_ref", sa.Text, nullable=False, server_default=""),
        sa.Column("equality_ref", sa.Text, nullable=False, server_default=""),
        sa.Column("signage_confirmed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("authorised_by", sa.Text, nullable=True),
        sa.Column("authorised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("threshold_override_reason", sa.Text, nullable=True),
        # What retention purged, as counts: the transparency report still adds them up.
        *(
            sa.Column(f"purged_{what}", sa.Integer, nullable=False, server_default="0")
            for what in PURGED
        ),
    )


# Plain ALTER TABLE, not batch mode: on SQLite a batch "recreate" drops and re-creates the
# table, and with foreign keys on, dropping deployments would cascade to its cameras and alerts
# (and subjects to their images). Both SQLite (3.35+ for DROP COLUMN) and PostgreSQL do these
# in place.
def upgrade() -> None:
    for column in _subject_columns():
        op.add_column("subjects", column)
    for column in _deployment_columns():
        op.add_column("deployments", column)


def downgrade() -> None:
    for column in reversed(_deployment_columns()):
        op.drop_column("deployments", column.name)
    for column in reversed(_subject_columns()):
        op.drop_column("subjects", column.name)
