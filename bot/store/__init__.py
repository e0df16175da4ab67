"""The database: engine and sessions, tables, the fast statement path, the outbox."""
