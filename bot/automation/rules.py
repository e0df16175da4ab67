"""What a runbook's ``auto:`` list declares, and whether one entry applies to an incident.

An entry either ``run``s an unattended playbook (undoable, verified, no second person) or
``propose``s any playbook, which then waits in the channel for a person's approval::

    auto:
      - run: fallback
        max_severity: 2            # SEV1–2 only (the default)
        slo: [hallucination-rate]  # optional: only for these SLOs
        match: ['model="primary-70b"']  # optional: Alertmanager matchers on the incident's labels
        changed_within_minutes: 180     # optional: only when the service changed that recently
        delay_seconds: 0
        undo_if_not_improved: true      # the guard undoes it when the SLI is not better in time
      - propose: rollback
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.matchers import parse_matcher


class AutoRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    run: str | None = None
    propose: str | None = None
    params: dict[str, str | int | bool] = {}
    max_severity: int = Field(default=2, ge=1, le=4)
    slo: list[str] = []
    match: list[str] = []
    changed_within_minutes: int | None = Field(default=None, gt=0)
    delay_seconds: int = Field(default=0, ge=0, le=3600)
    undo_if_not_improved: bool = False

    @model_validator(mode="after")
    def _one_action(self) -> AutoRule:
        if (self.run is None) == (self.propose is None):
            raise ValueError("give exactly one of 'run: <playbook>' or 'propose: <playbook>'")
        return self

    @property
    def playbook(self) -> str:
        return self.run or self.propose or ""

    @property
    def proposes(self) -> bool:
        return self.propose is not None

    def describe(self) -> str:
        parts = [f"SEV{self.max_severity} or worse" if self.max_severity < 4 else "any severity"]
        if self.slo:
            parts.append("SLO " + "/".join(self.slo))
        if self.match:
            parts.append(", ".join(self.match))
        if self.changed_within_minutes:
            parts.append(f"a change in the {self.changed_within_minutes} min before")
        return "; ".join(parts)


@dataclass(frozen=True)
class Facts:
    """What a rule's conditions read about an incident."""

    severity: int
    slo: str | None
    labels: Mapping[str, str]
    last_change_at: datetime | None
    opened_at: datetime


def why_not(rule: AutoRule, facts: Facts) -> str | None:
    """None when the rule applies; otherwise the condition that does not hold, in words."""
    if facts.severity > rule.max_severity:
        return f"the incident is SEV{facts.severity} and the rule is for SEV{rule.max_severity} or worse"
    if rule.slo and facts.slo not in rule.slo:
        return f"the SLO is {facts.slo or 'not named'}, not {'/'.join(rule.slo)}"
    for text in rule.match:
        if not parse_matcher(text).matches(facts.labels):
            return f"the labels do not match {text}"
    if rule.changed_within_minutes is not None:
        window = timedelta(minutes=rule.changed_within_minutes)
        if facts.last_change_at is None or facts.opened_at - facts.last_change_at > window:
            return f"nothing changed in the {rule.changed_within_minutes} min before the incident"
    return None
