"""The incident room: resumable set-up steps, each done once.

channel → topic → invite → card → runbook → pin → bookmarks → announce. Each step is guarded by
its `IncidentStep` row ("already done?") and writes a timeline event when it completes, so a
crash or a Slack failure midway is finished by the next run (the outbox retry, the scheduler,
or ``warroom incidents resume``) without duplicating anything. Steps that are not essential
(topic, invite, pin, bookmarks) do not stop the others when they fail; the run is retried and a
step that keeps failing is shown on the card as a warning. A step Slack's rate limit stops
(`bot.slack.budgets.RateLimited`) is not a failure: the worker puts the row back and the next run
starts at that step; when only cosmetic steps are left, a cosmetic row finishes them later and the
room counts as set up.

Nothing twice in Slack, whatever fails: warroom writes a marker naming this installation and the
incident into the purpose of each channel it creates, and adopts a channel whose name it finds
taken only when that marker proves it is this incident's (otherwise it takes a new name). Each
post carries a key in its message metadata and is recorded as "posting" first, so a run after a
lost answer or a crash finds the earlier post in the channel's history instead of posting again.
Under the worker, each step first checks that the outbox row is still this process's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.config import Settings
from bot.effects import OpenRoom, Priority
from bot.errors import ExternalError
from bot.incidents import service, timeline
from bot.incidents.budget import ErrorBudget
from bot.runbooks import RunbookSet, owner_kind
from bot.slack import blocks
from bot.slack.budgets import RateLimited
from bot.slack.channel_names import channel_name, clash_name
from bot.slack.client import SlackCallError, SlackGateway
from bot.slack.text import cut
from bot.slack.views import card_view
from bot.store import outbox
from bot.store.db import insert_or_ignore, transaction
from bot.store.models import Incident, IncidentStep, Installation
from bot.worker import check_lease, current_lease

log = logging.getLogger(__name__)

INVITE = "invite"
ESSENTIAL = ("channel", "card", "runbook", "announce", "thread_card", "thread_runbook")
MAX_NAME_ATTEMPTS = 20
MARKER_PREFIX = "warroom:"  # in the channel purpose: warroom:<installation>:incident:<id>


class SetupIncomplete(ExternalError):
    """Some steps failed; the outbox retries the room and skips what is done."""


@dataclass
class Room:
    gateway: SlackGateway
    engine: Engine
    settings: Settings
    runbooks: RunbookSet
    budget: ErrorBudget | None = None  # the error budget the card shows (`bot.incidents.budget`)

    def open(self, incident_id: int) -> None:
        failed: list[str] = []
        limited: list[RateLimited] = []
        steps = self._thread_steps() if self._thread_only(incident_id) else self._steps()
        for name, step in steps:
            if self._is_done(incident_id, name):
                continue
            check_lease()  # the row may have been taken over while Slack was slow: stop here
            try:
                result = step(incident_id)
            except SlackCallError as exc:
                self._record_failure(incident_id, name, exc)
                if name in ESSENTIAL:
                    raise
                failed.append(name)
                continue
            except RateLimited as exc:
                # Not now: an essential step stops the run (the worker resumes it here later);
                # a cosmetic one waits while the others go on. The owners' invitation is waited
                # for too: a card posted before they are in the channel is one they may not use
                # (acting on an incident takes its channel's membership).
                if name in ESSENTIAL or name == INVITE:
                    raise
                limited.append(exc)
                continue
            self._mark_done(incident_id, name, result or {})
        if failed:
            raise SetupIncomplete(f"steps {', '.join(failed)} failed; will retry")
        if limited:
            self._finish_later(incident_id, min(exc.delay for exc in limited))

    def _finish_later(self, incident_id: int, delay: float) -> None:
        """Only cosmetic steps (topic, pin, bookmarks) wait for Slack's rate limit: the room is
        usable, so this run ends, and a cosmetic row finishes them later. It carries no incident
        id, so the incident's lines and card updates, which wait for its room's set-up, do not
        wait for it (in a storm Slack allows tier-2 calls such as pins.add 20 times a minute)."""
        with transaction(self.engine) as session:
            outbox.enqueue(session, OpenRoom(incident_id=incident_id),
                           key=f"room-rest:{incident_id}:{uuid.uuid4().hex}", delay=delay, priority=Priority.COSMETIC)

    def _steps(self) -> list[tuple[str, Callable[[int], dict[str, Any] | None]]]:
        return [("channel", self._channel), ("topic", self._topic), ("invite", self._invite), ("card", self._card),
                ("runbook", self._runbook), ("pin", self._pin), ("bookmarks", self._bookmarks),
                ("announce", self._announce)]

    def _thread_steps(self) -> list[tuple[str, Callable[[int], dict[str, Any] | None]]]:
        return [("thread_card", self._thread_card), ("thread_runbook", self._thread_runbook)]

    def _thread_only(self, incident_id: int) -> bool:
        """Low severities get a thread in the incidents channel, until someone promotes them."""
        if not self.settings.incidents_channel or self._is_done(incident_id, "promoted"):
            return False
        return self._incident(incident_id).severity in self.settings.thread_only_severities

    def promote(self, incident_id: int) -> None:
        """Mark the incident for a full room; the next `open` (queued by the caller) builds it."""
        self._mark_done(incident_id, "promoted", {})

    # --- what makes it warroom's, and this incident's ----------------------------------------

    @property
    def installation(self) -> str:
        """This warroom's id (from its database): in channel markers and post keys."""
        cached = getattr(self, "_installation", None)
        if cached is None:
            with transaction(self.engine) as session:
                cached = session.execute(select(col(Installation.id))).scalars().first() or "unknown"
            self._installation = cached
        return cached

    def marker(self, incident_id: int) -> str:
        return f"{MARKER_PREFIX}{self.installation}:incident:{incident_id}"

    def post_key(self, incident_id: int, step: str) -> str:
        return f"{self.installation}:incident:{incident_id}:{step}"

    def _post_step(self, incident_id: int, step: str, channel: str, text: str, blocks: list[dict] | None,
                   **extra: Any) -> dict[str, Any]:
        """Post a step's message once: "posting" is recorded first, so a later run (after a lost
        answer, a crash, a database blip) looks in Slack before posting it again."""
        before = self._result(incident_id, step)
        if not before.get("posting"):
            self._save_result(incident_id, step, {**before, "posting": True})
        return self.gateway.post_once(self.post_key(incident_id, step), channel, text, blocks,
                                      maybe_posted=bool(before.get("posting")), **extra)

    def post_for_effect(self, channel: str, text: str, blocks: list[dict] | None = None,
                        **extra: Any) -> dict[str, Any]:
        """Post once per outbox row: keyed by the row the worker is performing, looked up in Slack
        first when the row is a retry (its earlier answer may have been lost); outside the worker,
        just post."""
        lease = current_lease.get()
        if lease is None:
            return self.gateway.post(channel, text, blocks, **extra)
        key = f"{self.installation}:outbox:{lease.item_id}"
        return self.gateway.post_once(key, channel, text, blocks, maybe_posted=lease.retried, **extra)

    # --- step bookkeeping ------------------------------------------------------------------

    def _step(self, session: Session, incident_id: int, name: str) -> IncidentStep:
        insert_or_ignore(session, IncidentStep, {"incident_id": incident_id, "name": name, "result": {}, "attempts": 0},
                         ["incident_id", "name"])
        stmt = select(IncidentStep).where(col(IncidentStep.incident_id) == incident_id, col(IncidentStep.name) == name)
        return session.execute(stmt).scalar_one()

    def _is_done(self, incident_id: int, name: str) -> bool:
        with transaction(self.engine) as session:
            return self._step(session, incident_id, name).done_at is not None

    def _result(self, incident_id: int, name: str) -> dict[str, Any]:
        with transaction(self.engine) as session:
            return dict(self._step(session, incident_id, name).result or {})

    def _save_result(self, incident_id: int, name: str, result: dict[str, Any]) -> None:
        with transaction(self.engine) as session:
            self._step(session, incident_id, name).result = result

    def _mark_done(self, incident_id: int, name: str, result: dict[str, Any]) -> None:
        with transaction(self.engine) as session:
            step = self._step(session, incident_id, name)
            step.done_at, step.result, step.last_error = utcnow(), {**(step.result or {}), **result}, None
            incident = service.get(session, incident_id)
            # An announce step with nothing posted (no incidents channel) must not say it announced.
            what = NOT_ANNOUNCED if name == "announce" and not result.get("ts") else DESCRIPTIONS[name]
            timeline.record(session, incident, "setup", f"Set-up: {what}", actor="warroom", data={"step": name})

    def _record_failure(self, incident_id: int, name: str, exc: SlackCallError) -> None:
        with transaction(self.engine) as session:
            step = self._step(session, incident_id, name)
            step.attempts += 1
            step.last_error = f"{exc.error} (error {exc.error_id})"

    def _incident(self, incident_id: int) -> Incident:
        with transaction(self.engine) as session:
            incident = service.get(session, incident_id)
            session.expunge(incident)
            return incident

    # --- the steps -------------------------------------------------------------------------

    def _channel(self, incident_id: int) -> dict[str, Any]:
        incident = self._incident(incident_id)
        base = channel_name(self.settings.channel_template, incident_id=incident_id, opened_at=incident.opened_at,
                            title=incident.title, service=incident.service, slo=incident.slo,
                            severity=incident.severity)
        marker = self.marker(incident_id)
        created = self._result(incident_id, "channel").get("created")
        if created:  # created by an earlier run that could not mark it: finish that
            self.gateway.call("conversations.setPurpose", channel=created["id"], purpose=self._purpose(marker))
            return self._use_channel(incident_id, created)
        intended = self._result(incident_id, "channel").get("intended")
        for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
            name = clash_name(base, incident_id=incident_id, attempt=attempt, template=self.settings.channel_template)
            # Remember the name before asking for it: only a name an earlier run asked for can be
            # taken by our own channel (created, answer lost), so only then is the owner looked up.
            self._save_result(incident_id, "channel", {"intended": name})
            response = self.gateway.call("conversations.create", ok_errors=frozenset({"name_taken"}), name=name,
                                         is_private=self.settings.private_channels)
            if response.get("ok"):
                channel = response["channel"]
                # Marked before anything else, so a retry after a lost database write adopts it.
                try:
                    self.gateway.call("conversations.setPurpose", channel=channel["id"], purpose=self._purpose(marker))
                except (SlackCallError, RateLimited):
                    self._save_result(incident_id, "channel", {"intended": name, "created": {
                        "id": channel["id"], "name": channel["name"]}})
                    raise
                break
            # Taken: ours only if our marker says so (we created it and lost the answer or the
            # record). A channel of another incident or installation, or an unmarked one, is not.
            if name == intended and (adopted := self._find_channel(name)) is not None and _marked(adopted, marker):
                channel = adopted
                break
        else:
            raise SlackCallError("conversations.create", f"name_taken for {base} and {MAX_NAME_ATTEMPTS - 1} suffixes")
        return self._use_channel(incident_id, channel)

    def _use_channel(self, incident_id: int, channel: dict[str, Any]) -> dict[str, Any]:
        with transaction(self.engine) as session:
            incident = service.get(session, incident_id)
            incident.channel_id, incident.channel_name = channel["id"], channel["name"]
        return {"channel_id": channel["id"], "name": channel["name"]}

    @staticmethod
    def _purpose(marker: str) -> str:
        return f"Incident room opened by warroom. ({marker})"

    def _find_channel(self, name: str) -> dict[str, Any] | None:
        cursor = None
        for _ in range(50):
            page = self.gateway.call("conversations.list", types="public_channel,private_channel", limit=200,
                                     exclude_archived=True, cursor=cursor)
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    return channel
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def _topic(self, incident_id: int) -> dict[str, Any]:
        from bot.slack.topic import topic_text  # the same text `CardSync` keeps current later
        with transaction(self.engine) as session:
            incident = service.get(session, incident_id)
            topic, channel = topic_text(card_view(session, incident, self.runbooks, self.budget)), incident.channel_id
        self.gateway.call("conversations.setTopic", channel=channel, topic=topic)
        return {"text": topic}

    def _invite(self, incident_id: int) -> dict[str, Any]:
        incident = self._incident(incident_id)
        runbook = self.runbooks.get(incident.runbook_id) if incident.runbook_id else None
        users, unknown = self._resolve_owners(list(runbook.owners) if runbook else [])
        if users:
            self.gateway.call("conversations.invite", channel=incident.channel_id, users=",".join(sorted(users)))
        if unknown:
            with transaction(self.engine) as session:
                timeline.record(session, service.get(session, incident_id), "setup_warning",
                                f"Could not find owners: {', '.join(unknown)}", actor="warroom", echo=True)
        return {"invited": sorted(users), "unknown": unknown}

    def _resolve_owners(self, owners: list[str]) -> tuple[set[str], list[str]]:
        users: set[str] = set()
        unknown: list[str] = []
        groups: dict[str, str] | None = None
        for owner in owners:
            kind = owner_kind(owner)
            if kind == "user":
                users.add(owner)
            elif kind == "email":
                found = self.gateway.call("users.lookupByEmail", ok_errors=frozenset({"users_not_found"}), email=owner)
                users.add(found["user"]["id"]) if found.get("ok") else unknown.append(owner)
            elif kind == "usergroup":
                if groups is None:
                    listing = self.gateway.call("usergroups.list")
                    groups = {g["handle"]: g["id"] for g in listing.get("usergroups", [])}
                handle = owner.lstrip("@")
                group_id = groups.get(handle) or (handle if handle.startswith("S") and handle.isupper() else None)
                if group_id is None:
                    unknown.append(owner)
                    continue
                members = self.gateway.call("usergroups.users.list", ok_errors=frozenset({"no_such_subteam"}),
                                            usergroup=group_id)
                users.update(members.get("users", [])) if members.get("ok") else unknown.append(owner)
            else:
                unknown.append(owner)
        return users, unknown

    def _card(self, incident_id: int) -> dict[str, Any]:
        if self.budget is not None:
            self.budget.fetch(self.engine, incident_id)  # Prometheus, outside the transaction
        with transaction(self.engine) as session:
            view = card_view(session, service.get(session, incident_id), self.runbooks, self.budget)
        posted = self._post_step(incident_id, "card", view.channel_id or "", blocks.card_text(view), blocks.card(view))
        with transaction(self.engine) as session:
            # the card is what `slack.card` effects update from now on
            step = self._step(session, incident_id, "card")
            step.result = {**(step.result or {}), "channel": posted["channel"], "ts": posted["ts"]}
            now = card_view(session, service.get(session, incident_id), self.runbooks, self.budget)
        if blocks.card(now) != blocks.card(view):
            # A person acted while it was being posted (an ack on the announcement): their card
            # update found no card to update, so this one shows it.
            self.gateway.update(posted["channel"], posted["ts"], blocks.card_text(now), blocks.card(now))
        return {"channel": posted["channel"], "ts": posted["ts"]}

    def _runbook(self, incident_id: int) -> dict[str, Any] | None:
        incident = self._incident(incident_id)
        runbook = self.runbooks.get(incident.runbook_id) if incident.runbook_id else None
        if runbook is None:
            return None
        posted = self._post_step(incident_id, "runbook", incident.channel_id or "", f"Runbook: {runbook.title}",
                                   blocks.runbook(incident_id, runbook.title, runbook.body, list(runbook.actions)))
        return {"ts": posted["ts"]}

    def _pin(self, incident_id: int) -> None:
        card = self._result(incident_id, "card")
        self.gateway.call("pins.add", channel=card["channel"], timestamp=card["ts"])

    def _bookmarks(self, incident_id: int) -> dict[str, Any]:
        incident = self._incident(incident_id)
        # Each link is recorded once added: a run stopped midway (a rate limit) adds only the rest.
        added = list(self._result(incident_id, "bookmarks").get("links", []))
        for link in (incident.links or [])[:5]:
            if link["title"] == "Silence" or link["url"] in added:
                continue
            self.gateway.call("bookmarks.add", channel_id=incident.channel_id, title=cut(link["title"], 60),
                              type="link", link=link["url"])
            added.append(link["url"])
            self._save_result(incident_id, "bookmarks", {"links": added})
        return {"links": added}

    def _thread_card(self, incident_id: int) -> dict[str, Any]:
        with transaction(self.engine) as session:
            view = card_view(session, service.get(session, incident_id), self.runbooks, self.budget)
        view.thread_only = True
        posted = self._post_step(incident_id, "thread_card", self.settings.incidents_channel or "",
                                 blocks.card_text(view), blocks.card(view))
        return {"channel": posted["channel"], "ts": posted["ts"]}

    def _thread_runbook(self, incident_id: int) -> dict[str, Any] | None:
        incident = self._incident(incident_id)
        runbook = self.runbooks.get(incident.runbook_id) if incident.runbook_id else None
        card = self._result(incident_id, "thread_card")
        if runbook is None:
            return None
        posted = self._post_step(incident_id, "thread_runbook", card["channel"], f"Runbook: {runbook.title}",
                                   blocks.runbook(incident_id, runbook.title, runbook.body, list(runbook.actions)),
                                   thread_ts=card["ts"])
        return {"ts": posted["ts"]}

    def _announce(self, incident_id: int) -> dict[str, Any] | None:
        channel = self.settings.incidents_channel
        if not channel:
            return None
        with transaction(self.engine) as session:
            view = card_view(session, service.get(session, incident_id), self.runbooks, self.budget)
        posted = self._post_step(incident_id, "announce", channel, f"New incident: {blocks.card_text(view)}",
                                 blocks.announcement(view))
        return {"channel": posted["channel"], "ts": posted["ts"]}


def _marked(channel: dict[str, Any], marker: str) -> bool:
    """Does the channel's purpose carry exactly this marker (not a longer incident number)?"""
    purpose = str((channel.get("purpose") or {}).get("value") or "")
    return f"({marker})" in purpose


DESCRIPTIONS = {
    "channel": "channel created", "topic": "topic set", "invite": "owners invited", "card": "incident card posted",
    "runbook": "runbook posted", "pin": "card pinned", "bookmarks": "links bookmarked",
    "announce": "incident announced",
    "thread_card": "incident card posted in a thread of the incidents channel (low severity)",
    "thread_runbook": "runbook posted in the thread", "promoted": "promoted to its own channel",
}
NOT_ANNOUNCED = "not announced (no WARROOM_INCIDENTS_CHANNEL is set)"
