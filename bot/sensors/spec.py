"""Sensors as the SLO file declares them (``sensors: [...]`` next to ``slos:``), checked by line.

Drift compares the distribution of one numeric field of the traces in a recent window with the
same service's baseline window (Population Stability Index). Spike compares a failure rate with
its rate in the same hour of the previous days. Both raise alerts through the alert intake (see
`bot.sensors.watch`); the README explains the maths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.problems import Problem
from bot.slo.spec import _Reader
from bot.slo.tracerule import TraceRule
from bot.slo.windows import WindowError, parse_duration
from bot.yamlsource import YamlSyntaxError, load_yaml

KINDS = ("drift", "spike")
# Numeric fields drift can watch besides ``scores.<name>`` (an evaluation score): two are
# derived, the length of the answer and the number of retrieved documents.
DRIFT_FIELDS = ("tokens", "latency_ms", "cost", "hallucination_score", "answer_length", "retrieved_documents")
SEVERITIES = ("warning", "critical")
_COMMON = {"name", "service", "kind", "labels", "runbook", "description", "min_samples"}
_KEYS = {
    "drift": _COMMON | {"field", "window", "baseline", "warn", "alert", "bins", "by_bundle"},
    "spike": _COMMON | {"trace", "factor", "days", "window", "for", "min_rate", "severity"},
}


@dataclass(frozen=True)
class Sensor:
    name: str
    service: str
    kind: str  # "drift" | "spike"
    labels: Mapping[str, str] = field(default_factory=dict)
    runbook: str | None = None
    description: str = ""
    min_samples: int = 200
    window: timedelta = timedelta(hours=1)
    # drift
    field: str = "tokens"
    baseline: timedelta = timedelta(days=7)
    warn: float = 0.1
    alert: float = 0.25
    bins: int = 10
    by_bundle: bool = True
    # spike
    trace: TraceRule | None = None
    factor: float = 2.0
    days: int = 7
    sustained: timedelta = timedelta(hours=1)  # ``for:`` in the file
    min_rate: float = 0.01
    severity: str = "warning"

    @property
    def alertname(self) -> str:
        return "LLMQualityDrift" if self.kind == "drift" else "LLMFailureSpike"


def check_sensors(path: Path | str) -> list[Problem]:
    return parse_sensors(Path(path).read_text(encoding="utf-8"), str(path))[1]


def load_sensors(path: Path | str) -> list[Sensor]:
    sensors, problems = parse_sensors(Path(path).read_text(encoding="utf-8"), str(path))
    if problems:
        from bot.slo.spec import SLOFileError

        raise SLOFileError(problems)
    return sensors


def parse_sensors(text: str, source: str) -> tuple[list[Sensor], list[Problem]]:
    try:
        data, lines = load_yaml(text)
    except YamlSyntaxError as exc:
        return [], [Problem(source, exc.line, str(exc))]
    if not isinstance(data, dict) or data.get("sensors") is None:
        return [], []
    if not isinstance(data["sensors"], list):
        return [], [Problem(source, lines.line_of(("sensors",)), "sensors must be a list")]
    reader = _SensorReader(source, lines)
    sensors: list[Sensor] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data["sensors"]):
        sensor = reader.sensor(index, item)
        if sensor is None:
            continue
        where = ("sensors", index, "name")
        key = f"{sensor.service}/{sensor.name}"
        if key in seen:
            reader.problem(where, f"duplicate sensor {sensor.name!r} for service {sensor.service!r} "
                                  f"(first defined on line {seen[key]})")
            continue
        seen[key] = lines.line_of(where)
        sensors.append(sensor)
    return sensors, sorted(reader.problems)


class _SensorReader(_Reader):
    def sensor(self, index: int, item: Any) -> Sensor | None:
        at: tuple[str | int, ...] = ("sensors", index)
        if not isinstance(item, dict):
            self.problem(at, f"sensors[{index}]: expected a mapping with name, service, kind")
            return None
        before = len(self.problems)
        kind = item.get("kind")
        if kind not in KINDS:
            self.problem((*at, "kind") if "kind" in item else at,
                         f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
            return None
        for key in item:
            if key not in _KEYS[kind]:
                self.problem((*at, key),
                             f"unknown key {key!r} for a {kind} sensor (known: {', '.join(sorted(_KEYS[kind]))})")
        values: dict[str, Any] = {
            "name": self.name(at, item, "name"), "service": self.name(at, item, "service"), "kind": kind,
            "labels": self.labels(at, item.get("labels", {})),
            # PSI's noise floor is about (bins - 1) / samples: 200 keeps it under half the warning line.
            "min_samples": self.whole(at, item, "min_samples", 200 if kind == "drift" else 20),
            "window": self.duration(at, item, "window", timedelta(hours=1)),
        }
        for key in ("runbook", "description"):
            if key in item and not isinstance(item[key], str):
                self.problem((*at, key), f"{key} must be text")
            elif key in item:
                values[key] = item[key].strip() if key == "description" else item[key]
        if kind == "drift":
            values.update(self.drift(at, item))
        else:
            values.update(self.spike(at, item))
        if len(self.problems) > before:
            return None
        return Sensor(**values)

    def drift(self, at: tuple[str | int, ...], item: dict[str, Any]) -> dict[str, Any]:
        name = item.get("field")
        if not isinstance(name, str) or not (name in DRIFT_FIELDS or (name.startswith("scores.") and len(name) > 7)):
            self.problem((*at, "field") if "field" in item else at,
                         f"field must be one of {', '.join(DRIFT_FIELDS)} or scores.<evaluation name> (got {name!r})")
        warn = self.fraction(at, item, "warn", 0.1)
        alert = self.fraction(at, item, "alert", 0.25)
        if warn > alert:
            self.problem((*at, "warn"), f"warn ({warn:g}) must not be above alert ({alert:g})")
        by_bundle = item.get("by_bundle", True)
        if not isinstance(by_bundle, bool):
            self.problem((*at, "by_bundle"), "by_bundle must be true or false")
        bins = self.whole(at, item, "bins", 10)
        if not 2 <= bins <= 100:
            self.problem((*at, "bins"), f"bins must be from 2 to 100 (got {bins})")
        return {"field": name, "baseline": self.duration(at, item, "baseline", timedelta(days=7)), "warn": warn,
                "alert": alert, "bins": bins, "by_bundle": by_bundle}

    def spike(self, at: tuple[str | int, ...], item: dict[str, Any]) -> dict[str, Any]:
        rule = self.trace(at, item.get("trace"))
        if "trace" not in item:
            self.problem(at, "a spike sensor needs a trace rule: trace: {field, op, value} (the failure it counts)")
        factor = item.get("factor", 2.0)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 1:
            self.problem((*at, "factor"), f"factor must be a number above 1 (got {factor!r})")
        days = self.whole(at, item, "days", 7)
        if not 1 <= days <= 60:
            self.problem((*at, "days"), f"days must be from 1 to 60 (got {days})")
        severity = item.get("severity", "warning")
        if severity not in SEVERITIES:
            self.problem((*at, "severity"), f"severity must be one of {', '.join(SEVERITIES)} (got {severity!r})")
        return {"trace": rule, "factor": float(factor) if isinstance(factor, int | float) else 2.0, "days": days,
                "sustained": self.duration(at, item, "for", timedelta(hours=1), allow_zero=True),
                "min_rate": self.fraction(at, item, "min_rate", 0.01), "severity": severity}

    def duration(self, at: tuple[str | int, ...], item: dict[str, Any], key: str, default: timedelta, *,
                 allow_zero: bool = False) -> timedelta:
        value = item.get(key)
        if value is None:
            return default
        if allow_zero and value in ("0", "0s", 0):
            return timedelta(0)
        try:
            return parse_duration(str(value))
        except WindowError as exc:
            self.problem((*at, key), f"{key}: {exc}")
            return default

    def whole(self, at: tuple[str | int, ...], item: dict[str, Any], key: str, default: int) -> int:
        value = item.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problem((*at, key), f"{key} must be a whole number of at least 1 (got {value!r})")
            return default
        return value

    def fraction(self, at: tuple[str | int, ...], item: dict[str, Any], key: str, default: float) -> float:
        value = item.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem((*at, key), f"{key} must be a positive number (got {value!r})")
            return default
        return float(value)
