"""State: SQLAlchemy models, the engine, and Alembic upgrades."""
