"""OpenTelemetry (OTLP/HTTP) trace ingest: decode export requests, map GenAI spans to trace events."""
