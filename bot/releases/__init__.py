"""What changed before an incident: release bundles and change events."""
