"""Actors and text are data: a timeline line stores who it names as fields, never Slack markup."""

from __future__ import annotations

from sqlalchemy import select

from bot.incidents import service, timeline
from bot.people import display
from bot.said import Person, Said, said, who
from bot.slack.text import mrkdwn
from bot.store.db import make_engine, transaction
from bot.store.models import TimelineEvent

NAMES = {"U0PRIYA": "Priya", "U0SAM": "Sam"}.get


def test_a_line_round_trips_through_its_row_and_renders_per_surface() -> None:
    line = said("Severity SEV3 → SEV1 by ", Person("U0PRIYA"), " (was ", who("warroom (auto)"), ")")
    text, mentions = line.stored()
    assert text == "Severity SEV3 → SEV1 by @U0PRIYA (was warroom (auto))" and "<@" not in text
    assert mentions == [{"at": 24, "user": "U0PRIYA"}]
    again = Said.from_row(text, {"mentions": mentions})
    assert again == line
    assert mrkdwn(again) == "Severity SEV3 → SEV1 by <@U0PRIYA> (was warroom (auto))"
    assert display(again, NAMES) == "Severity SEV3 → SEV1 by @Priya (was warroom (auto))"
    assert display(again, None) == "Severity SEV3 → SEV1 by @U0PRIYA (was warroom (auto))"  # no Slack: the id


def test_typed_text_is_never_taken_for_a_person() -> None:
    typed = "ping @U0SAM {run} about it"
    line = said("Status update from ", Person("U0PRIYA"), ": ", typed)
    text, mentions = line.stored()
    assert text.endswith(typed) and [m["user"] for m in mentions] == ["U0PRIYA"]
    assert mrkdwn(Said.from_row(text, {"mentions": mentions})) == f"Status update from <@U0PRIYA>: {typed}"
    # An offset that no longer holds its person (a row edited by hand) is shown as text, not guessed.
    assert Said.from_row("someone else did it", {"mentions": [{"at": 0, "user": "U0PRIYA"}]}).people == []


def test_a_stored_line_has_no_slack_markup_and_names_its_actor_as_data(database_url: str) -> None:
    engine = make_engine(database_url)
    typed = "rolled back <b>v42</b> & <@U0SAM> watches the error rate"
    with transaction(engine) as session:
        incident = service.declare(session, title="refunds hallucinate", severity=2, actor="U0PRIYA")
        service.acknowledge(session, incident, actor="U0PRIYA")
        service.set_commander(session, incident, "U0SAM", actor="U0PRIYA")
        service.post_status(session, incident, typed, actor="U0PRIYA")
        incident_id = incident.id
    with transaction(engine) as session:
        rows = {e.kind: e for e in session.execute(select(TimelineEvent).where(
            TimelineEvent.incident_id == incident_id)).scalars()}
    engine.dispose()
    for kind in ("opened", "acknowledged", "commander"):
        assert "<@" not in rows[kind].text, rows[kind].text
        assert rows[kind].actor == "U0PRIYA"
    assert rows["acknowledged"].text.startswith("Acknowledged by @U0PRIYA (MTTA ")
    assert rows["acknowledged"].data["mentions"] == [{"at": len("Acknowledged by "), "user": "U0PRIYA"}]
    assert Said.from_row(rows["commander"].text, rows["commander"].data).people == ["U0SAM", "U0PRIYA"]
    # What a person typed is their content, kept as typed (a mention they typed included).
    assert rows["status"].text == f"Status update from @U0PRIYA: {typed}"
    assert Said.from_row(rows["status"].text, rows["status"].data).people == ["U0PRIYA"]


def test_a_row_stored_with_slack_markup_still_reads_with_names(database_url: str) -> None:
    engine = make_engine(database_url)
    with transaction(engine) as session:
        incident = service.declare(session, title="refunds hallucinate", severity=2, actor="U0PRIYA")
        timeline.record(session, incident, "acknowledged", "Acknowledged by <@U0SAM> (MTTA 2m)", actor="U0SAM")
        incident_id = incident.id
    with transaction(engine) as session:
        old = next(e for e in timeline.events(session, incident_id) if e.kind == "acknowledged")
        body = service.as_dict(session, service.get(session, incident_id), full=True, names=NAMES)
    engine.dispose()
    line = Said.from_row(old.text, old.data)
    assert mrkdwn(line) == "Acknowledged by <@U0SAM> (MTTA 2m)"
    assert display(line, NAMES) == "Acknowledged by @Sam (MTTA 2m)"
    api = {e["kind"]: e for e in body["timeline"]}
    assert api["acknowledged"]["text"] == "Acknowledged by @Sam (MTTA 2m)" and api["acknowledged"]["actor"] == "U0SAM"
    assert api["opened"]["text"].startswith("Incident declared by @Priya: ") and api["opened"]["actor"] == "U0PRIYA"
