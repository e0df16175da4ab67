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


def _runtime(settings=None, *, quiet_migrations: bool = True, must_exist: bool = True):  # noqa: ANN001, ANN202
    """The core of a warroom process (database, runbooks, redactor): what most one-shot commands need."""
    from bot.runtime import Runtime

    settings = _prepared(settings, quiet_migrations=quiet_migrations, must_exist=must_exist)
    runtime = _or_runbook_error(lambda: Runtime.build(settings))
    _migrate(runtime.engine)
    return runtime


def _warroom(settings=None, *, quiet_migrations: bool = True, must_exist: bool = True):  # noqa: ANN001, ANN202
    """A whole composed warroom (`bot.compose`): for serving, and for commands that drain the outbox."""
    from bot.compose import compose

    settings = _prepared(settings, quiet_migrations=quiet_migrations, must_exist=must_exist)
    warroom = _or_runbook_error(lambda: compose(settings))
    _migrate(warroom.engine)
    return warroom


def _prepared(settings, *, quiet_migrations: bool, must_exist: bool):  # noqa: ANN001, ANN202
    import logging

    from bot.logs import configure
    from bot.runtime import redactor_for

    settings = settings or load_settings()
    if must_exist:
        _require_existing_sqlite(settings.database_url)
    configure(settings.log_format, settings.log_level, redactor_for(settings))
    if quiet_migrations:  # a one-shot command's output is its answer, not alembic's chatter
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def _or_runbook_error(build):  # noqa: ANN001, ANN202
    from bot.runbooks import RunbookError

    try:
        return build()
    except RunbookError as exc:
        typer.echo(f"warroom: the runbooks folder is invalid:\n{exc}", err=True)
        raise typer.Exit(2) from None


def _migrate(engine) -> None:  # noqa: ANN001
    from bot.store.db import upgrade

    upgrade(engine)


def _require_existing_sqlite(url: str) -> None:
    """Commands that read incidents stop at a SQLite file that is not there, instead of creating an
    empty database and then not finding the incident in it."""
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not Path(parsed.database).exists():
        typer.echo(f"warroom: no database at {parsed.database}: run `warroom demo` in this folder first, "
                   "or set WARROOM_DATABASE_URL", err=True)
        raise typer.Exit(1)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8080, help="Port to listen on.")) -> None:
    """Run the bot (HTTP mode for Slack; Socket Mode too when SLACK_APP_TOKEN is set). Migrates first."""
    import uvicorn

    from bot.serving import freeze_startup_objects
    from bot.web import create_app

    warroom = _warroom(quiet_migrations=False, must_exist=False)
    web_app = create_app(warroom)  # with SLACK_APP_TOKEN, it also connects to Slack in Socket Mode
    freeze_startup_objects()
    typer.echo(listening_banner(warroom.settings, f"http://{host}:{port}"))
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


def listening_banner(settings, url: str) -> str:  # noqa: ANN001
    """Where warroom listens and what it talks to, printed once on start."""
    from sqlalchemy.engine import make_url
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    return (f"warroom on {url}  (alerts: {url}/webhooks/alertmanager, incidents: {url}/incidents)\n"
            f"  database {database}, Slack API {settings.slack_api_url}")


RATE_LIMITS_HELP = ("The emulator answers as Slack does when called too fast: HTTP 429 with Retry-After past each "
                    "method's tier (T2 20/min, T3 50/min, T4 100/min) and about 1 message/s per channel. "
                    "--no-rate-limits answers every call at once.")


@app.command()
def demo(port: int = typer.Option(8080, help="Port for warroom."),
         emulator_port: int = typer.Option(3000, help="Port for the local Slack emulator."),
         service_port: int = typer.Option(9201, help="Port for the example LLM service."),
         data_dir: Path = typer.Option(Path(".warroom-demo"), help="Where the demo's SQLite file lives."),
         watch: bool = typer.Option(False, help="Also run the built-in SLO watcher on the service's traces "
                                                "(examples/slos.yaml); it raises its own incident."),
         keep: bool = typer.Option(False, help="Keep the last run's database and emulator channels "
                                               "(default: both start fresh)."),
         otlp: str | None = typer.Option(None, help="protobuf or json: the service sends OpenTelemetry traces "
                                                    "(OTLP/HTTP) only; warroom's watcher raises the incidents "
                                                    "(examples/slos-otlp.yaml)."),
         rate_limits: bool = typer.Option(True, "--rate-limits/--no-rate-limits", help=RATE_LIMITS_HELP)) -> None:
    """Everything on this machine: Slack emulator, warroom on SQLite, the example LLM service, a sample alert."""
    from bot.demo import run_demo
    if otlp not in (None, "protobuf", "json"):
        raise typer.BadParameter("--otlp must be protobuf or json")
    run_demo(port=port, emulator_port=emulator_port, service_port=service_port, data_dir=data_dir, watch=watch,
             keep=keep, otlp=otlp, rate_limits=rate_limits)


@app.command()
def storm(services: int = typer.Option(8, min=1, help="Services in the storm."),
          slos: int = typer.Option(5, min=1, help="Alert groups (SLOs, page and ticket) per service.")) -> None:
    """Send a scripted alert storm to the running warroom (the demo's, in its folder) to see storm mode."""
    from bot.demo_storm import send_storm
    settings = load_settings()
    answers = send_storm(settings.public_url, settings.alert_token, services, slos)
    typer.echo(f"sent {services * slos} alert groups to {settings.public_url}: "
               + ", ".join(f"{n} {status}" for status, n in sorted(answers.items())))
    typer.echo(f"see {settings.public_url}/incidents: the first services have their own incidents, the rest "
               "one storm incident each (\"Alert storm: …\")")


@app.command()
def emulator(host: str = "127.0.0.1", port: int = 3000,
             bot_url: str = typer.Option("http://127.0.0.1:8080/slack/events", help="Where to send commands/clicks."),
             seed: Path | None = typer.Option(None, help="Workspace seed YAML (users, groups, channels)."),
             fault: list[str] = typer.Option([], help="Inject a Slack fault from the start, repeatable: "
                                                       "METHOD=KIND[xTIMES][@SECONDS] with KIND 500, 429, timeout, "
                                                       "delay or error:CODE, e.g. chat.postMessage=500x3. "
                                                       "More at run time: POST /control/faults."),
             rate_limits: bool = typer.Option(True, "--rate-limits/--no-rate-limits", help=RATE_LIMITS_HELP)) -> None:
    """Run the local Slack emulator alone (point SLACK_API_URL at http://HOST:PORT/api/)."""
    from bot.emulator import run
    from bot.emulator.control import parse_cli_fault
    try:
        faults = [parse_cli_fault(f) for f in fault]
    except ValueError as exc:
        typer.echo(f"warroom emulator: --fault {exc}", err=True)
        raise typer.Exit(2) from None
    settings = load_settings()
    run(host=host, port=port, bot_url=bot_url, signing_secret=settings.slack_signing_secret, seed=seed,
        token=settings.slack_bot_token, faults=faults, rate_limits=rate_limits)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every database migration."""
    from bot.store.db import make_engine, upgrade
    settings = load_settings()
    upgrade(make_engine(settings.database_url))
    typer.echo("database is up to date")


def _print_problems(problems: list) -> None:
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise typer.Exit(1)


@runbooks_app.command("check")
def runbooks_check(directory: Path = typer.Argument(Path("runbooks"), help="The runbooks folder."),
                   playbooks: Path = typer.Option(Path("playbooks"),
                                                  help="Playbooks folder, to check action names.")) -> None:
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
              time_scale: float = typer.Option(1.0, help="Rehearsal: every window, the period and the route's "
                                                         "timings this many times shorter (60: 1h becomes 60s)."),
              window: list[str] = typer.Option([], help="Set one window's length by hand, e.g. --window 1h=30s "
                                                        "(windows must stay in order; prefer --time-scale)."),
              for_: str = typer.Option("0s", "--for", help="Alert 'for' duration."),
              alertmanager_webhook: str | None = typer.Option(
                  None, help="Also write an Alertmanager config (route + receiver) posting to this URL, e.g. "
                             "http://127.0.0.1:8080/webhooks/alertmanager."),
              alertmanager_out: Path | None = typer.Option(
                  None, help="Write that Alertmanager config to this file (default: stderr)."),
              credentials_file: str | None = typer.Option(
                  None, help="Have Alertmanager read the bearer token from this file instead of writing "
                             "WARROOM_ALERT_TOKEN into the config.")) -> None:
    """Prometheus recording and multi-window multi-burn-rate alert rules (stdout passes promtool check rules)."""
    from bot.slo.rules import slo_rules_main
    raise typer.Exit(slo_rules_main(file, window, alertmanager_webhook, alert_for=for_, time_scale=time_scale,
                                    alertmanager_out=alertmanager_out, credentials_file=credentials_file))


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
    from bot.postmortem.store import current_text, generate
    from bot.store.db import transaction
    runtime = _runtime()
    from bot.evals.suite import collect_incident
    runtime.budget.fetch(runtime.engine, incident)  # Prometheus (when set), before the transaction
    with transaction(runtime.engine) as session:
        # the draft counts the eval cases this incident added
        collect_incident(session, incident, redactor=runtime.redactor)
        text = current_text(generate(session, incident, templates_dir=runtime.settings.templates_dir,
                                     redactor=runtime.redactor, slos=runtime.slos, budget=runtime.budget))
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        sys.stdout.write(text)


@evals_app.command("export")
def evals_export(incident: int | None = typer.Argument(None, help="Incident id (or use --since / --service)."),
                 since: str | None = typer.Option(None, help="All resolved incidents since this ISO date."),
                 service: str | None = typer.Option(None, help="Export this service's whole regression suite."),
                 bundle: str | None = typer.Option(None, help="With --service: the bundle the config targets "
                                                              "(default: the live one)."),
                 out: Path = typer.Option(Path("evals"), help="Output folder."),
                 target_url: str = typer.Option("http://127.0.0.1:9201",
                                                help="Service the promptfoo config targets.")) -> None:
    """Failing traces of resolved incidents become promptfoo tests (YAML) and JSONL cases; an
    incident's failures also join its service's regression suite (see `evals suite`)."""
    from datetime import datetime, timezone

    from bot.evals.export import export_incident, export_since
    from bot.evals.suite import collect_incident
    from bot.store.db import transaction
    if sum(x is not None for x in (incident, since, service)) != 1:
        typer.echo("give an incident id, --since DATE or --service NAME", err=True)
        raise typer.Exit(2)
    runtime = _runtime()
    if service is not None:
        _export_suite(runtime, service, bundle, out, target_url)
        return
    with transaction(runtime.engine) as session:
        rules = runtime.settings.failure_rules()  # the latency a case asserts is the one that paged
        if incident is not None:
            collect_incident(session, incident, redactor=runtime.redactor)
            result = export_incident(session, incident, out, target_url=target_url, rules=rules,
                                     redactor=runtime.redactor)
        else:
            start = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)  # type: ignore[arg-type]
            result = export_since(session, start, out, target_url=target_url, rules=rules, redactor=runtime.redactor)
    typer.echo(f"{result.total} eval cases ({result.written} new, {result.deduplicated} deduplicated) in {out}")


def _export_suite(runtime, service: str, bundle: str | None, out: Path, target_url: str) -> None:  # noqa: ANN001
    from bot.evals.gate import context_for
    from bot.evals.suite_files import export_suite, target_for
    from bot.evals.target import EvalTargetError
    from bot.releases import bundles
    from bot.store.db import transaction
    settings = runtime.settings
    with transaction(runtime.engine) as session:
        live = bundles.live_bundle(session, service)
        version = bundle or (live.version if live else "live")
        try:
            target = target_for(service, targets_json=settings.eval_targets, fallback_url=target_url)
            found = bundles.get_bundle(session, service, version) if bundle else live
            result = export_suite(session, service, out, target=target, bundle=version,
                                  ctx=context_for(settings, found))
        except EvalTargetError as exc:
            typer.echo(f"warroom: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{result.total} cases of {service} ({result.labelled} labelled) in {out}")


@evals_app.command("collect")
def evals_collect(incident: int = typer.Argument(..., help="Incident id.")) -> None:
    """Add an incident's failing traces to its service's regression suite (clustered, no duplicates)."""
    from bot.evals.suite import collect_incident
    from bot.store.db import transaction
    runtime = _runtime()
    with transaction(runtime.engine) as session:
        change = collect_incident(session, incident, redactor=runtime.redactor)
    typer.echo(f"{change.service}: {change.new} new and {change.updated} updated eval cases from incident #{incident}")


@evals_app.command("run")
def evals_run(directory: Path = typer.Argument(Path("evals"), help="Folder written by `evals export` (or, with "
                                                                   "--bundle, where the suite is written)."),
              incident: int | None = typer.Option(None, help="Post the summary to this incident's channel."),
              bundle: str | None = typer.Option(None, help="Evaluate SERVICE:VERSION: the service's suite against "
                                                           "that bundle (not whatever production serves)."),
              target_url: str | None = typer.Option(None, help="With --bundle: base URL when WARROOM_EVAL_TARGETS "
                                                               "has no template for the service.")) -> None:
    """Run eval cases with promptfoo (offline); exit 1 when any case fails. Only `evals gate` marks
    a bundle known-good."""
    from bot.evals.run import run_and_report
    runtime = _runtime(must_exist=incident is not None or bundle is not None)
    raise typer.Exit(run_and_report(runtime, directory, incident=incident, bundle=bundle, target_url=target_url))


@evals_app.command("replay")
def evals_replay(incident: int = typer.Option(..., help="Incident whose failing inputs are re-sent."),
                 bundle: str = typer.Option(..., help="The candidate, SERVICE:VERSION."),
                 target_url: str | None = typer.Option(None, help="Base URL when WARROOM_EVAL_TARGETS has no "
                                                                  "template for the service.")) -> None:
    """Re-send every failing input of an incident to a candidate bundle; per failure type: fixed,
    still failing, newly failing. Exit 1 unless everything is fixed, 2 when it could not run."""
    from bot.evals.gate import GateCannotRun, parse_ref
    from bot.evals.replay import replay
    from bot.evals.suite import incident_rows
    from bot.evals.suite_files import target_for
    from bot.evals.target import EvalTargetError
    from bot.incidents import service as incidents
    from bot.store.db import transaction
    runtime = _runtime()
    try:
        service, version = parse_ref(bundle)
        target = target_for(service, targets_json=runtime.settings.eval_targets, fallback_url=target_url)
        with transaction(runtime.engine) as session:
            incidents.get(session, incident)
            rows = list(incident_rows(session, incident))
        report = replay(rows, target, service, version, rules=runtime.settings.failure_rules(),
                        run_tag=f"replay-{incident}")
    except (GateCannotRun, EvalTargetError) as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report.as_text())
    raise typer.Exit(0 if report.ok else (2 if report.errors == report.requests else 1))


@evals_app.command("gate")
def evals_gate(bundle: str = typer.Argument(..., help="The candidate, SERVICE:VERSION (registered in /api/bundles)."),
               target_url: str | None = typer.Option(None, help="Base URL of the service when WARROOM_EVAL_TARGETS "
                                                                "has no template for it ({url}/v1/answer?bundle=…)."),
               json_report: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
               junit: Path | None = typer.Option(None, help="Write JUnit XML here (for CI)."),
               max_concurrency: int | None = typer.Option(None, help="promptfoo's --max-concurrency."),
               keep: Path | None = typer.Option(None, help="Keep the generated promptfoo folder here.")) -> None:
    """Run the service's regression suite against a candidate bundle: exit 0 passes (and marks it
    known-good), 1 fails (one line per failing case), 2 could not run."""
    from bot.evals.gate import GateCannotRun, parse_ref, run_gate, write_reports
    from bot.evals.gate_notify import post_to_incidents
    from bot.evals.promptfoo import ensure_promptfoo
    from bot.evals.suite_files import target_for
    from bot.evals.target import EvalTargetError
    runtime = _runtime()
    target = None
    try:
        service, _ = parse_ref(bundle)
        target = target_for(service, targets_json=runtime.settings.eval_targets, fallback_url=target_url)
        ensure_promptfoo()
    except (GateCannotRun, EvalTargetError) as exc:
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # promptfoo could not be installed: the gate could not run
        typer.echo(f"warroom: {exc}", err=True)
        raise typer.Exit(2) from None
    report = run_gate(runtime.engine, bundle, settings=runtime.settings, target=target, work_dir=keep,
                      max_concurrency=max_concurrency, on_done=post_to_incidents)
    write_reports(report, json_path=json_report, junit_path=junit)
    typer.echo(report.summary())
    # The summary for the incidents' channels is queued in the outbox: the running bot's worker posts it.
    raise typer.Exit(report.exit_code)


@incidents_app.command("resume")
def incidents_resume(incident: int = typer.Argument(..., help="Incident id.")) -> None:
    """Retry the incident's unfinished Slack set-up and failed effects now."""
    from bot.incidents import service
    from bot.store import outbox
    from bot.store.db import transaction
    warroom = _warroom()  # the worker and its Slack handlers, without the web app
    with transaction(warroom.engine) as session:
        service.get(session, incident)
        requeued = outbox.retry_failed(session, incident)
        service.open_room(session, service.get(session, incident))
    warroom.worker.drain()
    typer.echo(f"incident #{incident}: {requeued} failed effect(s) retried; set-up resumed")


@slack_app.command("manifest")
def slack_manifest(url: str = typer.Option(..., help="Public base URL of warroom, e.g. https://warroom.example.com."),
                   name: str = "warroom") -> None:
    """Print the Slack app manifest (YAML) to paste into api.slack.com/apps."""
    from bot.slack.manifest import manifest
    sys.stdout.write(manifest(url, name))


def main() -> None:
    from bot.errors import UserError
    try:
        app()
    except UserError as exc:  # a missing incident and the like: one line, not a traceback
        typer.echo(f"warroom: {exc}", err=True)
        raise SystemExit(1) from None
