"""LLM traces: ingest, failure rules, late failures, impact and Prometheus counters."""
