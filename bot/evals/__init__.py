"""Failing traces become eval cases, suites and a gate on the next release bundle."""
