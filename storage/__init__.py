"""Persistence: SQLAlchemy models, units of work, queries and Alembic migrations."""
