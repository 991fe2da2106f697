"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from storage.db import downgrade, sync_url, upgrade
from storage.models import Base

EXPECTED_TABLES = {
    "program_versions",
    "people",
    "cohorts",
    "memberships",
    "consents",
    "deliveries",
    "inbound_events",
    "checkin_answers",
    "checkin_notes",
    "behavior_signals",
    "rehearsal_sessions",
    "feedback_reviews",
    "digests",
    "audit_log",
    "member_weeks",
    "workspace_bots",
    "workspace_installations",
    "oauth_states",
    "conversation_refs",
    "plan_versions",
    "nudge_feedback",
    "accounts",
    "heartbeats",
    "week_figures",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table(db_url: str) -> None:
    upgrade(db_url)
    assert _tables(db_url) == EXPECTED_TABLES


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    upgrade(db_url)
    assert _tables(db_url) == EXPECTED_TABLES


def test_upgrade_twice_is_harmless(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    assert _tables(db_url) == EXPECTED_TABLES
