"""``warroom`` (also ``python -m bot``): run the bot, the demo, the emulator, and the checks.

Each command's help text is its docstring; ``warroom --help`` lists them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError

app = typer.Typer(help="warroom — incident-response ChatOps for LLM services.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
slo_app = typer.Typer(help="SLO definitions and burn-rate rules.", no_args_is_help=True)
runbooks_app = typer.Typer(help="Runbooks folder.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbooks folder.", no_args_is_help=True)
evals_app = typer.Typer(help="Eval cases from failing traces.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents.", no_args_is_help=True)
slack_app = typer.Typer(help="Slack app set-up.", no_args_is_help=True)
for sub, name in ((db_app, "db"), (slo_app, "slo"), (runbooks_app, "runbooks"), (playbooks_app, "playbooks"),
                  (evals_app, "evals"), (incidents_app, "incidents"), (slack_app, "slack")):
    app.add_typer(sub, name=name)


def load_settings():  # noqa: ANN201
    """Settings from the environment; an invalid one stops here with its name."""
    from bot.config import Settings
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        typer.echo("warroom: invalid settings:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None


def _runtime(settings=None):  # noqa: ANN001, ANN202
    from bot.db import upgrade
    from bot.logs import configure
    from bot.runbooks import RunbookError
    from bot.runtime import Runtime

    settings = settings or load_settings()
    configure(settings.log_format, settings.log_level)
    try:
        runtime = Runtime.build(settings)
    except RunbookError as exc:
        typer.echo(f"warroom: the runbooks folder is invalid:\n{exc}", err=True)
        raise typer.Exit(2) from None
    upgrade(runtime.engine)
    return runtime


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8080, help="Port to listen on.")) -> None:
    """Run the bot (HTTP mode for Slack; Socket Mode too when SLACK_APP_TOKEN is set). Migrates first."""
    import uvicorn

    from bot.serving import freeze_startup_objects
    from bot.web import create_app

    runtime = _runtime()
    web_app = create_app(runtime)  # with SLACK_APP_TOKEN, it also connects to Slack in Socket Mode
    freeze_startup_objects()
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


@app.command()
def demo(port: int = typer.Option(8080, help="Port for warroom."),
         emulator_port: int = typer.Option(3000, help="Port for the local Slack emulator."),
         service_port: int = typer.Option(9201, help="Port for the example LLM service."),
         data_dir: Path = typer.Option(Path(".warroom-demo"), help="Where the demo's SQLite file lives."),
         watch: bool = typer.Option(False, help="Also run the built-in SLO watcher on the service's traces "
                                                "(examples/slos.yaml); it raises its own incident.")) -> None:
    """Everything on this machine: Slack emulator, warroom on SQLite, the example LLM service, a sample alert."""
    from bot.demo import run_demo
    run_demo(port=port, emulator_port=emulator_port, service_port=service_port, data_dir=data_dir, watch=watch)


@app.command()
def emulator(host: str = "127.0.0.1", port: int = 3000,
             bot_url: str = typer.Option("http://127.0.0.1:8080/slack/events", help="Where to send commands/clicks."),
             seed: Path | None = typer.Option(None, help="Workspace seed YAML (users, groups, channels).")) -> None:
    """Run the local Slack emulator alone (point SLACK_API_URL at http://HOST:PORT/api/)."""
    from bot.emulator import run
    settings = load_settings()
    run(host=host, port=port, bot_url=bot_url, signing_secret=settings.slack_signing_secret, seed=seed,
        token=settings.slack_bot_token)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every database migration."""
    from bot.db import make_engine, upgrade
    settings = load_settings()
    upgrade(make_engine(settings.database_url))
    typer.echo("database is up to date")


def _print_problems(problems: list) -> None:  # noqa: ANN001
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise typer.Exit(1)


@runbooks_app.command("check")
def runbooks_check(directory: Path = typer.Argument(Path("runbooks"), help="The runbooks folder."),
                   playbooks: Path = typer.Option(Path("playbooks"), help="Playbooks folder, to check action names.")) -> None:
    """Validate every runbook; prints path:line: message for each problem, exit 1 on any."""
    from bot.actions import load_playbooks
    from bot.runbooks import check_runbooks
    names = unattended = None
    if playbooks.is_dir():
        try:
            loaded = load_playbooks(playbooks)
            names, unattended = set(loaded), {name for name, pb in loaded.items() if pb.unattended}
        except Exception:
            names = None  # a broken playbooks folder is `warroom playbooks check`'s to report
    problems = check_runbooks(directory, playbook_names=names, unattended=unattended)
    _print_problems(problems)
    typer.echo(f"{directory}: ok")


@playbooks_app.command("check")
def playbooks_check(directory: Path = typer.Argument(Path("playbooks"), help="The playbooks folder.")) -> None:
    """Validate every playbook and targets.yaml; prints path:line: message for each problem."""
    from bot.actions import check_playbooks
    _print_problems(check_playbooks(directory))
    typer.echo(f"{directory}: ok")


@slo_app.command("rules")
def slo_rules(file: Path = typer.Argument(..., help="SLO definitions (YAML)."),
              window: list[str] = typer.Option([], help="Scale a window for tests, e.g. --window 1h=30s."),
              for_: str = typer.Option("0s", "--for", help="Alert 'for' duration."),
              alertmanager_webhook: str | None = typer.Option(None, help="Also print an Alertmanager route to stderr.")) -> None:
    """Prometheus recording and multi-window multi-burn-rate alert rules (stdout passes promtool check rules)."""
    from bot.slo.rules import slo_rules_main
    raise typer.Exit(slo_rules_main(file, window, alertmanager_webhook, alert_for=for_))


@slo_app.command("check")
def slo_check(file: Path = typer.Argument(..., help="SLO definitions (YAML).")) -> None:
    """Validate SLO definitions with path:line: message errors."""
    from bot.slo import check_slos
    _print_problems(check_slos(file))
    typer.echo(f"{file}: ok")


@app.command()
def postmortem(incident: int = typer.Argument(..., help="Incident id."),
               out: Path | None = typer.Option(None, help="Write the Markdown here instead of stdout.")) -> None:
    """Draft (or refresh) the postmortem of an incident from its timeline, actions, bundles and traces."""
    from bot.db import transaction
    from bot.postmortem.store import current_text, generate
    runtime = _runtime()
    with transaction(runtime.engine) as session:
        text = current_text(generate(session, incident, templates_dir=runtime.settings.templates_dir,
                                     slos=runtime.slos))
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        sys.stdout.write(text)


@evals_app.command("export")
def evals_export(incident: int | None = typer.Argument(None, help="Incident id (or use --since)."),
                 since: str | None = typer.Option(None, help="All resolved incidents since this ISO date."),
                 out: Path = typer.Option(Path("evals"), help="Output folder."),
                 target_url: str = typer.Option("http://127.0.0.1:9201", help="Service the promptfoo config targets.")) -> None:
    """Failing traces of resolved incidents become promptfoo tests (YAML) and JSONL cases."""
    from datetime import datetime, timezone

    from bot.db import transaction
    from bot.eval_export import export_incident, export_since
    if (incident is None) == (since is None):
        typer.echo("give an incident id or --since DATE", err=True)
        raise typer.Exit(2)
    runtime = _runtime()
    with transaction(runtime.engine) as session:
        rules = runtime.settings.failure_rules()  # the latency a case asserts is the one that paged
        if incident is not None:
            result = export_incident(session, incident, out, target_url=target_url, rules=rules)
        else:
            start = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)  # type: ignore[arg-type]
            result = export_since(session, start, out, target_url=target_url, rules=rules)
    typer.echo(f"{result.total} eval cases ({result.written} new, {result.deduplicated} deduplicated) in {out}")


@evals_app.command("run")
def evals_run(directory: Path = typer.Argument(Path("evals"), help="Folder written by `evals export`."),
              incident: int | None = typer.Option(None, help="Post the summary to this incident's channel."),
              bundle: str | None = typer.Option(None, help="Mark SERVICE:VERSION known-good when every case passes.")) -> None:
    """Run the exported cases with promptfoo (offline); exit 1 when any case fails."""
    from bot.evals_run import run_and_report
    raise typer.Exit(run_and_report(_runtime(), directory, incident=incident, bundle=bundle))


@incidents_app.command("resume")
def incidents_resume(incident: int = typer.Argument(..., help="Incident id.")) -> None:
    """Retry the incident's unfinished Slack set-up and failed effects now."""
    from bot import outbox
    from bot.db import transaction
    from bot.incidents import service
    runtime = _runtime()
    from bot.web import create_app
    create_app(runtime)  # builds the worker and its Slack handlers
    with transaction(runtime.engine) as session:
        service.get(session, incident)
        requeued = outbox.retry_failed(session, incident)
        service.open_room(session, service.get(session, incident))
    runtime.services["worker"].drain()
    typer.echo(f"incident #{incident}: {requeued} failed effect(s) retried; set-up resumed")


@slack_app.command("manifest")
def slack_manifest(url: str = typer.Option(..., help="Public base URL of warroom, e.g. https://warroom.example.com"),
                   name: str = "warroom") -> None:
    """Print the Slack app manifest (YAML) to paste into api.slack.com/apps."""
    from bot.slack.manifest import manifest
    sys.stdout.write(manifest(url, name))


def main() -> None:
    app()
