"""The lakehouse: CDC change events ingested into Apache Iceberg tables, exactly once."""
