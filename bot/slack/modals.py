"""Modal views: declare an incident, pick an action, label a failing trace."""

from __future__ import annotations

import json
from typing import Any

from bot.slack.text import cut


def _input(block_id: str, label: str, element: dict[str, Any], optional: bool = False) -> dict[str, Any]:
    element = {**element, "action_id": block_id}  # one element per block: name both the same
    return {"type": "input", "block_id": block_id, "optional": optional,
            "label": {"type": "plain_text", "text": label}, "element": element}


def _text(action_id: str, multiline: bool = False, initial: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline}
    if initial:
        element["initial_value"] = initial
    return element


def _select(action_id: str, options: list[tuple[str, str]], initial: str | None = None) -> dict[str, Any]:
    opts = [{"text": {"type": "plain_text", "text": cut(label, 75)}, "value": value} for label, value in options]
    element: dict[str, Any] = {"type": "static_select", "action_id": action_id, "options": opts}
    for opt in opts:
        if opt["value"] == initial:
            element["initial_option"] = opt
    return element


def _modal(callback_id: str, title: str, submit: str, blocks: list[dict[str, Any]], metadata: dict[str, Any]) -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": {"type": "plain_text", "text": title},
            "submit": {"type": "plain_text", "text": submit}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps(metadata), "blocks": blocks}


def declare(channel: str | None) -> dict[str, Any]:
    return _modal("declare", "Declare an incident", "Declare", [
        _input("title", "Title", _text("value")),
        _input("severity", "Severity", _select("value", [(f"SEV{n}", str(n)) for n in (1, 2, 3, 4)], "3")),
        _input("service", "Service", _text("value"), optional=True),
        _input("description", "What is happening?", _text("value", multiline=True), optional=True),
    ], {"channel": channel})


def run_action(incident_id: int, playbooks: list[tuple[str, str]]) -> dict[str, Any]:
    return _modal("run_action", "Run an action", "Next", [
        _input("playbook", "Action", _select("value", playbooks)),
        _input("args", "Arguments (optional)", _text("value"), optional=True),
    ], {"incident_id": incident_id})


FAILURE_TYPES = [("Unsupported claim (hallucination)", "hallucination"), ("Invalid JSON / schema", "schema_invalid"),
                 ("Tool error", "tool_error"), ("Too slow", "latency"), ("Bad answer (other)", "negative_feedback"),
                 ("No source cited (provenance)", "missing_provenance")]


def label_trace(request_id: str, incident_id: int | None, current: str | None) -> dict[str, Any]:
    return _modal("label_trace", "Label a failing trace", "Save", [
        _input("failure_type", "Failure type", _select("value", FAILURE_TYPES, current)),
        _input("expected", "Expected answer", _text("value", multiline=True), optional=True),
        _input("claim", "Unsupported claim in the answer", _text("value"), optional=True),
        _input("notes", "Notes", _text("value", multiline=True), optional=True),
    ], {"request_id": request_id, "incident_id": incident_id})


def values(view: dict[str, Any]) -> dict[str, str | None]:
    """``state.values`` flattened to ``{block_id: value}`` for our one-element input blocks."""
    flat: dict[str, str | None] = {}
    for block_id, elements in (view.get("state", {}).get("values") or {}).items():
        for element in elements.values():
            if element.get("type") == "static_select":
                flat[block_id] = (element.get("selected_option") or {}).get("value")
            else:
                flat[block_id] = element.get("value")
    return flat


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
