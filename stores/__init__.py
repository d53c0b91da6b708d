"""Online stores (SQLite, Redis) and the offline store (DuckDB over files)."""
