"""Storm mode in Slack: one storm incident per service means one channel and one announcement,
edited in place with live counts, however many alert groups join."""

from __future__ import annotations

from tests.alerts.test_correlation import slo_group
from tests.slack.conftest import INCIDENTS, running


def test_a_storm_makes_one_room_and_one_announcement_that_counts_its_groups(database_url, _emulator):
    with running(database_url, _emulator, WARROOM_CORRELATE="service,slo", WARROOM_STORM_INCIDENTS=0,
                 WARROOM_STORM_SERVICE_INCIDENTS=3) as slack:
        before = [slack.fire(slo_group(f"slo-{i}")) for i in range(3)]
        storm = [slack.fire(slo_group(f"slo-{i}")) for i in range(3, 12)]
        assert len(set(before)) == 3 and set(storm) == {storm[0]}
        slack.settle()

        channels = {slack.room(i) for i in [*before, storm[0]]}
        assert len(channels) == 4  # 3 incidents before the storm, then one room for 9 groups
        announcements = [m for m in slack.messages(INCIDENTS) if "Alert storm: llm-gateway" in m.text]
        assert len(announcements) == 1
        assert "Storm: 9 alert group(s), 9 alert(s) firing" in str(announcements[0].blocks)
        room = slack.messages(slack.room(storm[0]))
        assert sum("Alert group joined:" in m.text for m in room) == 9  # one line per group, in order
        assert "Storm: 9 alert group(s) joined this incident" in str(slack.card(slack.room(storm[0])).blocks)
