"""Face models: a reference image holds one template per model, and a deployment records the
model it searches with.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = "id, image_id, model, embedding, box, quality, quality_score"


def _templates(name: str, unique: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer,
            sa.ForeignKey("reference_images.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("quality", sa.JSON, nullable=False),
        sa.Column("quality_score", sa.Float, nullable=False),
        sa.UniqueConstraint(*unique, name=f"uq_{name}_{'_'.join(unique)}"),
    )


def _rebuild(unique: tuple[str, ...]) -> None:
    # The old table's unique constraint on image_id has no name to drop portably, so the
    # table is rebuilt with the new one and its rows copied over, ids kept.
    _templates("templates_rebuilt", unique)
    op.execute(f"INSERT INTO templates_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM templates")
    op.drop_table("templates")
    op.rename_table("templates_rebuilt", "templates")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('templates', 'id'), "
            "COALESCE((SELECT MAX(id) FROM templates), 0) + 1, false)"
        )
    op.create_index("ix_templates_model", "templates", ["model"])


# The deployments column by plain ALTER TABLE, not batch mode (see 0004): a batch "recreate"
# would drop deployments, and with foreign keys on that cascades to cameras and alerts.
# Rebuilding templates is safe: no table refers to it.
def upgrade() -> None:
    _rebuild(("image_id", "model"))
    op.add_column("deployments", sa.Column("model", sa.String(100), nullable=True))
    # Every deployment planned before this revision searched with dlib's model.
    op.execute("UPDATE deployments SET model = 'dlib-resnet-v1'")


def downgrade() -> None:
    op.drop_column("deployments", "model")
    op.execute("DELETE FROM templates WHERE model <> 'dlib-resnet-v1'")
    op.drop_index("ix_templates_model", "templates")
    _rebuild(("image_id",))
