"""MLflow tracking and model registry: SQLite and local artifacts by default, PostgreSQL and S3 by config."""
