"""`warroom evals run`: promptfoo over exported cases, reported to the incident and the bundle."""

from __future__ import annotations

from pathlib import Path

from bot import outbox
from bot.db import transaction
from bot.incidents import service, timeline
from bot.promptfoo import ensure_promptfoo, run_promptfoo
from bot.runtime import Runtime


def run_and_report(runtime: Runtime, directory: Path, *, incident: int | None, bundle: str | None) -> int:
    ensure_promptfoo()
    summary = run_promptfoo(directory)
    text = summary.as_text()
    print(text)
    with transaction(runtime.engine) as session:
        if incident is not None:
            record = service.get(session, incident)
            timeline.record(session, record, "evals", text, actor="warroom")
            outbox.enqueue(session, "slack.message", {"incident_id": incident, "text": text}, incident_id=incident)
        if bundle and summary.ok:
            from bot.bundles import mark_known_good
            service_name, _, version = bundle.partition(":")
            mark_known_good(session, service_name, version, reason=f"passed {summary.passed} eval cases")
            print(f"{bundle} marked known-good")
    if incident is not None:
        from bot.web import create_app
        create_app(runtime)
        runtime.services["worker"].drain()
    return 0 if summary.ok else 1
