"""The durable store on SQLAlchemy Core (SQLite embedded, PostgreSQL in production): the only package that speaks SQL."""
