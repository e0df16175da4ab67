"""Automatic first response: runbook-declared actions run (or proposed) by warroom itself, the
guard that judges whether a mitigating action worked, and the limits a user relies on."""
