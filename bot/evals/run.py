"""`warroom evals run`: promptfoo over exported cases, or over a service's suite against one bundle."""

from __future__ import annotations

from pathlib import Path

from bot.effects import PostMessage
from bot.evals.promptfoo import EvalRunSummary, PromptfooError, ensure_promptfoo, run_promptfoo
from bot.incidents import service, timeline
from bot.runtime import Runtime
from bot.store import outbox
from bot.store.db import transaction


def _suite_run(runtime: Runtime, directory: Path, bundle: str, target_url: str | None) -> EvalRunSummary:
    from bot.evals.gate import context_for, parse_ref
    from bot.evals.suite_files import export_suite, target_for
    from bot.releases import bundles
    name, version = parse_ref(bundle)
    target = target_for(name, targets_json=runtime.settings.eval_targets, fallback_url=target_url)
    with transaction(runtime.engine) as session:
        found = bundles.get_bundle(session, name, version)
        export_suite(session, name, directory, target=target, bundle=version,
                     ctx=context_for(runtime.settings, found), run_tag=f"run-{version}")
    return run_promptfoo(directory)


def run_and_report(runtime: Runtime, directory: Path, *, incident: int | None, bundle: str | None,
                   target_url: str | None = None) -> int:
    from bot.errors import NotFound
    from bot.evals.gate import GateCannotRun
    from bot.evals.target import EvalTargetError
    try:
        ensure_promptfoo()
        if bundle:
            summary = _suite_run(runtime, directory, bundle, target_url)
        else:
            summary = run_promptfoo(directory)
    except (GateCannotRun, EvalTargetError, NotFound, PromptfooError) as exc:
        print(f"warroom: {exc}")
        return 2
    text = summary.as_text() if not bundle else f"{bundle}: {summary.as_text()}"
    print(text)
    if incident is not None:
        with transaction(runtime.engine) as session:
            record = service.get(session, incident)
            timeline.record(session, record, "evals", text, actor="warroom")
            outbox.enqueue(session, PostMessage(incident_id=incident, text=text), incident_id=incident)
        from bot.compose import compose
        compose(runtime.settings, engine=runtime.engine).worker.drain()  # posts it now, as the bot's worker would
    return 0 if summary.ok else 1


