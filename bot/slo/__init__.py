"""SLOs: definition files, generated Prometheus burn-rate rules, and the built-in watcher's math."""

from __future__ import annotations

from bot.slo.burn import BurnAlert, budget_consumed, evaluate, to_alertmanager_payload
from bot.slo.rules import alertmanager_snippet, prometheus_rules, slo_rules_main
from bot.slo.spec import SLO, SLOFileError, check_slos, load_slos
from bot.slo.windows import WindowSet

__all__ = [
    "SLO",
    "BurnAlert",
    "SLOFileError",
    "WindowSet",
    "alertmanager_snippet",
    "budget_consumed",
    "check_slos",
    "evaluate",
    "load_slos",
    "prometheus_rules",
    "slo_rules_main",
    "to_alertmanager_payload",
]
