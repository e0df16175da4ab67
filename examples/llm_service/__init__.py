"""An example LLM-style service (no real model) that warroom's playbooks act on in demos and tests."""

from __future__ import annotations

from .app import create_app
from .state import ServiceState

__all__ = ["ServiceState", "create_app"]
