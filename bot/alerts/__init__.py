"""Alert intake: payload models per source, normalisation, fingerprint, grouping and dedupe."""
