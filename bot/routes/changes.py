"""Change events from the systems that make them: ``POST /api/changes`` (generic) and
``POST /webhooks/unleash?service=…`` (Unleash's webhook addon, feature-flag events).

Both take the bearer token ``WARROOM_ALERT_TOKEN``; a change names its service, and it shows on
that service's open incidents (timeline and card) and before the next ones (`bot.releases.service`).
Failures are answered as JSON by the app's exception handlers (`bot.routes.errors`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.jsonbody import BadRequest, parse_json, pydantic_problems
from bot.releases import service as releases
from bot.routes.common import read_body, require_bearer
from bot.routes.errors import Route
from bot.runtime import Runtime

Kind = Literal["deploy", "prompt", "model_route", "retriever", "flag", "config", "other"]


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=200)
    kind: Kind
    summary: str = Field(min_length=1, max_length=500)
    who: str | None = Field(default=None, max_length=200)
    when: datetime | None = None
    link: str | None = Field(default=None, max_length=2000)
    id: str | None = Field(default=None, min_length=1, max_length=150)  # the sender's id: a retry is one change

    @field_validator("service", "summary", "who")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("\n", " ").isprintable():
            raise ValueError("must not contain control characters")
        return value

    @field_validator("link")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("when")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UnleashEvent(BaseModel):
    """The fields warroom reads from an Unleash event (the webhook addon's default body)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    type: str = Field(min_length=1, max_length=100)
    createdBy: str | None = Field(default=None, max_length=200)
    createdAt: datetime | None = None
    featureName: str | None = Field(default=None, max_length=200)
    project: str | None = Field(default=None, max_length=200)
    environment: str | None = Field(default=None, max_length=200)


_UNLEASH_VERBS = {
    "feature-environment-enabled": "switched on", "feature-environment-disabled": "switched off",
    "feature-strategy-add": "got a new strategy", "feature-strategy-update": "strategy changed",
    "feature-strategy-remove": "lost a strategy", "feature-created": "created", "feature-archived": "archived",
    "feature-variants-updated": "variants changed", "feature-environment-variants-updated": "variants changed",
}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _validated(model: type[BaseModel], body: Any, what: str) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(422, f"invalid {what}", pydantic_problems(exc)) from None


async def _store(runtime: Runtime, **fields: Any) -> JSONResponse:
    change_id, told = await run_in_threadpool(lambda: releases.record_change(runtime.engine, **fields))
    if told:
        runtime.wake.set()
    return JSONResponse({"id": change_id, "duplicate": change_id is None, "incidents": told},
                        status_code=200 if change_id is None else 201)


async def post_change(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    raw = await read_body(request, runtime.settings.max_body_bytes)
    given: ChangeIn = _validated(ChangeIn, parse_json(raw, max_string=runtime.settings.max_value_length), "change")
    return await _store(runtime, service=given.service, kind=given.kind, summary=given.summary, at=given.when,
                        actor=given.who, link=given.link, source="api", dedupe_key=given.id)


async def post_unleash(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    service = request.query_params.get("service", "")
    if not service or len(service) > 200 or not service.isprintable():
        raise BadRequest(400, "name the service the flags belong to in the webhook URL: "
                              "/webhooks/unleash?service=<name>")
    raw = await read_body(request, runtime.settings.max_body_bytes)
    event: UnleashEvent = _validated(UnleashEvent, parse_json(raw, max_string=runtime.settings.max_value_length),
                                     "Unleash event")
    verb = _UNLEASH_VERBS.get(event.type, event.type.replace("-", " "))
    where = f" in {event.environment}" if event.environment else ""
    summary = f"flag {event.featureName or '(project ' + str(event.project) + ')'} {verb}{where}"
    at = event.createdAt.astimezone(UTC) if event.createdAt and event.createdAt.tzinfo else event.createdAt
    return await _store(runtime, service=service, kind="flag", summary=summary, at=at, actor=event.createdBy,
                        source="unleash", dedupe_key=str(event.id))


routes = [
    Route("/api/changes", post_change, methods=["POST"]),
    Route("/webhooks/unleash", post_unleash, methods=["POST"]),
]
