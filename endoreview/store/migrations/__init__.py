"""Alembic migrations for the label database (run programmatically by :mod:`endoreview.store.migrate`)."""
