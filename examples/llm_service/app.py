"""The HTTP face of the example service: answers, the control API and metrics."""

from __future__ import annotations

import contextlib
import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .answers import answer_question
from .bundles import BUNDLES, DEFAULT_BUNDLE, ROUTES
from .metrics import ServiceMetrics
from .otel import Encoding, OtelShipper
from .state import ServiceState, UnknownBundle, UnknownRoute, UnknownTool
from .traces import TraceShipper, trace_event
from .traffic import TrafficGenerator
from .unleash import UnleashPoller

Handler = Callable[[Request], Awaitable[Response]]


class LLMService:
    """Answers questions against the live state and records what happened."""

    def __init__(self, state: ServiceState, shipper: TraceShipper | OtelShipper | None) -> None:
        self.state = state
        self.metrics = ServiceMetrics()
        self.shipper = shipper

    def ask(self, question: str, *, eval_bundle: str | None = None) -> dict[str, object]:
        """Answer with the live state; ``eval_bundle`` answers an evaluation with that catalogue bundle
        on its own model route instead, and leaves no trace and no metric behind (it is not production)."""
        bundle, route, tools = self.state.current()
        if eval_bundle is not None:
            bundle = BUNDLES[eval_bundle]
            route = bundle.model_route
        answer = answer_question(question, bundle, route, tools)
        request_id = uuid.uuid4().hex
        if eval_bundle is None:
            self.metrics.record(bundle.version, route, answer)
            if self.shipper is not None:
                self.shipper.submit(trace_event(request_id, question, bundle, route, answer))
        return {
            "request_id": request_id,
            "output": answer.output,
            "bundle": bundle.version,
            "model": route,
            "route": route,
            "tool_calls": answer.tool_calls,
            "schema_valid": answer.schema_valid,
            "hallucination_score": answer.hallucination_score,
            "latency_ms": answer.latency_ms,
            "cost": answer.cost,
            "retrieval_ids": answer.retrieval_ids,
            "citations": answer.citations,
        }


def create_app(
    state: ServiceState | None = None,
    *,
    control_token: str | None = None,
    warroom_url: str | None = None,
    warroom_token: str | None = None,
    unleash_url: str | None = None,
    unleash_token: str | None = None,
    traffic_rps: float = 0,
    bundle: str | None = None,
    trace_interval: float = 1.0,
    unleash_interval: float = 0.5,
    otlp: Encoding | None = None,
) -> Starlette:
    state = state or ServiceState(bundle=bundle or DEFAULT_BUNDLE)
    # otlp: export OpenTelemetry GenAI spans to warroom's /v1/traces instead of posting /api/traces.
    shipper: TraceShipper | OtelShipper | None = None
    if warroom_url and otlp:
        shipper = OtelShipper(warroom_url, warroom_token, encoding=otlp, interval=trace_interval)
    elif warroom_url:
        shipper = TraceShipper(warroom_url, warroom_token, interval=trace_interval)
    service = LLMService(state, shipper)
    poller = UnleashPoller(state, unleash_url, unleash_token, interval=unleash_interval) if unleash_url else None
    traffic = TrafficGenerator(service.ask, traffic_rps) if traffic_rps > 0 else None
    workers = [w for w in (shipper, poller, traffic) if w is not None]

    def authorised(request: Request) -> bool:
        if not control_token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {control_token}".encode())

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return await handler(request)
        return endpoint

    async def answer(request: Request) -> Response:
        body = await _json(request)
        question = body.get("question") if isinstance(body, dict) else None
        if not isinstance(question, str) or not question.strip():
            return _error(422, 'send {"question": "<text>"}')
        # Evaluation traffic (warroom's gate and replay) names its bundle and carries X-Warroom-Eval.
        eval_bundle = request.query_params.get("bundle") or request.headers.get("x-warroom-bundle")
        if eval_bundle is None and request.headers.get("x-warroom-eval"):
            eval_bundle = state.current()[0].version
        if eval_bundle is not None and eval_bundle not in BUNDLES:
            return _error(404, f"unknown bundle {eval_bundle!r}; known: {', '.join(BUNDLES)}")
        return JSONResponse(service.ask(question, eval_bundle=eval_bundle))

    async def get_state(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def put_route(request: Request) -> Response:
        body = await _json(request)
        try:
            state.set_route(str(body.get("route")) if isinstance(body, dict) else "")
        except UnknownRoute:
            return _error(422, f"unknown route; choose one of {', '.join(ROUTES)}")
        return JSONResponse(state.snapshot())

    async def put_bundle(request: Request) -> Response:
        body = await _json(request)
        version = body.get("version") if isinstance(body, dict) else None
        try:
            state.set_bundle(str(version))
        except UnknownBundle:
            return _error(404, f"unknown bundle {version!r}; known: {', '.join(BUNDLES)}")
        return JSONResponse(state.snapshot())

    async def put_tool(request: Request) -> Response:
        body = await _json(request)
        enabled = body.get("enabled") if isinstance(body, dict) else None
        if not isinstance(enabled, bool):
            return _error(422, 'send {"enabled": true|false}')
        try:
            state.set_tool(request.path_params["tool"], enabled)
        except UnknownTool:
            return _error(404, f"unknown tool {request.path_params['tool']!r}")
        return JSONResponse(state.snapshot())

    async def get_bundles(request: Request) -> Response:
        return JSONResponse({"bundles": [b.describe() for b in BUNDLES.values()]})

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in reversed(workers):
                worker.stop()

    app = Starlette(
        routes=[
            Route("/v1/answer", answer, methods=["POST"]),
            Route("/control/state", guarded(get_state), methods=["GET"]),
            Route("/control/route", guarded(put_route), methods=["PUT"]),
            Route("/control/bundle", guarded(put_bundle), methods=["PUT"]),
            Route("/control/tools/{tool}", guarded(put_tool), methods=["PUT"]),
            Route("/control/bundles", guarded(get_bundles), methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.control = state
    return app


async def _json(request: Request) -> object:
    try:
        return await request.json()
    except ValueError:
        return None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
