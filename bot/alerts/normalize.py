"""One shape for both dialects: what the intake needs and nothing else."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import ValidationError

from bot.alerts.fingerprint import fingerprint
from bot.alerts.payloads import AlertmanagerPayload, GrafanaAlert, GrafanaPayload
from bot.jsonbody import BadRequest, pydantic_problems

Source = Literal["alertmanager", "grafana", "watcher"]
# A monitoring gap is what Grafana says it is: its NoData/Error alerts, or a state reason of
# NoData/Error. `values: null` is not one: Grafana sends it for every alert without a
# `__values__` annotation (an ordinary firing alert, a MissingSeries resolution, a test).
GAP_STATE_REASONS = {"nodata", "error"}
GAP_ALERTNAMES = {"DatasourceNoData", "DatasourceError"}
# Test notifications: Grafana's contact-point "Test" groups its alert under
# `<integration>-<fingerprint>-<unix seconds>` (grafana/alerting `TestNotifier`), never a route
# key `{…}:{…}`; its alert, and Mimir's test receivers', is named TestAlert, the name to use for a
# hand-made test (`amtool alert add alertname=TestAlert`).
TEST_ALERTNAME = "TestAlert"
_TEST_GROUP_KEY = re.compile(r"^[^{}]*-[0-9a-f]{16}-\d+$")


@dataclass
class NormalAlert:
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    extra: dict[str, Any] = field(default_factory=dict)
    monitoring_gap: bool = False


@dataclass
class Notification:
    source: Source
    group_key: str
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    truncated: int
    alerts: list[NormalAlert]
    external_url: str = ""
    title: str = ""
    is_test: bool = False  # a contact point's test or a TestAlert: answered, announced, no incident

    @cached_property
    def group_key_hash(self) -> str:
        # Raw keys can be long, unicode and quoted; Alertmanager itself hashes them for integrations.
        # Cached: the writer's lanes, its sort and the group lock each ask for it.
        return hashlib.sha256(f"{self.source}:{self.group_key}".encode()).hexdigest()


def from_alertmanager(body: Any, *, received_at: datetime, source: Source = "alertmanager") -> Notification:
    payload = _validate(AlertmanagerPayload, body, expected_version="4")
    return _normalise(payload, source, received_at)


def from_grafana(body: Any, *, received_at: datetime) -> Notification:
    payload = _validate(GrafanaPayload, body, expected_version="1")
    return _normalise(payload, "grafana", received_at)


def _validate(model: type[AlertmanagerPayload], body: Any, *, expected_version: str) -> AlertmanagerPayload:
    if not isinstance(body, dict):
        raise BadRequest(422, "payload must be a JSON object", [{"field": "$",
                                                                 "message": f"got {type(body).__name__}"}])
    version = body.get("version")
    if version is not None and version != expected_version:
        raise BadRequest(422,
                         f"unsupported payload version {version!r}; this endpoint takes version {expected_version!r}",
                         [{"field": "version", "message": f"expected {expected_version!r}"}])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(422, "payload does not match the webhook format", pydantic_problems(exc)) from None


def _normalise(payload: AlertmanagerPayload, source: Source, received_at: datetime) -> Notification:
    alerts = []
    for i, raw in enumerate(payload.alerts):
        if raw.startsAt is None:
            raise BadRequest(422, "alert has no start time", [{"field": f"alerts.{i}.startsAt",
                                                               "message": "zero time is not a start"}])
        resolved = raw.status == "resolved" or (raw.endsAt is not None and raw.endsAt <= received_at)
        extra: dict[str, Any] = {}
        if isinstance(raw, GrafanaAlert):
            extra = {k: v for k, v in {
                "dashboardURL": raw.dashboardURL, "panelURL": raw.panelURL, "silenceURL": raw.silenceURL,
                "ruleUID": raw.ruleUID, "values": raw.values, "valueString": raw.valueString,
            }.items() if v not in ("", None)}
        reason = raw.annotations.get("grafana_state_reason")
        gap = (raw.labels.get("alertname") in GAP_ALERTNAMES
               or (reason is not None and reason.lower() in GAP_STATE_REASONS))
        alerts.append(NormalAlert(
            fingerprint=(raw.fingerprint or fingerprint(raw.labels)).lower(),
            starts_at=raw.startsAt,
            ends_at=raw.endsAt,
            status="resolved" if resolved else "firing",
            labels=dict(raw.labels),
            annotations=dict(raw.annotations),
            generator_url=raw.generatorURL,
            extra=extra,
            monitoring_gap=gap,
        ))
    return Notification(
        source=source,
        group_key=payload.groupKey,
        receiver=payload.receiver,
        group_labels=dict(payload.groupLabels),
        common_labels=dict(payload.commonLabels),
        common_annotations=dict(payload.commonAnnotations),
        truncated=payload.truncatedAlerts,
        alerts=alerts,
        external_url=payload.externalURL,
        title=getattr(payload, "title", ""),
        is_test=_is_test(payload.groupKey, alerts),
    )


def _is_test(group_key: str, alerts: list[NormalAlert]) -> bool:
    if _TEST_GROUP_KEY.match(group_key):
        return True
    return all(alert.labels.get("alertname") == TEST_ALERTNAME for alert in alerts)
