"""The outbox's claim index also orders by id, so a claim reads only the rows it takes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_next_attempt_at_id", "deliveries", ["status", "next_attempt_at", "id"], unique=False)
    op.drop_index("ix_deliveries_status_next_attempt_at", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"], unique=False)
    op.drop_index("ix_deliveries_status_next_attempt_at_id", table_name="deliveries")
