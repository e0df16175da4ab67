"""Quality sensors of the built-in watcher: drift (PSI) and failure-rate spikes, from stored traces."""
