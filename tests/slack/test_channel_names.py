"""Incident channel names follow Slack's rules whatever the title says."""

from __future__ import annotations

import re
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.slack.channel_names import channel_name, with_suffix

OPENED = datetime(2026, 3, 14, 2, 7)
SLACK_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")


def test_default_template_uses_date_service_and_slo():
    name = channel_name("inc-{date}-{slug}", incident_id=7, opened_at=OPENED, title="x",
                        service="llm-gateway", slo="hallucination-rate")
    assert name == "inc-20260314-llm-gateway-hallucination-rate"


def test_unicode_is_transliterated_or_dropped_and_never_empty():
    assert channel_name("inc-{date}-{slug}", incident_id=7, opened_at=OPENED, title="Café ÜBER 🔥 down!!") == \
        "inc-20260314-cafe-uber-down"
    assert channel_name("{title}", incident_id=7, opened_at=OPENED, title="🔥🔥") == "inc-7"


def test_a_broken_template_falls_back_to_the_default():
    assert channel_name("inc-{nope}", incident_id=7, opened_at=OPENED, title="Refunds wrong") == \
        "inc-20260314-refunds-wrong"


def test_suffix_keeps_the_name_within_80_characters():
    assert len(with_suffix("a" * 80, 12)) == 80 and with_suffix("a" * 80, 12).endswith("-12")


@given(title=st.text(max_size=300), service=st.one_of(st.none(), st.text(max_size=100)),
       template=st.sampled_from(["inc-{date}-{slug}", "{title}", "{service}-{id}", "INC {severity} {slo}"]))
def test_any_title_gives_a_valid_slack_channel_name(title, service, template):
    name = channel_name(template, incident_id=123, opened_at=OPENED, title=title, service=service, slo=None)
    assert SLACK_NAME.match(name), name
