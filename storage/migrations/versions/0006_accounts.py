"""A person has one linked account per chat platform (accounts), instead of one platform id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("person_id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_accounts_person_id_people"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("person_id", "platform", name=op.f("uq_accounts_person_id_platform")),
        sa.UniqueConstraint("platform", "user_id", name=op.f("uq_accounts_platform_user_id")),
    )
    # The ids resolved so far become each person's account on their platform.
    op.execute(
        "INSERT INTO accounts (person_id, platform, user_id, linked_at) "
        "SELECT id, platform, platform_user_id, created_at FROM people WHERE platform IS NOT NULL AND platform_user_id IS NOT NULL"
    )
    with op.batch_alter_table("people") as batch:
        batch.drop_constraint("uq_people_platform_platform_user_id", type_="unique")
        batch.drop_column("platform_user_id")


def downgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("platform_user_id", sa.String(length=200), nullable=True))
        batch.create_unique_constraint("uq_people_platform_platform_user_id", ["platform", "platform_user_id"])
    op.execute(
        "UPDATE people SET platform_user_id = "
        "(SELECT a.user_id FROM accounts a WHERE a.person_id = people.id AND a.platform = people.platform)"
    )
    op.drop_table("accounts")
