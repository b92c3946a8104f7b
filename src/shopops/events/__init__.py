"""The event log: CDC in, domain events out. Port, backends (sqlite, kafka), Debezium codec."""
