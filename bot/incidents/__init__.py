"""Incident lifecycle, timeline and metrics."""
