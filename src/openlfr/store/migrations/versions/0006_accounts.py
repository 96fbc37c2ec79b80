"""Accounts hardening: the two-person rule for role grants, enrolment codes, login throttling
and store-kept counters.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COUNTERS = ("login-refused", "login-throttled", "login-lockout")
USER_COLUMNS = (
    ("pending_role", sa.String(40)),
    ("pending_by", sa.String(100)),
    ("pending_at", sa.DateTime(timezone=True)),
    ("enrol_code_sha256", sa.String(64)),
    ("enrol_expires_at", sa.DateTime(timezone=True)),
)


# Plain ALTER TABLE, not batch mode (see 0003): recreating users would cascade to its sessions.
def upgrade() -> None:
    for name, kind in USER_COLUMNS:
        op.add_column("users", sa.Column(name, kind, nullable=True))
    op.create_table(
        "login_throttle",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("lockouts", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    # Seeded, so that counting is a plain UPDATE: no insert race between processes.
    op.bulk_insert(counters, [{"name": name, "value": 0} for name in COUNTERS])


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_table("login_throttle")
    for name, _ in reversed(USER_COLUMNS):
        op.drop_column("users", name)
