"""Run a playbook: render each step, check the host, send it, check the answer, then verify.

A run stops at the first failing step. When it has a ``verify`` block, the run succeeds only once
the control plane *reports* the new state (polled until ``expect`` holds or the timeout passes):
"the request was accepted" is not "the mitigation is live". Everything a result carries --
URLs, request previews, errors, saved values -- is masked, so results can go straight to Slack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypedDict

import httpx
from pydantic import BaseModel, Field

from bot import redact
from bot.redact import Redactor

from .hosts import HostAllowList, HostRefused
from .jsonpath import PathNotFound, lookup
from .playbook import Expect, Playbook, Step, Verify
from .render import Renderer, RenderError, scrub_value
from .targets import env_name


class StepResult(BaseModel):
    name: str
    method: str
    url_masked: str
    status_code: int | None = None
    ok: bool
    error: str | None = None
    duration_s: float = 0.0
    request_preview_masked: dict[str, Any] = Field(default_factory=dict)


class VerifyResult(BaseModel):
    ok: bool
    attempts: int
    duration_s: float
    last_observation: str
    url_masked: str


class RunResult(BaseModel):
    playbook: str
    kind: Literal["run", "undo"] = "run"
    status: Literal["succeeded", "failed", "dry_run"]
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepResult] = Field(default_factory=list)
    verify: VerifyResult | None = None
    saved: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0


class RunEvent(BaseModel):
    kind: Literal["step", "verify", "finished"]
    name: str
    ok: bool | None = None
    message: str = ""


class _StepFailed(Exception):
    pass


class _Run:
    """The state of one execution; keeps raw values inside and hands out masked ones."""

    def __init__(
        self, pb: Playbook, params: Mapping[str, Any], *, incident: Mapping[str, Any], secrets: Mapping[str, str],
        allowed_hosts: HostAllowList, client: httpx.Client, targets: Mapping[str, str], dry_run: bool,
        on_event: Callable[[RunEvent], None] | None, sleep: Callable[[float], None], clock: Callable[[], float],
        saved: Mapping[str, Any] | None = None, redactor: Redactor = redact.DEFAULT,
    ) -> None:
        self.redactor = redactor
        self.pb, self.params, self.incident, self.secrets = pb, dict(params), dict(incident), secrets
        self.hosts, self.client, self.targets, self.dry_run = allowed_hosts, client, targets, dry_run
        self.on_event, self.sleep, self.clock = on_event, sleep, clock
        self.saved: dict[str, Any] = dict(saved or {})
        self.secret_values = [v for v in secrets.values() if v]

    def mask(self, value: Any) -> Any:
        # Our own secrets first (whole or in part), then any credential a control plane echoes.
        return self.redactor.redact_obj(scrub_value(value, self.secret_values), credentials_only=True)

    def emit(self, kind: Literal["step", "verify", "finished"], name: str, ok: bool | None, message: str) -> None:
        if self.on_event is not None:
            self.on_event(RunEvent(kind=kind, name=name, ok=ok, message=self.mask(message)))

    def renderers(self) -> tuple[Renderer, Renderer]:
        target = ""
        if self.pb.target is not None:
            if self.pb.target not in self.targets:
                raise RenderError(f"unknown target {self.pb.target!r} "
                                  f"(add it to targets.yaml or set {env_name(self.pb.target)})")
            target = self.targets[self.pb.target]
        return tuple(  # type: ignore[return-value]
            Renderer(params=self.params, incident=self.incident, saved=self.saved, target=target,
                     secrets=self.secrets, masked=masked, dry_run=self.dry_run)
            for masked in (False, True)
        )

    def prepare(self, step: Step | Verify) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request to send and its masked preview; raises RenderError / HostRefused."""
        real, masked = self.renderers()
        request: dict[str, Any] = {"method": step.method, "url": real.render(step.url),
                                   "headers": real.render(step.headers)}
        preview: dict[str, Any] = {"method": step.method, "url": masked.render(step.url),
                                   "headers": masked.render(step.headers)}
        if isinstance(step, Step) and step.json_ is not None:
            request["json"], preview["json"] = real.render(step.json_), masked.render(step.json_)
        if isinstance(step, Step) and step.body is not None:
            request["content"], preview["body"] = real.render(step.body), masked.render(step.body)
        self.hosts.check(request["url"])
        return request, self.mask(preview)

    def send(self, request: dict[str, Any], timeout: float) -> httpx.Response:
        return self.client.request(**request, timeout=timeout, follow_redirects=False)

    def check(self, expect: Expect, response: httpx.Response) -> tuple[Any, str]:
        """The parsed body and a one-line observation; raises _StepFailed when expect does not hold."""
        code = response.status_code
        wanted = expect.status
        if (wanted is None and not 200 <= code < 300) or (wanted is not None and code not in wanted):
            expected = "2xx" if wanted is None else " or ".join(map(str, wanted))
            raise _StepFailed(f"HTTP {code} (expected {expected}): {self.snippet(response)}")
        body: Any = None
        if expect.json_ or response.headers.get("content-type", "").startswith("application/json"):
            try:
                body = response.json()
            except ValueError:
                if expect.json_:
                    raise _StepFailed(f"HTTP {code}, but the body is not JSON: {self.snippet(response)}") from None
        real, _ = self.renderers()
        seen = []
        for path, expected_value in real.render(expect.json_).items():
            try:
                actual = lookup(body, path)
            except PathNotFound as exc:
                raise _StepFailed(str(exc)) from None
            if not _same(actual, expected_value):
                raise _StepFailed(f"{path} is {actual!r}, expected {expected_value!r}")
            seen.append(f"{path} is {actual!r}")
        return body, "; ".join(seen) or f"HTTP {code}"

    def snippet(self, response: httpx.Response) -> str:
        # Masked before it is cut: a cut through a token would leave its start unrecognisable.
        text = " ".join(self.mask(response.text).split())
        return (text[:200] + "…") if len(text) > 200 else (text or "(empty body)")

    def run_step(self, step: Step) -> StepResult:
        started = self.clock()
        result = StepResult(name=step.name, method=step.method, url_masked="", ok=False)
        try:
            request, preview = self.prepare(step)
            result.url_masked, result.request_preview_masked = preview["url"], preview
            if self.dry_run:
                result.ok = True
                return result
            response = self.send(request, step.timeout)
            result.status_code = response.status_code
            body, _ = self.check(step.expect, response)
            for var, path in step.save.items():
                try:
                    self.saved[var] = lookup(body, path)
                except PathNotFound as exc:
                    raise _StepFailed(f"cannot save {var}: {exc}") from None
            result.ok = True
        except (RenderError, HostRefused, _StepFailed) as exc:
            result.error = self.mask(str(exc))
        except httpx.HTTPError as exc:
            result.error = self.mask(f"request failed: {type(exc).__name__}: {exc}")
        finally:
            result.duration_s = round(self.clock() - started, 3)
        return result

    def run_verify(self, verify: Verify) -> tuple[VerifyResult, bool]:
        """The last observation, and whether polling stopped early on an error retrying cannot fix."""
        started = self.clock()
        deadline = started + verify.timeout
        attempts, url_masked, observation = 0, "", "not checked"
        while True:
            attempts += 1
            ok, fatal = False, False
            try:
                request, preview = self.prepare(verify)
                url_masked = preview["url"]
                _, observation = self.check(verify.expect, self.send(request, min(10.0, verify.timeout)))
                ok = True
            except (RenderError, HostRefused) as exc:
                observation, fatal = str(exc), True
            except _StepFailed as exc:
                observation = str(exc)
            except httpx.HTTPError as exc:
                observation = f"request failed: {type(exc).__name__}: {exc}"
            observation = self.mask(observation)
            self.emit("verify", "verify", ok, f"attempt {attempts}: {observation}")
            if ok or fatal or self.clock() + verify.interval > deadline:
                break
            self.sleep(verify.interval)
        return VerifyResult(ok=ok, attempts=attempts, duration_s=round(self.clock() - started, 3),
                            last_observation=observation, url_masked=url_masked), fatal

    def execute(self, steps: list[Step], verify: Verify | None, kind: Literal["run", "undo"]) -> RunResult:
        started = self.clock()
        result = RunResult(playbook=self.pb.name, kind=kind, status="dry_run" if self.dry_run else "succeeded",
                           params=self.params)
        for step in steps:
            step_result = self.run_step(step)
            result.steps.append(step_result)
            self.emit("step", step.name, step_result.ok, step_result.error or f"{step.method} {step_result.url_masked}")
            if not step_result.ok:
                result.status, result.error = "failed", f"step {step.name!r} failed: {step_result.error}"
                break
        if result.status == "succeeded" and verify is not None:
            result.verify, fatal = self.run_verify(verify)
            if not result.verify.ok:
                result.status = "failed"
                result.error = (f"verify failed: {result.verify.last_observation}" if fatal else
                                f"verify timed out after {verify.timeout:g}s: {result.verify.last_observation}")
        result.saved = self.mask({k: v for k, v in self.saved.items()})
        result.duration_s = round(self.clock() - started, 3)
        self.emit("finished", self.pb.name, result.status != "failed", result.error or result.status)
        return result


class RunContext(TypedDict):
    """The keyword arguments run_playbook and run_undo share, typed, for callers that build them once."""

    incident: Mapping[str, Any]
    secrets: Mapping[str, str]
    allowed_hosts: HostAllowList
    client: httpx.Client
    targets: Mapping[str, str]
    dry_run: NotRequired[bool]
    redactor: NotRequired[Redactor]


def run_playbook(
    pb: Playbook, params: dict[str, Any], *, incident: Mapping[str, Any], secrets: Mapping[str, str],
    allowed_hosts: HostAllowList, client: httpx.Client, targets: Mapping[str, str], dry_run: bool = False,
    on_event: Callable[[RunEvent], None] | None = None, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic, redactor: Redactor = redact.DEFAULT,
) -> RunResult:
    """Run ``pb`` with already validated ``params`` (see params.validate_params / parse_args).
    ``redactor``: the process's (`Runtime.redactor`); what the run reports is masked with it."""
    run = _Run(pb, params, incident=incident, secrets=secrets, allowed_hosts=allowed_hosts, client=client,
               targets=targets, dry_run=dry_run, on_event=on_event, sleep=sleep, clock=clock, redactor=redactor)
    return run.execute(pb.steps, pb.verify, "run")


def run_undo(
    pb: Playbook, run: RunResult, *, incident: Mapping[str, Any], secrets: Mapping[str, str],
    allowed_hosts: HostAllowList, client: httpx.Client, targets: Mapping[str, str], dry_run: bool = False,
    on_event: Callable[[RunEvent], None] | None = None, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic, redactor: Redactor = redact.DEFAULT,
) -> RunResult:
    """Reverse a finished run with the playbook's ``undo`` steps and the values that run saved."""
    if not pb.undo:
        return RunResult(playbook=pb.name, kind="undo", status="failed", params=run.params,
                         error=f"playbook {pb.name!r} has no undo steps")
    if run.status == "dry_run":
        return RunResult(playbook=pb.name, kind="undo", status="failed", params=run.params,
                         error="a dry run changed nothing, so there is nothing to undo")
    undo = _Run(pb, run.params, incident=incident, secrets=secrets, allowed_hosts=allowed_hosts, client=client,
                targets=targets, dry_run=dry_run, on_event=on_event, sleep=sleep, clock=clock, saved=run.saved,
                redactor=redactor)
    return undo.execute(pb.undo, pb.undo_verify, "undo")


def _same(actual: Any, expected: Any) -> bool:
    if actual == expected and type(actual) is type(expected):
        return True
    # Rendered expectations are strings ("{{ params.enabled }}" → "false"); compare as JSON text.
    return isinstance(expected, str) and not isinstance(actual, str) and json.dumps(actual) == expected
