"""Incident channel names follow Slack's rules whatever the title says."""

from __future__ import annotations

import re
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.config import DEFAULT_CHANNEL_TEMPLATE
from bot.slack.channel_names import channel_name, clash_name, with_suffix

OPENED = datetime(2026, 3, 14, 2, 7)
SLACK_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")


def test_default_template_uses_the_incident_number_service_and_slo():
    name = channel_name(DEFAULT_CHANNEL_TEMPLATE, incident_id=7, opened_at=OPENED, title="x",
                        service="llm-gateway", slo="hallucination-rate")
    assert name == "inc-7-llm-gateway-hallucination-rate"


def test_a_dated_template_still_works():
    name = channel_name("inc-{date}-{slug}", incident_id=7, opened_at=OPENED, title="x",
                        service="llm-gateway", slo="hallucination-rate")
    assert name == "inc-20260314-llm-gateway-hallucination-rate"


def test_unicode_is_transliterated_or_dropped_and_never_empty():
    assert channel_name(DEFAULT_CHANNEL_TEMPLATE, incident_id=7, opened_at=OPENED, title="Café ÜBER 🔥 down!!") == \
        "inc-7-cafe-uber-down"
    assert channel_name("{title}", incident_id=7, opened_at=OPENED, title="🔥🔥") == "inc-7"


def test_a_broken_template_falls_back_to_the_default():
    assert channel_name("inc-{nope}", incident_id=7, opened_at=OPENED, title="Refunds wrong") == "inc-7-refunds-wrong"


def test_after_a_clash_a_name_gets_the_incident_number_once_then_a_counter():
    dated = "inc-{date}-{slug}"
    assert [clash_name("inc-20260314-x", incident_id=7, attempt=a, template=dated) for a in (1, 2, 3)] == [
        "inc-20260314-x", "inc-20260314-x-7", "inc-20260314-x-7-2"]
    assert [clash_name("inc-7-x", incident_id=7, attempt=a, template=DEFAULT_CHANNEL_TEMPLATE) for a in (1, 2, 3)] == [
        "inc-7-x", "inc-7-x-2", "inc-7-x-3"]


def test_suffix_keeps_the_name_within_80_characters():
    assert len(with_suffix("a" * 80, 12)) == 80 and with_suffix("a" * 80, 12).endswith("-12")


@given(title=st.text(max_size=300), service=st.one_of(st.none(), st.text(max_size=100)),
       template=st.sampled_from([DEFAULT_CHANNEL_TEMPLATE, "inc-{date}-{slug}", "{title}", "{service}-{id}",
                                 "INC {severity} {slo}"]))
def test_any_title_gives_a_valid_slack_channel_name(title, service, template):
    name = channel_name(template, incident_id=123, opened_at=OPENED, title=title, service=service, slo=None)
    assert SLACK_NAME.match(name), name
