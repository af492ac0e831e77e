"""Alembic migrations of the run tables (run by `app.services.runner.migrate`, never by hand)."""
