"""warroom: incident-response ChatOps for teams running LLM features in production."""

__version__ = "0.1.0"
