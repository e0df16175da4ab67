"""The two webhook dialects we accept, as pydantic models (unknown fields are ignored).

Alertmanager webhook v4 (``notify/webhook``) and Grafana unified alerting v1, which is
Alertmanager's shape plus ``orgId``, ``state``, ``title``, ``message`` and per-alert ``values``,
``dashboardURL``, ``panelURL``, ``silenceURL``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from bot.alerts.timestamps import parse_rfc3339


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    return parse_rfc3339(value)


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
LabelSet = dict[StrictStr, StrictStr]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class AlertmanagerAlert(_Model):
    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: Timestamp = None
    generatorURL: StrictStr = ""
    fingerprint: StrictStr | None = Field(default=None, pattern=r"^[0-9a-fA-F]{1,32}$")


class AlertmanagerPayload(_Model):
    version: Literal["4"]
    groupKey: StrictStr
    status: Literal["firing", "resolved"]
    receiver: StrictStr = ""
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: StrictStr = ""
    truncatedAlerts: StrictInt = Field(default=0, ge=0)
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


class GrafanaAlert(AlertmanagerAlert):
    values: dict[StrictStr, StrictFloat | StrictInt | None] | None = None
    valueString: StrictStr = ""
    dashboardURL: StrictStr = ""
    panelURL: StrictStr = ""
    silenceURL: StrictStr = ""
    ruleUID: StrictStr = ""
    imageURL: StrictStr = ""


class GrafanaPayload(AlertmanagerPayload):
    version: Literal["1"]  # type: ignore[assignment]
    orgId: StrictInt = 0
    state: StrictStr = ""
    title: StrictStr = ""
    message: StrictStr = ""
    alerts: list[GrafanaAlert] = Field(min_length=1)  # type: ignore[assignment]
